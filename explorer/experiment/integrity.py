"""What a finished stage left, checked before it is trusted (README, "Damaged files and the run lock").

On every ``run``, each stage the manifest marks done has its files checked: present, and matching their check
records (``files.file_status``). A stage whose files are missing or damaged is redone, with the stages that read
what it wrote (``plan_repairs``), and one line says what is rebuilt and why. ``summary``, ``classify`` and
``represent`` run the same checks to say which files they cannot use and which command rebuilds them
(``repair_command``: the ``run`` command that made the folder, rebuilt from its manifest).

Which stage reads what:

- ``base`` (stage 1) -> every arm and every evaluation (the representations notice new weights themselves);
- ``arm:<model>`` -> ``eval:<model>``; the decoupled arm of a seed -> the random control of that seed, which copies
  its refit schedule (and that control's evaluation);
- ``eval:<model>`` -> the deltas (recomputed on every run) and ``summary.json`` (rewritten on every run);
- the two classifiers (``dialect_id/``, ``msa_id/``) -> what every output looks like (``evaluate.relabel``);
- ``represent`` is repaired file by file (``represent.stage_represent(force_check=True)``).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..config import PRESETS, RunConfig
from ..names import arm_kind, model_id, parse_model
from ..files import FileStatus, StoreError, file_status, read_json, read_jsonl
from .layout import Experiment, arm_models
from .models import uses_shipped_base

CLASSIFIERS = "classifiers"        # the pseudo-stage of the two fitted classifiers
SUMMARY = "summary"                # summary.json, rewritten at the end of every run
EVAL_SHARED = "eval"               # copy_source.json, classifiers.json, deltas.json: rebuilt by the evaluation stage


@dataclass(frozen=True)
class Problem:
    """A file a finished stage left that cannot be used: ``stage`` is its manifest key (or a pseudo-stage)."""

    stage: str
    status: FileStatus

    def describe(self, root: Path) -> str:
        try:
            name = self.status.path.relative_to(root)
        except ValueError:
            name = self.status.path
        if self.status.state == "missing":
            return f"{name} is missing"
        detail = self.status.detail.split(" is damaged: ", 1)[-1].split(". It cannot be used", 1)[0]
        return f"{name} is damaged ({detail})"


@dataclass
class Repairs:
    """What ``plan_repairs`` found and undid: the stages to redo, and the caches to rebuild after the run."""

    redo: list[str] = field(default_factory=list)
    relabel: bool = False           # refit the classifiers and score every output again
    represent: bool = False         # check every representation file deeply and rebuild what fails
    lines: list[str] = field(default_factory=list)


def expected_checkpoints(cfg: RunConfig) -> list[int]:
    """The steps the training loop saves a checkpoint at (``training.loop``): every ``ckpt_every`` and the last."""
    return [s for s in range(1, cfg.steps + 1) if s % cfg.ckpt_every == 0 or s == cfg.steps]


def _weights_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        except StoreError:
            return [index]
        return [index, *(folder / s for s in shards)]
    if (folder / "pytorch_model.bin").exists() and not (folder / "model.safetensors").exists():
        return [folder / "pytorch_model.bin"]
    return [folder / "model.safetensors"]


def stage_files(exp: Experiment, cfg: RunConfig, key: str) -> list[Path]:
    """Every file a finished stage ``key`` leaves (a manifest key, or ``CLASSIFIERS``/``SUMMARY``)."""
    if key == "prepare":
        tokenizer = [] if cfg.model or uses_shipped_base(cfg) else [exp.tokenizer_dir / "tokenizer.json"]
        return [exp.data_info_path, *tokenizer]
    if key == "base":
        folder = exp.base_model_dir
        return [folder / "config.json", *_weights_files(folder), exp.stage_dir("base") / "log.jsonl"]
    if key == CLASSIFIERS:
        return [d / f for d in (exp.dialect_id_dir, exp.msa_id_dir) for f in ("model.json", "weights.npz")]
    if key == SUMMARY:
        return [exp.summary_path]
    if key == EVAL_SHARED:
        return [exp.copy_source_path, exp.classifiers_path, *([exp.deltas_path] if "baseline" in cfg.arms else [])]
    if key == "represent":
        return _represent_files(exp)
    kind, _, model = key.partition(":")
    if kind == "eval":
        return [exp.hyps_path(model), exp.scores_path(model)]
    if kind == "arm":
        root = exp.stage_dir(model)
        out = [root / "log.jsonl", *(exp.checkpoint_file(model, s) for s in expected_checkpoints(cfg))]
        n_refits = exp.manifest().get("stages", {}).get(key, {}).get("refits", 0)
        refits = root / "refits.jsonl"
        if n_refits or refits.exists():
            out.append(refits)
            try:
                records = read_jsonl(refits)
            except StoreError:
                records = []                   # refits.jsonl itself is reported: the stage is redone anyway
            out += [exp.refit_file(model, int(r["index"])) for r in records]
        return out
    raise ValueError(f"unknown stage {key!r}")


def _represent_files(exp: Experiment) -> list[Path]:
    root = exp.represent_dir
    man_path = root / "manifest.json"
    out = [man_path, root / "index.jsonl", root / "geometry.jsonl"]
    try:
        man = read_json(man_path)
    except (FileNotFoundError, StoreError):
        return out
    for entry in man.get("entries", {}).values():
        out += [root / entry[k]["file"] for k in ("probes", "pca") if isinstance(entry.get(k), dict)]
        if entry.get("file"):
            out.append(root / entry["file"])
    return out


def check(exp: Experiment, cfg: RunConfig, keys: list[str]) -> list[Problem]:
    """The files of the stages ``keys`` that are missing or damaged."""
    out = []
    for key in keys:
        for path in stage_files(exp, cfg, key):
            status = file_status(path)
            if not status.usable:
                out.append(Problem(key, status))
    return out


def done_stages(exp: Experiment, cfg: RunConfig) -> list[str]:
    """The manifest keys of the stages marked done that this config runs, in the order they ran; then the
    classifiers (once any evaluation is done) and ``summary.json`` (once written)."""
    keys = ["prepare", "base", *(exp.stage_key("arm", m) for m in arm_models(cfg)),
            *(exp.stage_key("eval", m) for m in ["base", *arm_models(cfg)]), "represent"]
    out = [k for k in keys if exp.stage_done(k)]
    if any(k.startswith("eval:") for k in out):
        out += [CLASSIFIERS, EVAL_SHARED]
    if exp.summary_path.exists() or (exp.summary_path.parent / f".{exp.summary_path.name}.check").exists():
        out.append(SUMMARY)
    return out


def readers(exp: Experiment, cfg: RunConfig, key: str) -> list[str]:
    """The stages that read what stage ``key`` wrote, and must be redone with it (module docstring)."""
    models = arm_models(cfg)
    if key == "base":
        return [exp.stage_key(kind, m) for kind in ("arm", "eval") for m in models] + [exp.stage_key("eval", "base")]
    kind, _, model = key.partition(":")
    if kind != "arm":
        return []
    out = [exp.stage_key("eval", model)]
    arm, seed = parse_model(model)
    if arm == "decoupled" and "random" in cfg.arms:
        control = model_id("random", seed)
        out += [exp.stage_key("arm", control), exp.stage_key("eval", control)]
    return out


def plan_repairs(exp: Experiment, cfg: RunConfig, *, say=None) -> Repairs:
    """Check every finished stage; unmark the ones whose files are missing or damaged, and the stages that read
    them, so that this run redoes them (and only them). One line per damaged stage says what and why."""
    say = say or (lambda line: print(line, file=sys.stderr))
    done = done_stages(exp, cfg)
    problems = check(exp, cfg, done)
    rep = Repairs()
    by_stage: dict[str, list[Problem]] = {}
    for p in problems:
        by_stage.setdefault(p.stage, []).append(p)
    redo: list[str] = []
    for key, probs in by_stage.items():
        why = "; ".join(p.describe(exp.root) for p in probs[:3]) + (f" (and {len(probs) - 3} more)"
                                                                     if len(probs) > 3 else "")
        if key == CLASSIFIERS:
            rep.relabel = True
            line = f"rebuilding the classifiers and what every output looks like: {why}"
        elif key == EVAL_SHARED:
            line = f"rebuilding after the evaluations: {why}"
        elif key == SUMMARY:
            line = f"rebuilding summary.json at the end of this run: {why}"
        elif key == "represent":
            rep.represent = True
            line = f"rebuilding the damaged representation files: {why}"
        else:
            also = [k for k in _closure(exp, cfg, key) if k != key and exp.stage_done(k)]
            redo += [key, *also]
            line = f"redoing {_name(key)}" + (f" (and {', '.join(_name(k) for k in also)}, which read it)"
                                              if also else "") + f": {why}"
        rep.lines.append(line)
        say(f"resume: {line}")
    rep.redo = list(dict.fromkeys(redo))
    if rep.redo:
        exp.unmark_stages(rep.redo)
    return rep


def _closure(exp: Experiment, cfg: RunConfig, key: str) -> list[str]:
    out, todo = [], [key]
    while todo:
        k = todo.pop(0)
        if k not in out:
            out.append(k)
            todo += readers(exp, cfg, k)
    return out


def _name(key: str) -> str:
    kind, _, model = key.partition(":")
    return {"arm": f"the training of {model}", "eval": f"the evaluation of {model}"}.get(kind, f"stage {key}")


def repair_command(exp: Experiment) -> str:
    """The ``run`` command that made this folder (its preset, every setting that differs from the preset, and
    ``--out``): rerunning it checks every finished stage and rebuilds what is damaged or missing."""
    try:
        cfg = exp.config()
    except (StoreError, OSError):
        return f"python -m explorer run ... --out {shlex.quote(str(exp.root))} (the same command that made it)"
    preset = cfg.preset if cfg.preset in PRESETS else "default"
    args = ["python", "-m", "explorer", "run", "--preset", preset]
    ref = RunConfig(preset=preset, **PRESETS[preset])
    for f in fields(RunConfig):
        if f.name == "preset":
            continue
        v, was = getattr(cfg, f.name), getattr(ref, f.name)
        if v != was:
            args += ["--" + f.name.replace("_", "-"), _show(f.name, v)]
    args += ["--out", str(exp.root)]
    return " ".join(shlex.quote(a) for a in args)


def _show(name: str, v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        text = ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
        return text + "," if name == "seeds" and len(v) == 1 else text
    return f"{v:g}" if isinstance(v, float) else str(v)


def problems_message(exp: Experiment, problems: list[Problem], what: str) -> str:
    """One message for a command that cannot use some files: which, and the command that rebuilds them."""
    lines = [f"{len(problems)} file(s) {what} are damaged or missing; nothing was computed from them:"] + [f"  - {p.describe(exp.root)}" for p in problems[:20]]
    if len(problems) > 20:
        lines.append(f"  ... and {len(problems) - 20} more")
    lines.append(f"Rebuild them with: {repair_command(exp)}")
    return "\n".join(lines)


def discard_damaged_resume(folder, *, say=None) -> None:
    """An unfinished stage's resume state (``StageFolder.resume``) with a damaged or missing file is dropped, so
    that the stage starts again from step 0 instead of failing on every rerun; one line says so."""
    say = say or (lambda line: print(line, file=sys.stderr))
    where = folder.resume.location()
    if where is None:
        return
    names = ["state.json", "model.safetensors", "optim.safetensors"]
    extra = where / "extra.safetensors"
    if extra.exists() or (where / f".{extra.name}.check").exists():
        names.append(extra.name)
    bad = [st for st in (file_status(where / n) for n in names) if not st.usable]
    if bad:
        why = "; ".join(Problem(folder.name, st).describe(folder.exp.root) for st in bad)
        say(f"resume: {folder.name} starts again from step 0, its resume state cannot be used: {why}")
        folder.resume.drop()
