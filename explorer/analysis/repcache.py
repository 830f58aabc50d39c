"""The representation cache: pooled vectors, PCA coordinates and geometry of every model and checkpoint, on disk.

The one owner of the layout under an experiment's ``represent/`` folder (the experiment layout hands its root
here); every read checks what it reads. All writes are atomic::

    manifest.json                        format version, config fingerprint, code version, n_rows, d, sites, and
                                         every entry written (bytes, per-tensor sha256)
    index.jsonl                          row, sent_id, variety, split, text; rows grouped by variety (HR, then
                                         dialects), ids in the same order in every group
    <model>/step-XXXXXX.safetensors      one float16 (n_rows, d) tensor per site ("layer.00", ...)
    pca/<model>-step-XXXXXX.safetensors  float32 (n_rows, 2) PCA coordinates per site
    geometry.jsonl                       long table: model, step, site, variety, geometry metrics
    umap/                                older code's UMAP layouts (no longer read or written: the app computes
                                         them and holds them in memory)

The *analysis set* is the first ``cfg.analysis_size`` sentence ids of the corpus test split, in HR and every
dialect of the run (English is left out: the geometry compares dialects with MSA). ``model`` is ``base`` (step 0)
or an arm. A file is trusted only if its size, header, shapes and content hashes match the manifest; anything else
is rebuilt, never read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..config import RunConfig
from ..data.varieties import HR
from ..files import StoreError, file_status, read_json, read_jsonl, save_tensors, write_json, write_jsonl
from ..method.subspace import Subspace
from ..version import code_version
from .geometry import geometry_table, mean_energy_share, pca_2d
from .pooling import pool_and_sample
from .posthoc import posthoc_probe

REPRESENT_VERSION = 3          # 2: post-hoc probes per (model, checkpoint, site); model names with seeds
                               # 3: post-hoc probes read the tagged source (as the training probe), not the bare text


GEOMETRY_METRICS = ("centroid_cosine", "centroid_l2", "paired_cosine", "cka", "energy_share_mean",
                    "energy_share_train")
TOKENS_PER_TEXT = 6            # token states per analysis sentence kept for the post-hoc probe (bare pass)
PROBE_SENTENCES = 40           # the tagged pass reads the first 40 sentences of the analysis set in every variety...
PROBE_TOKENS_PER_TEXT = 15     # ...and keeps 15 token states of each: as many MSA tokens as 100 x 6, at 40% of a pass



# ---------------------------------------------------------------- names

MANIFEST, INDEX, GEOMETRY = "manifest.json", "index.jsonl", "geometry.jsonl"
INDEX_COLUMNS = ["row", "sent_id", "variety", "split", "text"]


def entry_key(model: str, step: int) -> str:
    return f"{model}/step-{step:06d}"


def rep_relpath(model: str, step: int) -> str:
    return f"{model}/step-{step:06d}.safetensors"


def pca_relpath(model: str, step: int) -> str:
    return f"pca/{model}-step-{step:06d}.safetensors"


def tensor_sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).view(np.uint8)).hexdigest()



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


def index_sha(index: pd.DataFrame) -> str:
    blob = "\n".join(f"{r.row}\t{r.sent_id}\t{r.variety}\t{r.split}\t{r.text}" for r in index.itertuples())
    return hashlib.sha256(blob.encode()).hexdigest()



# ---------------------------------------------------------------- manifest and validation


def read_represent_manifest(root: Path) -> dict | None:
    """The cache's manifest (``root`` is the ``represent/`` folder), or None when there is none yet."""
    path = root / MANIFEST
    try:
        return read_json(path)
    except FileNotFoundError:
        return None


def write_manifest(root: Path, man: dict) -> None:
    write_json(root / MANIFEST, man)


def read_index(root: Path) -> pd.DataFrame:
    """The analysis rows: row, sent_id, variety, split, text (row i of every variety is the same sentence)."""
    return pd.DataFrame(read_jsonl(root / INDEX), columns=INDEX_COLUMNS)


def write_index(root: Path, index: pd.DataFrame) -> None:
    write_jsonl(root / INDEX, index.to_dict("records"))


def read_geometry(root: Path) -> list[dict]:
    """Every geometry record (``geometry_rows``); StoreError when the file is missing or damaged."""
    path = root / GEOMETRY
    if not path.exists():
        raise StoreError(f"{path} is missing.")
    return read_jsonl(path)


def write_geometry(root: Path, rows: list[dict]) -> None:
    write_jsonl(root / GEOMETRY, rows)


def has_tables(root: Path) -> bool:
    """Whether the index and geometry tables exist (a cheap check of a finished cache)."""
    return (root / INDEX).exists() and (root / GEOMETRY).exists()


