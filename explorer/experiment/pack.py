"""A packed copy of a finished experiment: what the app's five pages read, pruned to ship with the project.

    python -m explorer pack cache/default-run cache/default      # SRC (a finished run) -> DST (the shipped copy)

What it keeps (from a *finished* experiment, every file checked against its record before it is copied):

- the manifest, data notes, summary, every evaluation file (scores, outputs, Δ, classifiers' accuracies, copy
  bar): every number and output of every seed (the two fitted classifiers, 7 MB on `default`, are not kept:
  readers fit them in memory from the embedded corpus in about 3 s each, ``classify.stored_classifier``);
- every arm's training log, refit records and refit subspaces (the Subspace page, Translate's switch), every seed;
- the tokenizer, and the base when the run trained its own (a run from the shipped base reads ``data/base/``,
  which ships already; ``pack.json`` records its card so a change of base is seen);
- the representation tables (index, geometry of every model and seed) and the representation, PCA and post-hoc
  probe files of the *shown* models (the base and every arm at one seed, ``--seed``) at the kept checkpoints
  (``--steps``, default all): the models the pickers then offer;
- the final checkpoint's weights of each arm at that seed, so that Translate decodes.

What it drops: every other checkpoint's weights, resume states, UMAP layouts (computed on demand), progress, run
log and lock, annotations (a reader's own), and the representation files of the other seeds.

Every copied file gets a check record (``files.py``), those a run wrote without one too (tokenizer, base model),
and ``pack.json`` lists every file: ``verify_pack`` checks them all when the app opens the copy, and nothing may
write into a packed folder (``Experiment.refuse_if_packed``): ``run``, ``represent`` and ``classify`` refuse it,
and the app's Run button trains into ``<name>-rerun`` beside it.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from pathlib import Path

import torch

from ..analysis import repcache
from ..files import Record, StoreError, atomic_write, check_path, file_status, read_json, write_json
from ..model.shipped import SHIPPED_BASE, read_card
from ..training.precision import cpu_model
from ..version import code_version
from ..names import parse_model
from .layout import PACK_FILE, Experiment, arm_models
from .models import uses_shipped_base

PACK_FORMAT = "dde-pack/1"
MAX_MB = 50.0
RUN_FILES = ("manifest.json", "data.json", "summary.json")
DROPPED_AT_TOP = ("progress.json", "run.log", "run.lock", "annotations.json")


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _files(folder: Path) -> list[Path]:
    """Every plain file under ``folder`` except check records and temporary files, sorted."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".check")
                  and not p.name.endswith(".tmp"))


def plan(src: Experiment, *, seed: int | None = None, steps: list[int] | None = None) -> tuple[list[str], dict]:
    """(the source files to copy, relative to its root; the ``models`` record of pack.json: for each shown model
    the checkpoint steps the pages offer and those whose weights ship)."""
    cfg = src.config()
    seed = cfg.seeds[0] if seed is None else seed
    if seed not in cfg.seeds:
        raise ValueError(f"--seed {seed}: {src.root} was trained with seeds {list(cfg.seeds)}; pick one of those")
    root = src.root
    keep = [n for n in RUN_FILES if (root / n).exists()]
    for sub in ("tokenizer", "eval"):        # not the fitted classifiers: readers fit them in memory (3 s each)
        keep += [_rel(root, p) for p in _files(root / sub)]
    if not uses_shipped_base(cfg):
        keep += [_rel(root, p) for p in _files(src.base_model_dir)]
    if (root / "base" / "log.jsonl").exists():
        keep.append("base/log.jsonl")
    models: dict[str, dict] = {}
    shown = [m for m in arm_models(cfg) if parse_model(m)[1] == seed]
    for m in arm_models(cfg):
        stage = src.stage_dir(m)
        keep += [_rel(root, p) for p in (stage / "log.jsonl", stage / "refits.jsonl") if p.exists()]
        keep += [_rel(root, p) for p in _files(stage / "refits")]
        have = src.checkpoints(m)
        if m not in shown or not have:
            continue
        if steps:
            missing = sorted(set(steps) - set(have))
            if missing:
                raise ValueError(f"--steps {','.join(map(str, steps))}: {m} has no checkpoint at {missing}; it has "
                                 f"{have}")
        kept = [s for s in have if not steps or s in steps or s == have[-1]]   # the final one always
        models[m] = {"steps": kept, "weights": [have[-1]]}
        keep.append(_rel(root, src.checkpoint_file(m, have[-1])))
    keep += _represent_files(src, {"base": [0], **{m: e["steps"] for m, e in models.items()}})
    return keep, models


