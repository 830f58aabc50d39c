"""The representation stage (docs/design.md §2.8): for every model and checkpoint, pooled representations, post-hoc
probes, PCA and geometry, written into the cache that ``analysis.repcache`` owns.

Each model is read in its *own* MSA subspace (its post-hoc probe at that checkpoint and site), and a decoupled or
random arm also in the subspace it was trained against (its current U at that step, at the penalised sites).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator

from ..analysis.pooling import encode_texts
from ..analysis.repcache import (
    analysis_index,
    check_pca_file,
    check_rep_file,
    entry_key,
    geometry_key,
    geometry_rows,
    has_tables,
    incompatibility,
    index_sha,
    load_matrices,
    new_manifest,
    read_geometry,
    read_probe_bases,
    read_represent_manifest,
    write_geometry,
    write_index,
    write_manifest,
    write_pca,
    write_representations,
)
from ..config import RunConfig
from ..data.varieties import ENG, HR
from ..files import StoreError
from ..model.prompts import encoder_for
from ..model.sites import all_sites, hidden_size
from ..model.weights import load_weights
from ..training.loop import autocast_for
from .layout import Experiment, RunLock, arm_models
from .models import base_model_path, load_arm, run_precision
from .refits import penalised_sites, subspace_at


def plan(exp: Experiment, cfg: RunConfig) -> list[tuple[str, int]]:
    """Every (model, step) with representations: the base at step 0, then each checkpoint of each arm and seed."""
    out = [("base", 0)]
    for model in arm_models(cfg):
        out += [(model, s) for s in exp.checkpoints(model)]
    return out


def source_stamp(exp: Experiment, cfg: RunConfig, model: str, step: int) -> list[list]:
    """(name, bytes, mtime_ns) of the weight files a representation was computed from. A checkpoint written again
    (an arm retrained in place) changes it, so its representations are rebuilt rather than trusted."""
    if model == "base":
        folder = base_model_path(exp, cfg)
        files = sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin")])
    else:
        files = [exp.checkpoint_file(model, step)]
    out = []
    for f in files:
        try:
            st = f.stat()
        except FileNotFoundError:
            continue
        out.append([f.name, st.st_size, st.st_mtime_ns])
    return out


@contextlib.contextmanager
def _lock_if_free(exp: Experiment) -> Iterator[bool]:
    """Hold the run lock unless this process already holds it (inside ``run``); refuse if another process does.

    Yields True when this call took the lock, i.e. the stage is the whole job (``python -m explorer represent``)."""
    if exp.running_pid() == os.getpid():
        yield False
        return
    with RunLock(exp):
        yield True


def _blas_single_thread():
    """numpy's BLAS threads and torch's OpenMP threads fight for the same cores right after a forward pass: on 2
    cores a (900, 256) SVD took 0.9 s instead of 0.03 s. The geometry matrices are small; one thread is fastest."""
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn (umap-learn needs it)
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _fast_check(exp: Experiment, todo: list[tuple[str, int]]) -> bool:
    """Cheap test that a finished stage is still whole: compatible manifest, every file present with its size."""
    root = exp.represent_dir
    try:
        man = read_represent_manifest(root)
    except StoreError:
        return False
    if man is None or incompatibility(man, exp.fingerprint) or not has_tables(root):
        return False
    cfg = exp.config()
    for model, step in todo:
        entry = man["entries"].get(entry_key(model, step))
        if check_rep_file(root, man, entry, deep=False, source=source_stamp(exp, cfg, model, step)) \
                or check_pca_file(root, man, entry, deep=False) or not entry.get("probes"):
            return False
    return True


def stage_represent(exp: Experiment, cfg: RunConfig, data, progress, force_check: bool = False) -> None:
    """Write (or repair) the representation, probe, PCA and geometry caches of every model and checkpoint.

    Without ``force_check`` a finished stage is only checked cheaply (file sizes); with it every file's header,
    shapes and checksums are verified. Whatever fails is rebuilt; an incompatible manifest rebuilds everything."""
    t0 = time.perf_counter()
    todo = plan(exp, cfg)
    if exp.stage_done("represent") and not force_check and _fast_check(exp, todo):
        return
    with _lock_if_free(exp) as whole_job:
        try:
            built, why = _build(exp, cfg, data, progress, todo)
            if built or not exp.stage_done("represent"):
                man = read_represent_manifest(exp.represent_dir) or {}
                exp.mark_stage("represent", seconds=round(time.perf_counter() - t0, 2), files=len(todo),
                               rebuilt=built, n_rows=man.get("n_rows"), sites=man.get("sites"),
                               **({"rebuilt_all_because": why} if why else {}))
            progress.finish_stage("represent")
        except BaseException as e:
            if whole_job:
                progress.end("interrupted" if isinstance(e, KeyboardInterrupt) else "failed",
                             f"{type(e).__name__}: {e}")
            raise
        if whole_job:
            note = f"; rebuilding every representation: {why}" if why else ""
            progress.end("done", f"representations: {len(todo)} files checked, {built} (re)built{note}")


def _build(exp: Experiment, cfg: RunConfig, data, progress,
           todo: list[tuple[str, int]]) -> tuple[int, str | None]:
    """The body of the stage; returns how many files it (re)wrote, and why it rebuilt everything (or None)."""
    root = exp.represent_dir
    fingerprint = exp.fingerprint
    index = analysis_index(cfg, data)
    varieties = [HR, *data.dialects]
    n = len(index) // len(varieties)
    digest = index_sha(index)
    try:
        man = read_represent_manifest(root)
    except StoreError as e:
        man, why = None, f"its manifest is damaged ({e})"
    else:
        why = None if man is None else incompatibility(man, fingerprint)
        if why is None and man is not None and man.get("index", {}).get("sha256") != digest:
            why = "the analysis set changed"
    message = None
    if why:
        message = f"rebuilding every representation: {why}"
        print(f"represent: {message}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
        man = None
    progress.stage("represent", total=len(todo), **({"message": message} if message else {}))
    if man is None or not has_tables(root):
        write_index(root, index)

    try:
        geo = read_geometry(root)
    except StoreError:
        geo = []
    geo_by: dict[tuple[str, int], list[dict]] = {}
    for r in geo:
        geo_by.setdefault((r["model"], r["step"]), []).append(r)

    pen = penalised_sites(exp, cfg)
    refits = {m: exp.refits(m) for m in {m for m, _ in todo} if m != "base"}
    loaded: dict = {}
    built = 0

    for model_name, step in todo:
        key = entry_key(model_name, step)
        entry = None if man is None else man["entries"].get(key)
        source = source_stamp(exp, cfg, model_name, step)
        problem = "not written yet" if man is None else check_rep_file(root, man, entry, deep=True, source=source)
        own = None if problem else read_probe_bases(root, entry)
        if not problem and own is None:
            problem = "its post-hoc probes are missing or damaged"
        mats = None
        if problem:
            if entry is not None:
                print(f"represent: rebuilding {key}: {problem}", file=sys.stderr)
            model, tok = _set_weights(exp, cfg, loaded, model_name, step)
            if man is None:
                man = new_manifest(fingerprint, index, hidden_size(model), list(all_sites(model)), varieties)
            if "encoded" not in loaded:  # one tokenizer (and prompt layout) for every model of the experiment
                loaded["encoded"] = encode_texts(tok, index["text"].tolist(), cfg.max_len)
                loaded["heads"] = probe_heads(model, tok, index, data.codes, cfg.max_len)
            entry, mats, own = write_representations(
                root, fingerprint, cfg.max_len, model, tok, index, loaded["encoded"], man["sites"], model_name, step,
                rank=cfg.rank, autocast=autocast_for(model, model.device.type == "cuda"
                                                     and run_precision(exp, cfg, model.device).bf16),
                heads=loaded["heads"])
            entry["source"] = source
            built += 1
        # the subspace this model was trained against, at each penalised site (decoupled and random arms only)
        train = {site: (subspace_at(exp, step, site, model_name, refits[model_name])
                        if model_name != "base" and site in pen else None) for site in man["sites"]}
        gkey = geometry_key(entry["digest"], train)
        rows = geo_by.get((model_name, step), [])
        with _blas_single_thread():
            geo_stale = not rows or any(r.get("key") != gkey for r in rows) \
                or {r["site"] for r in rows} != set(man["sites"])
            if geo_stale:
                mats = mats if mats is not None else load_matrices(root, man, entry)
                geo_by[(model_name, step)] = geometry_rows(mats, n, varieties, model_name, step, own, train, gkey)
            if check_pca_file(root, man, entry, deep=True):
                mats = mats if mats is not None else load_matrices(root, man, entry)
                entry["pca"] = write_pca(root, mats, entry, model_name, step)
        man["entries"][key] = entry
        # after each file, so that an interrupted stage keeps what it did and a reader sees consistent files
        if geo_stale or not has_tables(root):
            write_geometry(root, [r for k in todo for r in geo_by.get(k, [])])
        write_manifest(root, man)
        progress({"event": "count", "n": 1})

    wanted = {(m, s) for m, s in todo}
    final = [r for k in todo for r in geo_by.get(k, [])]
    if final != geo:  # rows of checkpoints that no longer exist are dropped
        write_geometry(root, final)
    stale = [k for k, e in man["entries"].items() if (e["model"], e["step"]) not in wanted]
    for k in stale:  # checkpoints that no longer exist
        man["entries"].pop(k)
    if stale:
        write_manifest(root, man)
    return built, why


def probe_heads(model, tok, index, codes: list[str], max_len: int) -> list[list[int]]:
    """What a translation prompt puts before each analysis sentence (``Encoder.prefix``: ``[bos, <arz>]`` for the
    built-in model): the post-hoc probes read the sentence there, as the training probe reads a source. A prompt
    style that names the target too asks for MSA from a dialect and for the run's first dialect from MSA."""
    enc = encoder_for(model, tok, codes, max_len)
    dialects = [c for c in codes if c not in (HR, ENG)]
    target = {HR: dialects[0] if dialects else HR}
    return [enc.prefix(v, target.get(v, HR)) for v in index["variety"]]


def _set_weights(exp: Experiment, cfg: RunConfig, loaded: dict, model_name: str, step: int):
    """The model with the weights of (model_name, step): the base is loaded once with ``models.load_arm`` and each
    checkpoint is laid over it (checkpoints hold every weight), instead of reading the base again for each one."""
    if loaded.get("model") is None or (model_name == "base" and loaded.get("at") != "base"):
        loaded["model"], loaded["tok"] = load_arm(exp, cfg, "base")     # the base comes first in the plan: once
        loaded["at"] = "base"
    if model_name != "base":
        load_weights(loaded["model"], exp.load_checkpoint(model_name, step))
        loaded["at"] = model_name
    return loaded["model"], loaded["tok"]