def incompatibility(man: dict, fingerprint: str) -> str | None:
    """Why a representation manifest cannot be used for the experiment whose config fingerprint is ``fingerprint``
    (the experiment manifest's), or None."""
    v = man.get("format_version")
    if v != REPRESENT_VERSION:
        return f"it was written by representation format version {v}, this code writes {REPRESENT_VERSION}"
    missing = [k for k in ("n_rows", "d", "sites", "varieties", "index", "entries") if k not in man]
    if missing:
        return f"its manifest lacks {missing}"
    if man.get("fingerprint") != fingerprint:
        return f"it was made for config {man.get('fingerprint')}, this experiment's config is {fingerprint}"
    return None


def _check_tensor(name: str, a: np.ndarray, man: dict, entry: dict, site: str) -> str | None:
    """Why one site's stored matrix cannot be trusted (shape, dtype, checksum), or None."""
    if a.shape != (man["n_rows"], man["d"]) or a.dtype != np.float16:
        return f"{name}[{site}] is {a.dtype} {a.shape}, expected float16 {(man['n_rows'], man['d'])}"
    if tensor_sha256(a) != entry["sha256"].get(site):
        return f"{name}[{site}] does not match its checksum"
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
                why = _check_tensor(path.name, f.get_tensor(site), man, entry, site)
                if why:
                    return why
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for damaged files
        return f"{path.name} is damaged ({e})"
    return None


def read_matrix(root: Path, man: dict, entry: dict, site: str, hint: str) -> np.ndarray:
    """(n_rows, d) float32: one site's pooled vectors, read lazily (one tensor) and checked as
    ``check_rep_file`` checks them; StoreError naming the file, with ``hint`` (what to run), if anything is off."""
    path = root / entry["file"]
    why = check_rep_file(root, man, entry, deep=False)
    if why:
        raise StoreError(f"{path}: {why}. {hint}")
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="np") as f:
            a = f.get_tensor(site)
    except Exception as e:
        raise StoreError(f"{path} is damaged ({e}). {hint}") from e
    why = _check_tensor(path.name, a, man, entry, site)
    if why:
        raise StoreError(f"{path.parent}/{why} (damaged). {hint}")
    return a.astype(np.float32)


def new_manifest(fingerprint: str, index: pd.DataFrame, d: int, sites: list[str], varieties: list[str]) -> dict:
    """An empty manifest for the cache of the experiment ``fingerprint`` names (entries are added as written)."""
    return {"format_version": REPRESENT_VERSION, "fingerprint": fingerprint, "code_version": code_version(),
            "n_rows": len(index), "d": d, "sites": list(sites), "varieties": list(varieties),
            "n_per_variety": len(index) // len(varieties), "index": {"file": INDEX, "sha256": index_sha(index)},
            "entries": {}}


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
    status = file_status(path)                     # the bytes as written (files.py's check record)
    if not status.usable:
        return f"{path.name} is damaged ({status.detail})"
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


def read_pca(root: Path, man: dict, entry: dict, site: str) -> np.ndarray | None:
    """The cached PCA coordinates of one site, or None if the cache file is missing, stale or damaged."""
    pca = entry.get("pca")
    if not pca:
        return None
    path = root / pca["file"]
    from safetensors import safe_open
    try:
        if path.stat().st_size != pca["bytes"] or not file_status(path).usable:   # garbled bytes: recompute
            return None
        with safe_open(str(path), framework="np") as f:
            if (f.metadata() or {}).get("digest") != entry["digest"]:
                return None
            a = f.get_tensor(site)
    except Exception:  # noqa: BLE001 - any damage means "recompute"
        return None
    ok = a.shape == (man["n_rows"], 2) and np.isfinite(a).all()
    return a.astype(np.float32) if ok else None



# ---------------------------------------------------------------- writing


def probes_relpath(model: str, step: int) -> str:
    return f"probes/{model}-step-{step:06d}.safetensors"


def geometry_key(digest: str, train: dict[str, tuple[Subspace, int] | None]) -> str:
    """What a file's geometry rows depend on: its representations (and post-hoc probes, computed from the same
    pass) and the training subspace each penalised site was read with."""
    refs = ",".join(f"{s}:{'-' if v is None else v[1]}" for s, v in sorted(train.items()))
    return hashlib.sha256(f"{digest}|{refs}".encode()).hexdigest()[:16]


def geometry_rows(mats: dict[str, np.ndarray], n: int, varieties: Sequence[str], model: str, step: int,
                  own: dict[str, np.ndarray | None], train: dict[str, tuple[Subspace, int] | None],
                  key: str = "") -> list[dict[str, Any]]:
    """The long-format geometry records of one representation file (``geometry.geometry_table`` per site).

    ``energy_share_mean`` is measured in the model's *own* MSA subspace at that site (its post-hoc probe, ``own``);
    ``energy_share_train`` in the subspace the arm was trained against (``train``: a decoupled or random arm's
    current U at that step, at the penalised sites only), the quantity its penalty drove down."""
    rows = []
    for site, x in mats.items():
        reps = {v: x[i * n:(i + 1) * n] for i, v in enumerate(varieties)}
        sub = train.get(site)
        tb = None if sub is None else sub[0].basis.double().numpy()
        trained = {v: mean_energy_share(m, tb) for v, m in reps.items()} if tb is not None else {}
        for rec in geometry_table(reps, hr=HR, basis=own.get(site)):
            rows.append({"model": model, "step": step, "site": site, **rec,
                         "energy_share_train": trained.get(rec["variety"]),
                         "subspace_step": None if sub is None else sub[0].step,
                         "subspace_refit": None if sub is None else sub[1], "key": key})
    return rows