def _represent_files(src: Experiment, shown: dict[str, list[int]]) -> list[str]:
    rep = src.represent_dir
    man = repcache.read_represent_manifest(rep)
    if man is None:
        raise StoreError(f"{src.root} has no representation cache: build it with `python -m explorer represent "
                         f"{src.root}` before packing (the Embeddings and Subspace pages read it)")
    out = [f"represent/{n}" for n in (repcache.MANIFEST, repcache.INDEX, repcache.GEOMETRY)]
    for model, steps in shown.items():
        for step in steps:
            entry = man["entries"].get(repcache.entry_key(model, step))
            if entry is None:
                raise StoreError(f"{src.root}: the representation cache has no entry for {model} at step {step}; "
                                 f"rebuild it with `python -m explorer represent {src.root}`")
            out += [f"represent/{entry[k]['file'] if k != 'file' else entry['file']}"
                    for k in ("file", "pca", "probes") if entry.get(k)]
    return out


def hardware() -> dict:
    """The machine that packs (normally the one that ran the experiment)."""
    info = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__, "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _copy_checked(src: Path, dst: Path) -> None:
    """Copy one file after checking it against its record; the copy gets a record of its own (also for files a run
    wrote without one, such as the tokenizer), so that every file of the packed copy is verified."""
    status = file_status(src)
    if not status.usable:
        raise StoreError(f"cannot pack {src}: {status.detail}")
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp), record=True)
    if status.state == "intact":          # the copy is the file that was checked (nothing wrote in between)
        got = Record.from_json(read_json(check_path(dst)))
        side = read_json(check_path(src))
        recs = [Record.from_json(r) for r in (side, side.get("previous")) if r]
        if not any(r.bytes == got.bytes and _digest(dst, r.algo) == r.digest for r in recs):
            raise StoreError(f"{src} changed while it was copied; pack again when nothing writes to it")


def _digest(path: Path, algo: str) -> int:
    return Record.of(path.read_bytes(), algo).digest


def size_report(folder: Path) -> dict[str, int]:
    """Bytes under each top-level part of a folder (check records included)."""
    parts: dict[str, int] = {}
    for p in folder.rglob("*"):
        if p.is_file():
            rel = p.relative_to(folder).parts
            key = "/".join(rel[:2]) if rel[0] in ("represent", "arms") and len(rel) > 2 else rel[0]
            parts[key] = parts.get(key, 0) + p.stat().st_size
    return dict(sorted(parts.items(), key=lambda kv: -kv[1]))


