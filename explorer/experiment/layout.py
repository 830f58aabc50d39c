"""The experiment folder: every path in it, its manifest, progress and run lock. The one owner of the layout.

Layout of one experiment (``cache/<name>/``)::

    manifest.json              format version, code version, config, stage status
    progress.json              live progress (the app follows it), rewritten atomically
    run.lock                   the run lock (``experiment.lock``: one run at a time) and who holds it
    run.log                    output of a run started from the app
    data.json                  the corpus a run used: dialects, codes, example counts, loader notes
    summary.json               the results as one JSON document (``python -m explorer summary --json``)
    tokenizer/  base/model/    stage 1 (save_pretrained folders)
    base/log.jsonl, base/state/                        stage 1's training log and resume state
    arms/<arm>/seed-<s>/checkpoints/step-000100/weights.safetensors   fp16 weights at that step (self-describing)
    arms/<arm>/seed-<s>/state/          resume state of an unfinished arm (fp32 weights, optimiser, step)
    arms/<arm>/seed-<s>/refits/refit-0003.safetensors + refits.jsonl   every probe refit (and the gate's decision)
    arms/<arm>/seed-<s>/log.jsonl       training log (step, losses, penalty, time)
    eval/<model>/hyps.jsonl    every decoded test sentence; eval/<model>/scores.json
    eval/copy_source.json, eval/deltas.json, eval/classifiers.json
    represent/                 representation and geometry caches (format owned by ``analysis.repcache``)
    dialect_id/, msa_id/       the fitted dialect and MSA-vs-dialect classifiers (format owned by
                               ``evaluation.dialect_id``)
    annotations.json           a linguist's tags and comments (``experiment.annotations``)
    pack.json                  only in a packed (shipped, pruned) copy: what it keeps and where it came from
                               (``experiment.pack``); such a folder is read-only for every command

A *model* is named by one string everywhere (folders, caches, selectboxes, plot labels): ``"base"`` for the model
every arm starts from, ``"<arm>.s<seed>"`` for an arm trained with one stage-2 seed (``model_id``), e.g.
``"decoupled.s1"``. Folders written by format 1 (one seed, before ``--seeds`` existed: ``arms/<arm>/``,
``eval/<arm>/``) are still read; their arms appear as ``"<arm>.s<seed>"`` with the run's single seed.

Stages never spell a path: they ask this module (``Experiment``) or hand what they produce to a
``experiment.stagefolder.StageFolder``, which stores it where this module says.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import torch

from ..config import RunConfig
from ..files import StoreError, load_tensors, read_json, read_jsonl, write_json
from ..names import model_id, parse_model
from ..version import REPO_ROOT, code_version
from .lock import RunLock

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)          # format 1: one seed per arm (arms/<arm>/, eval/<arm>/)
CACHE_ROOT = REPO_ROOT / "cache"
WEIGHTS = "weights.safetensors"
PACK_FILE = "pack.json"


def arm_models(cfg: RunConfig) -> list[str]:
    """Every (arm, seed) model of a run, arm by arm (in training order within a seed: see ``training_order``)."""
    return [model_id(a, s) for a in cfg.all_arms for s in cfg.seeds]


def training_order(cfg: RunConfig) -> list[str]:
    """Seed by seed, every arm of the seed: the random control of a seed follows its decoupled arm, whose refit
    schedule it copies."""
    return [model_id(a, s) for s in cfg.seeds for a in cfg.all_arms]


class Experiment:
    """Paths and manifest of one experiment folder. Cheap to construct; reads lazily."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self._format: int | None = None

    @property
    def format(self) -> int:
        """The folder's format version (``FORMAT_VERSION`` for a folder not yet created)."""
        if self._format is None:
            self._format = self.manifest()["format_version"] if self.exists() else FORMAT_VERSION
        return self._format

    def _legacy_name(self, model: str) -> str:
        """How a format-1 folder names a model (its arms had no seed in their names); a name already in that form
        (a format-1 manifest's own stage key, e.g. "baseline") is kept."""
        try:
            return parse_model(model)[0]
        except ValueError:
            return model

    def stage_key(self, kind: str, model: str) -> str:
        """The manifest key of a stage: ``stage_key("eval", "decoupled.s1") == "eval:decoupled.s1"``."""
        return f"{kind}:{self._legacy_name(model) if self.format == 1 and model != 'base' else model}"

    # ------------------------------------------------------------ whole-run files
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def progress_path(self) -> Path:
        return self.root / "progress.json"

    @property
    def lock_path(self) -> Path:
        return self.root / "run.lock"

    @property
    def launch_lock_path(self) -> Path:
        """Held while the app starts a run of this folder (beside the folder: it may not exist yet)."""
        return self.root.parent / f".{self.root.name}.launch.lock"

    @property
    def run_log_path(self) -> Path:
        return self.root / "run.log"

    @property
    def data_info_path(self) -> Path:
        return self.root / "data.json"

    @property
    def summary_path(self) -> Path:
        return self.root / "summary.json"

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"

    @property
    def base_model_dir(self) -> Path:
        return self.root / "base" / "model"

    @property
    def represent_dir(self) -> Path:
        return self.root / "represent"

    @property
    def dialect_id_dir(self) -> Path:
        return self.root / "dialect_id"

    @property
    def msa_id_dir(self) -> Path:
        return self.root / "msa_id"

    @property
    def annotations_path(self) -> Path:
        return self.root / "annotations.json"

    # ------------------------------------------------------------ a packed copy (experiment.pack writes it)
    @property
    def pack_path(self) -> Path:
        return self.root / PACK_FILE

    def packed(self) -> dict | None:
        """The record of a packed copy (``experiment.pack``), or None for an experiment a run wrote."""
        return read_json(self.pack_path) if self.pack_path.exists() else None

    def refuse_if_packed(self, what: str) -> None:
        """StoreError when this folder is a packed copy: nothing may write into one."""
        if self.pack_path.exists():
            raise StoreError(f"{self.root} is a packed copy of an experiment (it holds {PACK_FILE}): it is read-only, "
                             f"so {what} cannot write into it. Run the experiment into a new folder instead, e.g. "
                             f"`python -m explorer run --preset {self.config().preset} --out "
                             f"{self.root.parent / (self.root.name + '-rerun')}`.")

    # ------------------------------------------------------------ training stages
    def stage_dir(self, name: str) -> Path:
        """The folder of training stage ``name`` ("base" or a model): log, checkpoints, refits, resume state."""
        if name == "base":
            return self.root / "base"
        if self.format == 1:            # one seed per arm: "arms/<arm>", named with or without its seed
            return self.root / "arms" / self._legacy_name(name)
        arm, seed = parse_model(name)
        return self.root / "arms" / arm / f"seed-{seed}"

    def checkpoint_file(self, arm: str, step: int) -> Path:
        return self.stage_dir(arm) / "checkpoints" / f"step-{step:06d}" / WEIGHTS

    def checkpoints(self, arm: str) -> list[int]:
        """Steps of the complete checkpoints of an arm, ascending (in a packed copy: the steps it keeps
        representations of, whether or not it keeps their weights)."""
        pack = self.packed()
        if pack is not None:
            return list(pack["models"].get(arm, {}).get("steps", []))
        d = self.stage_dir(arm) / "checkpoints"
        if not d.exists():
            return []
        return sorted(int(c.name[5:]) for c in d.iterdir() if c.name.startswith("step-") and (c / WEIGHTS).exists())

    def load_checkpoint(self, arm: str, step: int) -> dict[str, torch.Tensor]:
        path = self.checkpoint_file(arm, step)
        pack = self.packed() if not path.exists() else None
        if pack is not None:
            have = ", ".join(f"{m} step {s}" for m, e in pack["models"].items() for s in e.get("weights", []))
            raise StoreError(f"this shipped copy ({self.root}) keeps the weights of {have or 'no model'} only, not of "
                             f"{arm} at step {step}. Pick one of those, or reproduce the experiment (Run on Home, or "
                             "`python -m explorer run`) to have every checkpoint.")
        return load_tensors(path)

    def refits(self, arm: str) -> list[dict]:
        return read_jsonl(self.stage_dir(arm) / "refits.jsonl")

    def refit_file(self, arm: str, index: int) -> Path:
        return self.stage_dir(arm) / "refits" / f"refit-{index:04d}.safetensors"

    def train_log(self, name: str) -> list[dict]:
        return read_jsonl(self.stage_dir(name) / "log.jsonl")

    # ------------------------------------------------------------ evaluation
    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    def _eval_dir(self, model: str) -> Path:
        return self.eval_dir / (self._legacy_name(model) if self.format == 1 and model != "base" else model)

    def hyps_path(self, model: str) -> Path:
        return self._eval_dir(model) / "hyps.jsonl"

    def scores_path(self, model: str) -> Path:
        return self._eval_dir(model) / "scores.json"

    @property
    def copy_source_path(self) -> Path:
        return self.eval_dir / "copy_source.json"

    @property
    def deltas_path(self) -> Path:
        return self.eval_dir / "deltas.json"

    @property
    def classifiers_path(self) -> Path:
        return self.eval_dir / "classifiers.json"

    # ------------------------------------------------------------ manifest
    def exists(self) -> bool:
        return self.manifest_path.exists()

    def manifest(self) -> dict:
        if not self.manifest_path.exists():
            raise StoreError(f"{self.root} is not an experiment folder (no manifest.json). "
                             "Create one with `python -m explorer run --out DIR`.")
        m = read_json(self.manifest_path)
        v = m.get("format_version")
        if v not in READABLE_FORMATS:
            raise StoreError(f"{self.root} was written by format version {v}; this code reads versions "
                             f"{', '.join(map(str, READABLE_FORMATS))}. Rerun the experiment into a new folder "
                             "(--out NEW).")
        return m

    @property
    def fingerprint(self) -> str:
        """The folder's identity: the fingerprint of the config that made it (checked against every artefact)."""
        return self.manifest()["fingerprint"]

    def config(self) -> RunConfig:
        return RunConfig.from_dict(self.manifest()["config"])

    def init(self, config: RunConfig) -> dict:
        """Create the manifest, or check that an existing one was made by the same config.

        A folder in which no stage has finished yet (a run that failed before its first stage completed) is taken
        over by the new config: nothing in it is worth keeping, and refusing would block the corrected command.
        A packed copy is refused: it is read-only (``refuse_if_packed``)."""
        self.refuse_if_packed("a run")
        if self.manifest_path.exists():
            m = self.manifest()
            # lists read back as tuples, and fields older code did not write take their defaults: like with like
            old = RunConfig.from_dict(m["config"]).to_dict()
            new = config.to_dict()
            diff = {k: (old.get(k), v) for k, v in new.items() if old.get(k) != v}
            done = [k for k, v in m.get("stages", {}).items() if v.get("done")]
            if diff and done:
                raise StoreError(
                    f"{self.root} holds an experiment made with different settings {diff} (old, new). Use --out "
                    "with a new folder, or delete this one to start over.")
            if m["format_version"] != FORMAT_VERSION and done:
                raise StoreError(f"{self.root} was written by format version {m['format_version']} (one seed per "
                                 "arm); it opens in the app and in `summary`, but a run cannot continue it. Use --out "
                                 "with a new folder.")
            if not diff and m["format_version"] == FORMAT_VERSION:
                return m
        m = {"format_version": FORMAT_VERSION, "code_version": code_version(), "fingerprint": config.fingerprint(),
             "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "config": config.to_dict(), "stages": {}}
        write_json(self.manifest_path, m)
        self._format = FORMAT_VERSION
        return m

    def stage_done(self, stage: str) -> bool:
        return self.exists() and self.manifest().get("stages", {}).get(stage, {}).get("done", False)

    def record(self, key: str, value) -> None:
        """Keep ``value`` under ``key`` in the manifest (e.g. the resolved precision, ``training.precision``)."""
        m = self.manifest()
        m[key] = value
        write_json(self.manifest_path, m)

    def mark_stage(self, stage: str, **info) -> None:
        m = self.manifest()
        m.setdefault("stages", {})[stage] = {"done": True, "code_version": code_version(),
                                             "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
        write_json(self.manifest_path, m)

    def unmark_stages(self, stages: list[str]) -> None:
        """Forget that these stages finished (their files are damaged or missing): the next stages redo them."""
        m = self.manifest()
        for stage in stages:
            m.get("stages", {}).pop(stage, None)
        write_json(self.manifest_path, m)

    # ------------------------------------------------------------ progress
    def write_progress(self, **fields) -> None:
        fields.setdefault("updated", time.time())
        fields.setdefault("pid", os.getpid())
        write_json(self.progress_path, fields)

    def progress(self) -> dict | None:
        try:
            return read_json(self.progress_path)
        except (FileNotFoundError, StoreError):
            return None

    # ------------------------------------------------------------ lock (experiment.lock)
    def running_pid(self) -> int | None:
        """The pid of the live process running this experiment, or None (``lock.RunLock.holder``)."""
        return RunLock(self).running_pid()

    def claim(self, cmd: list[str], **popen) -> subprocess.Popen:
        """Start ``cmd`` as the process running this folder, the run lock taken for it (the app's Run button);
        ``lock.RunLockHeld`` if a live process already runs the folder."""
        return RunLock(self).start_child(cmd, **popen)


def list_experiments(root: Path = CACHE_ROOT) -> list[Path]:
    """Experiment folders (those with a manifest.json) directly under ``root``, sorted by name."""
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if (p / "manifest.json").exists())