def write_representations(root: Path, fingerprint: str, max_len: int, model, tok, index: pd.DataFrame,
                          encoded: list[list[int]], sites: list[str], model_name: str, step: int, *, rank: int = 1,
                          autocast=None, heads: list[list[int]] | None = None
                          ) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Pool, store as float16 and checksum one model's representations, and fit and store its post-hoc probes
    (``analysis.posthoc``) at every site from a sample of token states. Returns the manifest entry, the matrices
    exactly as a reader will get them back (float16 values as float32), and the probes' bases.

    The representations read each sentence bare (``bos + text``: what the model makes of the text itself). The
    probes read it as a translation prompt reads its source, after ``heads`` (per sentence, e.g. ``[bos, <arz>]``),
    which is what the training probe reads and what the decoupling penalty acts on, in a second pass over the first
    ``PROBE_SENTENCES`` sentences of every variety (``PROBE_TOKENS_PER_TEXT`` token states of each); without
    ``heads`` they read ``TOKENS_PER_TEXT`` token states of every sentence of the bare pass."""
    texts = index["text"].tolist()
    pooled = pool_and_sample(model, tok, texts, sites, max_len=max_len, encoded=encoded, autocast=autocast,
                             tokens_per_text=0 if heads is not None else TOKENS_PER_TEXT, seed=step)
    rows = np.arange(len(index))
    sample = pooled
    if heads is not None:   # a second pass, over the first PROBE_SENTENCES sentences of every variety
        first = list(dict.fromkeys(index["sent_id"]))[:PROBE_SENTENCES]
        rows = np.flatnonzero(index["sent_id"].isin(first).to_numpy())
        sample = pool_and_sample(model, tok, [texts[i] for i in rows], sites, max_len=max_len,
                                 encoded=[encoded[i] for i in rows], autocast=autocast,
                                 tokens_per_text=PROBE_TOKENS_PER_TEXT, seed=step, heads=[heads[i] for i in rows])
    half = {s: torch.from_numpy(pooled.sentences[s]).to(torch.float16) for s in sites}
    path = root / rep_relpath(model_name, step)
    meta = {"format_version": str(REPRESENT_VERSION), "fingerprint": fingerprint, "model": model_name,
            "step": str(step)}
    save_tensors(path, half, meta)
    sha = {s: tensor_sha256(half[s].numpy()) for s in sites}
    digest = hashlib.sha256("".join(sha[s] for s in sites).encode()).hexdigest()[:16]
    entry = {"model": model_name, "step": step, "file": rep_relpath(model_name, step),
             "bytes": path.stat().st_size, "sha256": sha, "digest": digest}
    varieties = index["variety"].to_numpy()[rows[sample.token_rows]]
    groups = index["sent_id"].to_numpy()[rows[sample.token_rows]]
    bases, records = {}, {}
    for s in sites:
        probe = posthoc_probe(sample.tokens[s], varieties, groups, hr=HR, rank=rank, seed=step)
        bases[s] = probe.basis.astype(np.float32).astype(np.float64)     # exactly what a reader gets back
        records[s] = {**probe.to_record(), "input": "bare text" if heads is None else "tagged source"}
    ppath = root / probes_relpath(model_name, step)
    save_tensors(ppath, {s: torch.from_numpy(b.astype(np.float32)) for s, b in bases.items() if b.shape[1]},
                 {"digest": digest})
    entry["probes"] = {"file": probes_relpath(model_name, step), "bytes": ppath.stat().st_size, "sites": records}
    return entry, {s: half[s].float().numpy() for s in sites}, bases


def read_probe_bases(root: Path, entry: dict) -> dict[str, np.ndarray] | None:
    """site -> (d, k) basis of the entry's post-hoc probes, or None when the file is missing, stale or damaged."""
    probes = entry.get("probes")
    if not probes:
        return None
    path = root / probes["file"]
    from safetensors import safe_open
    try:
        if path.stat().st_size != probes["bytes"]:
            return None
        with safe_open(str(path), framework="np") as f:
            if (f.metadata() or {}).get("digest") != entry["digest"]:
                return None
            return {s: f.get_tensor(s).astype(np.float64) for s in f.keys()}  # noqa: SIM118 - safe_open is no dict
    except Exception:  # noqa: BLE001 - any damage means "recompute"
        return None


def write_pca(root: Path, mats: dict[str, np.ndarray], entry: dict, model_name: str, step: int) -> dict:
    path = root / pca_relpath(model_name, step)
    save_tensors(path, {s: torch.from_numpy(pca_2d(x)) for s, x in mats.items()}, {"digest": entry["digest"]})
    return {"file": pca_relpath(model_name, step), "bytes": path.stat().st_size}
