"""Pooled sentence representations per site, checkpoint and arm, and the geometry computed from them (DESIGN.md §2.8).

The *analysis set* is the first ``cfg.analysis_size`` sentence ids of the corpus test split, in HR and every dialect
of the run (English is left out: the geometry compares dialects with MSA). A sentence's representation at a site is
the mean, over the sentence's own tokens, of that decoder layer's residual-stream output when the model reads
``bos + text`` and nothing else. No variety tag is fed: the tag would tell the model which variety it reads, and the
point of the geometry is to see what the model makes of the text itself.

Layout under the experiment folder (all writes atomic)::

    represent/manifest.json                        format version, config fingerprint, code version, n_rows, d,
                                                   sites, and every entry written (bytes, per-tensor sha256)
    represent/index.jsonl                          row, sent_id, variety, split, text; rows grouped by variety
                                                   (HR, then dialects), ids in the same order in every group
    represent/<model>/step-XXXXXX.safetensors      one float16 (n_rows, d) tensor per site ("layer.00", ...)
    represent/pca/<model>-step-XXXXXX.safetensors  float32 (n_rows, 2) PCA coordinates per site
    represent/geometry.jsonl                       long table: model, step, site, variety, geometry metrics
    represent/umap/<model>-step-XXXXXX-<site>-<key>.npy/.json   UMAP, computed on demand (explorer.experiment)

``model`` is ``base`` (step 0) or an arm. A file is trusted only if its size, header, shapes and content hashes match
the manifest; anything else is rebuilt, never read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import store
from .config import RunConfig
from .corpus import HR
from .geometry import geometry_table, pca_2d
from .probe import Subspace
from .store import Experiment, RunLock, StoreError, read_json, read_jsonl, write_json, write_jsonl

REPRESENT_VERSION = 1
BATCH_SIZE = 64
GEOMETRY_METRICS = ("centroid_cosine", "centroid_l2", "paired_cosine", "cka", "energy_share_mean")


# ---------------------------------------------------------------- names and paths


def represent_dir(exp: Experiment) -> Path:
    return exp.root / "represent"


def entry_key(model: str, step: int) -> str:
    return f"{model}/step-{step:06d}"


def rep_relpath(model: str, step: int) -> str:
    return f"{model}/step-{step:06d}.safetensors"


def pca_relpath(model: str, step: int) -> str:
    return f"pca/{model}-step-{step:06d}.safetensors"


def plan(exp: Experiment, cfg: RunConfig) -> list[tuple[str, int]]:
    """Every (model, step) with representations: the base at step 0, then each checkpoint of each arm."""
    out = [("base", 0)]
    for arm in cfg.arms:
        out += [(arm, s) for s in exp.checkpoints(arm)]
    return out


def tensor_sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).view(np.uint8)).hexdigest()


def source_stamp(exp: Experiment, cfg: RunConfig, model: str, step: int) -> list[list]:
    """(name, bytes, mtime_ns) of the weight files a representation was computed from. A checkpoint written again
    (an arm retrained in place) changes it, so its representations are rebuilt rather than trusted."""
    if model == "base":
        from .pipeline import base_model_path
        folder = base_model_path(exp, cfg)
        files = sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin")])
    else:
        files = [exp.checkpoint_dir(model, step) / "weights.safetensors"]
    out = []
    for f in files:
        try:
            st = f.stat()
        except FileNotFoundError:
            continue
        out.append([f.name, st.st_size, st.st_mtime_ns])
    return out


# ---------------------------------------------------------------- the analysis set


def analysis_index(cfg: RunConfig, data) -> pd.DataFrame:
    """Rows of the analysis set: row, sent_id, variety, split, text. Row ``v*n + i`` is sentence i in variety v."""
    test = data.corpus.split("test")
    if cfg.analysis_size:
        test = test.iloc[: cfg.analysis_size]
    ids = test["sent_id"].tolist()
    varieties = [HR, *data.dialects]
    rows = [{"sent_id": sid, "variety": v, "split": "test", "text": text}
            for v in varieties for sid, text in zip(ids, test[v].tolist())]
    frame = pd.DataFrame(rows, columns=["sent_id", "variety", "split", "text"])
    frame.insert(0, "row", np.arange(len(frame)))
    return frame


def _index_sha(index: pd.DataFrame) -> str:
    blob = "\n".join(f"{r.row}\t{r.sent_id}\t{r.variety}\t{r.split}\t{r.text}" for r in index.itertuples())
    return hashlib.sha256(blob.encode()).hexdigest()


# ---------------------------------------------------------------- pooling


def encode_texts(tok, texts: Sequence[str], max_len: int) -> list[list[int]]:
    """Token ids of each text as training encodes a segment (``" " + text``, at most ``max_len`` tokens)."""
    return [tok(" " + t.strip(), add_special_tokens=False)["input_ids"][:max_len] for t in texts]


@torch.no_grad()
def pool_representations(model, tok, texts: Sequence[str], sites: Sequence[str], *, max_len: int,
                         batch_size: int = BATCH_SIZE, autocast=None,
                         encoded: Sequence[Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """site -> (n, d) float32: the mean over each text's tokens (bos excluded) of the site's output.

    Each text is encoded as training encodes a segment (``" " + text``, at most ``max_len`` tokens) after the bos
    token, with no variety tag. Batches are right-padded and sorted by length; causal attention means padding
    never reaches the real tokens, and the attention mask keeps it out of the mean. Only the decoder body runs
    (``model.base_model``): the LM head's logits, (B, T, vocab), would cost more than all the layers of a small
    model and are not needed. ``encoded`` (from ``encode_texts``) saves re-tokenising the same texts per model."""
    from .intervene import capture
    from .model import hidden_size

    device = next(model.parameters()).device
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    enc = list(encoded) if encoded is not None else encode_texts(tok, texts, max_len)
    order = sorted(range(len(enc)), key=lambda i: len(enc[i]))
    d = hidden_size(model)
    out = {s: np.zeros((len(enc), d), dtype=np.float32) for s in sites}
    body = getattr(model, "base_model", model)
    was_training = model.training
    model.eval()
    try:
        for b0 in range(0, len(order), batch_size):
            idx = order[b0:b0 + batch_size]
            T = len(bos) + max(len(enc[i]) for i in idx)
            ids = torch.full((len(idx), T), pad, dtype=torch.long)
            att = torch.zeros((len(idx), T), dtype=torch.long)
            text = torch.zeros((len(idx), T), dtype=torch.float32)
            for r, i in enumerate(idx):
                seq = bos + enc[i]
                ids[r, :len(seq)] = torch.tensor(seq)
                att[r, :len(seq)] = 1
                text[r, len(bos):len(seq)] = 1.0
            with capture(model, sites, detach=True) as states, (autocast or contextlib.nullcontext()):
                body(input_ids=ids.to(device), attention_mask=att.to(device), use_cache=False)
            m = text.to(device)[..., None]                     # (B, T, 1)
            count = m.sum(1).clamp_min(1.0)                    # (B, 1)
            for s in sites:
                pooled = (states[s].float() * m).sum(1) / count  # (B, d)
                out[s][idx] = pooled.cpu().numpy()
    finally:
        model.train(was_training)
    return out


# ---------------------------------------------------------------- subspaces


def subspace_at(exp: Experiment, step: int, site: str, arm: str = "decoupled",
                refits: list[dict] | None = None) -> tuple[Subspace, int] | None:
    """The arm's subspace at ``site`` current at ``step`` (latest refit at or before it; the first refit for steps
    before any), with its refit index; None when the arm never fitted that site."""
    records = [r for r in (exp.refits(arm) if refits is None else refits) if site in r.get("sites", {})]
    if not records:
        return None
    records.sort(key=lambda r: (r["step"], r["index"]))
    chosen = records[0]
    for r in records:
        if r["step"] <= step:
            chosen = r
    path = exp.arm_dir(arm) / "refits" / f"refit-{chosen['index']:04d}.safetensors"
    tensors = store.load_tensors(path)
    key = f"{site}.basis"
    if key not in tensors:
        raise StoreError(f"{path} has no {key!r} tensor; the refit record and its file disagree. "
                         "Rerun the arm into a new folder.")
    kind = "random" if arm == "random" else "probe"
    return Subspace(tensors[key].float(), site=site, step=int(chosen["step"]), kind=kind), int(chosen["index"])


def penalised_sites(exp: Experiment, cfg: RunConfig) -> tuple[str, ...]:
    """The sites the decoupling acted on: recorded by the arm stages, else in the refits, else the config."""
    stages = exp.manifest().get("stages", {}) if exp.exists() else {}
    for arm in ("decoupled", "random"):
        sites = stages.get(f"arm:{arm}", {}).get("sites")
        if sites:
            return tuple(sites)
    for arm in ("decoupled", "random"):
        for r in exp.refits(arm):
            if r.get("sites"):
                return tuple(r["sites"])
    return tuple(cfg.sites)


# ---------------------------------------------------------------- manifest and validation


def read_represent_manifest(exp: Experiment) -> dict | None:
    path = represent_dir(exp) / "manifest.json"
    try:
        return read_json(path)
    except FileNotFoundError:
        return None


def incompatibility(man: dict, cfg: RunConfig) -> str | None:
    """Why a representation manifest cannot be used with this config, or None."""
    v = man.get("format_version")
    if v != REPRESENT_VERSION:
        return f"it was written by representation format version {v}, this code writes {REPRESENT_VERSION}"
    missing = [k for k in ("n_rows", "d", "sites", "varieties", "index", "entries") if k not in man]
    if missing:
        return f"its manifest lacks {missing}"
    if man.get("fingerprint") != cfg.fingerprint():
        return (f"it was made for config {man.get('fingerprint')}, this experiment's config is "
                f"{cfg.fingerprint()}")
    return None


def check_rep_file(root: Path, man: dict, entry: dict | None, *, deep: bool,
                   source: list | None = None) -> str | None:
    """Why an entry's representation file cannot be trusted, or None. ``deep`` also reads and hashes every tensor;
    ``source`` (a ``source_stamp``) must equal the one recorded when the file was written."""
    if not entry:
        return "not written yet"
    if source is not None and entry.get("source") != source:
        return "its checkpoint was written again after it"
    path = root / entry["file"]
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"{path.name} is missing"
    if size != entry.get("bytes"):
        return f"{path.name} has {size} bytes, the manifest says {entry.get('bytes')} (truncated or replaced)"
    if not deep:
        return None
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="np") as f:
            if sorted(f.keys()) != sorted(man["sites"]):
                return f"{path.name} holds {sorted(f.keys())}, expected {man['sites']}"
            for site in man["sites"]:
                a = f.get_tensor(site)
                if a.shape != (man["n_rows"], man["d"]) or a.dtype != np.float16:
                    return f"{path.name}[{site}] is {a.dtype} {a.shape}, expected float16 {(man['n_rows'], man['d'])}"
                if tensor_sha256(a) != entry["sha256"].get(site):
                    return f"{path.name}[{site}] does not match its checksum"
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for damaged files
        return f"{path.name} is damaged ({e})"
    return None


def check_pca_file(root: Path, man: dict, entry: dict, *, deep: bool) -> str | None:
    pca = entry.get("pca")
    if not pca:
        return "not written yet"
    path = root / pca["file"]
    try:
        if path.stat().st_size != pca["bytes"]:
            return f"{path.name} has the wrong size"
    except FileNotFoundError:
        return f"{path.name} is missing"
    if not deep:
        return None
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="np") as f:
            if (f.metadata() or {}).get("digest") != entry["digest"]:
                return f"{path.name} was computed from other representations"
            for site in man["sites"]:
                a = f.get_tensor(site)
                if a.shape != (man["n_rows"], 2) or not np.isfinite(a).all():
                    return f"{path.name}[{site}] is malformed"
    except Exception as e:  # noqa: BLE001
        return f"{path.name} is damaged ({e})"
    return None


def load_matrices(root: Path, man: dict, entry: dict) -> dict[str, np.ndarray]:
    from safetensors import safe_open
    with safe_open(str(root / entry["file"]), framework="np") as f:
        return {s: f.get_tensor(s).astype(np.float32) for s in man["sites"]}


# ---------------------------------------------------------------- the stage


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


def _geometry_key(digest: str, subs: dict[str, tuple[Subspace, int] | None]) -> str:
    refs = ",".join(f"{s}:{'-' if v is None else v[1]}" for s, v in sorted(subs.items()))
    return hashlib.sha256(f"{digest}|{refs}".encode()).hexdigest()[:16]


def geometry_rows(mats: dict[str, np.ndarray], n: int, varieties: Sequence[str], model: str, step: int,
                  subs: dict[str, tuple[Subspace, int] | None], key: str = "") -> list[dict[str, Any]]:
    """The long-format geometry records of one representation file (``geometry.geometry_table`` per site)."""
    rows = []
    for site, x in mats.items():
        reps = {v: x[i * n:(i + 1) * n] for i, v in enumerate(varieties)}
        sub = subs.get(site)
        basis = None if sub is None else sub[0].basis.double().numpy()
        for rec in geometry_table(reps, hr=HR, basis=basis):
            rows.append({"model": model, "step": step, "site": site, **rec,
                         "subspace_step": None if sub is None else sub[0].step,
                         "subspace_refit": None if sub is None else sub[1], "key": key})
    return rows


def _fast_check(exp: Experiment, cfg: RunConfig, todo: list[tuple[str, int]]) -> bool:
    """Cheap test that a finished stage is still whole: compatible manifest, every file present with its size."""
    root = represent_dir(exp)
    try:
        man = read_represent_manifest(exp)
    except StoreError:
        return False
    if man is None or incompatibility(man, cfg) or not (root / "index.jsonl").exists() \
            or not (root / "geometry.jsonl").exists():
        return False
    for model, step in todo:
        entry = man["entries"].get(entry_key(model, step))
        if check_rep_file(root, man, entry, deep=False, source=source_stamp(exp, cfg, model, step)) \
                or check_pca_file(root, man, entry, deep=False):
            return False
    return True


def stage_represent(exp: Experiment, cfg: RunConfig, data, progress, force_check: bool = False) -> None:
    """Write (or repair) the representation, PCA and geometry caches of every model and checkpoint.

    Without ``force_check`` a finished stage is only checked cheaply (file sizes); with it every file's header,
    shapes and checksums are verified. Whatever fails is rebuilt; an incompatible manifest rebuilds everything."""
    t0 = time.perf_counter()
    todo = plan(exp, cfg)
    if exp.stage_done("represent") and not force_check and _fast_check(exp, cfg, todo):
        return
    with _lock_if_free(exp) as whole_job:
        try:
            built, why = _build(exp, cfg, data, progress, todo)
            if built or not exp.stage_done("represent"):
                man = read_represent_manifest(exp) or {}
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
    from .model import all_sites, hidden_size  # transformers: imported only when the stage runs
    root = represent_dir(exp)
    index = analysis_index(cfg, data)
    varieties = [HR, *data.dialects]
    n = len(index) // len(varieties)
    index_sha = _index_sha(index)
    try:
        man = read_represent_manifest(exp)
    except StoreError as e:
        man, why = None, f"its manifest is damaged ({e})"
    else:
        why = None if man is None else incompatibility(man, cfg)
        if why is None and man is not None and man.get("index", {}).get("sha256") != index_sha:
            why = "the analysis set changed"
    message = None
    if why:
        message = f"rebuilding every representation: {why}"
        print(f"represent: {message}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
        man = None
    progress.stage("represent", total=len(todo), **({"message": message} if message else {}))
    if not (root / "index.jsonl").exists() or man is None:
        write_jsonl(root / "index.jsonl", index.to_dict("records"))

    try:
        geo = read_jsonl(root / "geometry.jsonl")
    except StoreError:
        geo = []
    geo_by: dict[tuple[str, int], list[dict]] = {}
    for r in geo:
        geo_by.setdefault((r["model"], r["step"]), []).append(r)

    refits = exp.refits("decoupled") if "decoupled" in cfg.arms else []
    pen = penalised_sites(exp, cfg)
    sub_cache: dict[tuple[int, str], tuple[Subspace, int] | None] = {}
    loaded: dict = {}
    built = 0

    for model_name, step in todo:
        key = entry_key(model_name, step)
        entry = None if man is None else man["entries"].get(key)
        source = source_stamp(exp, cfg, model_name, step)
        problem = "not written yet" if man is None else check_rep_file(root, man, entry, deep=True, source=source)
        mats = None
        if problem:
            if entry is not None:
                print(f"represent: rebuilding {key}: {problem}", file=sys.stderr)
            model, tok = _set_weights(exp, cfg, loaded, model_name, step)
            if man is None:
                man = {"format_version": REPRESENT_VERSION, "fingerprint": cfg.fingerprint(),
                       "code_version": store.code_version(), "n_rows": len(index), "d": hidden_size(model),
                       "sites": list(all_sites(model)), "varieties": varieties, "n_per_variety": n,
                       "index": {"file": "index.jsonl", "sha256": index_sha}, "entries": {}}
            if "encoded" not in loaded:  # one tokenizer for every model of the experiment
                loaded["encoded"] = encode_texts(tok, index["text"].tolist(), cfg.max_len)
            entry, mats = _write_representations(root, cfg, model, tok, index, loaded["encoded"], man["sites"],
                                                 model_name, step)
            entry["source"] = source
            built += 1
        # geometry inside the current MSA subspace (the decoupled arm's) at every penalised site
        subs = {}
        for site in man["sites"]:
            if site in pen and (step, site) not in sub_cache:
                sub_cache[(step, site)] = subspace_at(exp, step, site, "decoupled", refits) if refits else None
            subs[site] = sub_cache[(step, site)] if site in pen else None
        gkey = _geometry_key(entry["digest"], subs)
        rows = geo_by.get((model_name, step), [])
        with _blas_single_thread():
            geo_stale = not rows or any(r.get("key") != gkey for r in rows) \
                or {r["site"] for r in rows} != set(man["sites"])
            if geo_stale:
                mats = mats if mats is not None else load_matrices(root, man, entry)
                geo_by[(model_name, step)] = geometry_rows(mats, n, varieties, model_name, step, subs, gkey)
            if check_pca_file(root, man, entry, deep=True):
                mats = mats if mats is not None else load_matrices(root, man, entry)
                entry["pca"] = _write_pca(root, mats, entry, model_name, step)
        man["entries"][key] = entry
        # after each file, so that an interrupted stage keeps what it did and a reader sees consistent files
        if geo_stale or not (root / "geometry.jsonl").exists():
            write_jsonl(root / "geometry.jsonl", [r for k in todo for r in geo_by.get(k, [])])
        write_json(root / "manifest.json", man)
        progress({"event": "count", "n": 1})

    wanted = {(m, s) for m, s in todo}
    final = [r for k in todo for r in geo_by.get(k, [])]
    if final != geo:  # rows of checkpoints that no longer exist are dropped
        write_jsonl(root / "geometry.jsonl", final)
    stale = [k for k, e in man["entries"].items() if (e["model"], e["step"]) not in wanted]
    for k in stale:  # checkpoints that no longer exist
        man["entries"].pop(k)
    if stale:
        write_json(root / "manifest.json", man)
    return built, why


def _write_representations(root: Path, cfg: RunConfig, model, tok, index: pd.DataFrame, encoded: list[list[int]],
                           sites: list[str], model_name: str, step: int) -> tuple[dict, dict[str, np.ndarray]]:
    """Pool, store as float16 and checksum one model's representations; returns its manifest entry and the
    matrices exactly as a reader will get them back (float16 values as float32)."""
    from .train import autocast_for

    with autocast_for(model, cfg.bf16 and model.device.type == "cuda"):
        pooled = pool_representations(model, tok, index["text"].tolist(), sites, max_len=cfg.max_len,
                                      encoded=encoded)
    half = {s: torch.from_numpy(pooled[s]).to(torch.float16) for s in sites}
    path = root / rep_relpath(model_name, step)
    meta = {"format_version": str(REPRESENT_VERSION), "fingerprint": cfg.fingerprint(), "model": model_name,
            "step": str(step)}
    store.save_tensors(path, half, meta)
    sha = {s: tensor_sha256(half[s].numpy()) for s in sites}
    digest = hashlib.sha256("".join(sha[s] for s in sites).encode()).hexdigest()[:16]
    entry = {"model": model_name, "step": step, "file": rep_relpath(model_name, step),
             "bytes": path.stat().st_size, "sha256": sha, "digest": digest}
    return entry, {s: half[s].float().numpy() for s in sites}


def _write_pca(root: Path, mats: dict[str, np.ndarray], entry: dict, model_name: str, step: int) -> dict:
    path = root / pca_relpath(model_name, step)
    store.save_tensors(path, {s: torch.from_numpy(pca_2d(x)) for s, x in mats.items()}, {"digest": entry["digest"]})
    return {"file": pca_relpath(model_name, step), "bytes": path.stat().st_size}


def _set_weights(exp: Experiment, cfg: RunConfig, loaded: dict, model_name: str, step: int):
    """The model with the weights of (model_name, step): the base is loaded once with ``pipeline.load_arm`` and each
    checkpoint is laid over it (checkpoints hold every weight), instead of reading the base again for each one."""
    from .pipeline import load_arm
    from .train import load_weights

    if loaded.get("model") is None or (model_name == "base" and loaded.get("at") != ("base", 0)):
        loaded["model"], loaded["tok"] = load_arm(exp, cfg, "base")
        loaded["at"] = ("base", 0)
    if model_name != "base":
        load_weights(loaded["model"], store.load_tensors(exp.checkpoint_dir(model_name, step) / "weights.safetensors"))
        loaded["at"] = (model_name, step)
    return loaded["model"], loaded["tok"]