def pack(src: str | Path, dst: str | Path, *, seed: int | None = None, steps: list[int] | None = None,
         max_mb: float = MAX_MB, replace: bool = False) -> dict:
    """Write the packed copy of the finished experiment ``src`` into ``dst``; returns its pack.json record.

    ``dst`` must not exist, or (``replace``) be a packed copy already: a run's own folder is never overwritten.
    The copy is assembled beside ``dst`` and renamed into place only when it is complete and within ``max_mb``."""
    source = Experiment(src)
    if not source.exists():
        raise StoreError(f"{source.root} is not an experiment folder (no manifest.json)")
    if source.packed() is not None:
        raise StoreError(f"{source.root} is itself a packed copy; pack the experiment it was made from")
    if source.running_pid() is not None:
        raise StoreError(f"{source.root} is being run (process {source.running_pid()}); pack it when the run ends")
    cfg = source.config()
    if cfg.model:
        raise StoreError(f"{source.root} was trained from --model {cfg.model}, which a packed copy cannot carry; "
                         "only experiments of the built-in model are packed")
    from .view import load_experiment     # the view is what the pages read: a finished run has every part
    if not load_experiment(source.root).complete:
        raise StoreError(f"{source.root} is not finished (see its manifest's stages); finish the run first, with "
                         "the same `python -m explorer run` command")
    target = Path(dst).expanduser().resolve()
    if target.exists() and any(target.iterdir()):
        if not (target / PACK_FILE).exists():
            raise StoreError(f"{target} exists and is not a packed copy; pack into a new folder")
        if not replace:
            raise StoreError(f"{target} already holds a packed copy; add --replace to write a new one over it")
    seed = cfg.seeds[0] if seed is None else seed
    rels, models = plan(source, seed=seed, steps=steps)
    work = target.parent / f".{target.name}.packing"
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    try:
        for rel in rels:
            _copy_checked(source.root / rel, work / rel)
        files = {rel: read_json(check_path(work / rel)) for rel in rels}
        base = {"shipped": True, "card_sha256": _card_digest()} if uses_shipped_base(cfg) else {"shipped": False}
        if uses_shipped_base(cfg):
            card = read_card(SHIPPED_BASE)
            base.update({k: card.get(k) for k in ("created", "code_version", "command") if k in card})
        record = {"format": PACK_FORMAT, "source": str(source.root), "name": source.root.name,
                  "preset": cfg.preset, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "run_created": source.manifest().get("created"), "run_code_version": source.manifest().get(
                      "code_version"), "code_version": code_version(), "packed_on": hardware(), "base": base,
                  "seed": seed, "seeds": list(cfg.seeds), "models": models,
                  "files": {rel: {k: v for k, v in rec.items() if k != "format" and k != "previous"}
                            for rel, rec in files.items()}}
        record["bytes"] = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())   # records included
        write_json(work / PACK_FILE, record)
        total = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
        if total > max_mb * 1e6:
            parts = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in list(size_report(work).items())[:6])
            raise StoreError(f"the packed copy would take {total / 1e6:.1f} MB, over the {max_mb:g} MB allowed "
                             f"(largest parts: {parts}). Keep fewer checkpoints' representations (--steps, e.g. the "
                             "last two) or allow more (--max-mb)")
        record["seconds"] = round(time.perf_counter() - t0, 2)
        if target.exists():
            old = target.parent / f".{target.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(work, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return record


def _card_digest() -> str | None:
    import hashlib
    path = SHIPPED_BASE / "card.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def verify_pack(folder: str | Path) -> dict:
    """The pack.json of a packed copy after checking every file it lists against its record; StoreError naming
    the first damaged or missing file and what to do. Also says when the shipped base changed since packing."""
    root = Path(folder)
    record = read_json(root / PACK_FILE)
    if record.get("format") != PACK_FORMAT:
        raise StoreError(f"{root / PACK_FILE} has format {record.get('format')!r}; this code reads {PACK_FORMAT}. "
                         "Pack the experiment again with `python -m explorer pack`.")
    fix = (f"Restore the shipped copy (`git checkout -- {_rel_to_repo(root)}`), or reproduce the experiment into a "
           "new folder with the Run button on Home")
    for rel, want in record["files"].items():
        path = root / rel
        status = file_status(path)
        if status.state != "intact":
            raise StoreError(f"the packed copy {root} is damaged: {rel} is {status.state} ({status.detail}). {fix}.")
        have = read_json(check_path(path))
        if any(have.get(k) != v for k, v in want.items()):
            raise StoreError(f"the packed copy {root} is damaged: {rel} is not the file it was packed with (its check "
                             f"record differs from {PACK_FILE}). {fix}.")
    return record


def base_changed(record: dict) -> bool:
    """True when the copy was made from the shipped base and ``data/base/`` has changed since (its card differs)."""
    base = record.get("base") or {}
    return bool(base.get("shipped")) and base.get("card_sha256") != _card_digest()


def _rel_to_repo(root: Path) -> str:
    from ..version import REPO_ROOT
    try:
        return root.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(root)


__all__ = ["MAX_MB", "PACK_FILE", "base_changed", "pack", "plan", "size_report", "verify_pack"]
