"""The read API the app calls: one experiment folder as typed tables and arrays (no Streamlit here).

    view = load_experiment("cache/default")
    x = view.representations("decoupled", 400, "layer.02")      # (n_rows, d) float32
    xy = view.umap("decoupled", 400, "layer.02")                 # (n_rows, 2), cached on disk
    view.geometry("baseline", 400, "layer.02")                   # one row per variety

Everything is read lazily from the files the pipeline and ``explorer.represent`` wrote. Arrays are never kept in
memory here (the app caches them with ``st.cache_data``); small tables are memoised per instance and reread when
their file changes. A damaged or incompatible cache raises ``StoreError`` saying what to run, never returns garbage.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import represent as rep
from . import store
from .config import RunConfig
from .corpus import HR
from .geometry import UmapParams, pca_2d, umap_2d
from .probe import Subspace
from .store import Experiment, StoreError, read_json, read_jsonl

__all__ = ["ExperimentView", "list_experiment_dirs", "load_experiment"]

REFIT_COLUMNS = ["index", "step", "site", "rank", "angle_prev_deg", "angle_first_deg", "accuracy",
                 "code_length_bits", "compression", "mi_lower_bound_bits", "seconds"]
REFIT_VARIETY_COLUMNS = ["index", "step", "site", "variety", "n", "accuracy", "code_length_bits", "compression"]
GEOMETRY_COLUMNS = ["model", "step", "site", "variety", *rep.GEOMETRY_METRICS, "subspace_step", "subspace_refit"]
SCORE_COLUMNS = ["model", "direction", "src", "tgt", "chrf", "n"]
DEFAULT_UMAP = UmapParams()
DELTA_COLUMNS = ["system", "direction", "src", "tgt", "delta", "low", "high", "p_value"]


def load_experiment(path: str | Path) -> ExperimentView:
    """Open an experiment folder; StoreError (with what to do) for a folder that is not one or has another version."""
    p = Path(path).expanduser()
    if not p.exists():
        raise StoreError(f"{p} does not exist. Pick an experiment folder, or create one with "
                         "`python -m explorer run --out DIR`.")
    if not p.is_dir():
        raise StoreError(f"{p} is a file; an experiment is a folder holding manifest.json.")
    return ExperimentView(Experiment(p))


def list_experiment_dirs(root: Path = store.CACHE_ROOT) -> list[Path]:
    """Experiment folders (those with a manifest.json) directly under ``root``, sorted by name."""
    return store.list_experiments(Path(root))


class ExperimentView:
    """One experiment folder, read-only. Construct with ``load_experiment``.

    Models are ``"base"`` (the stage-1 model, step 0) and the arms that have at least one checkpoint; sites are
    named ``layer.NN`` as everywhere else; varieties are HR first, then the run's dialects (English is not in the
    analysis set)."""

    def __init__(self, exp: Experiment):
        self.exp = exp
        self.root: Path = exp.root
        self.name: str = exp.root.name
        m = exp.manifest()  # StoreError for a non-experiment or another format version
        try:
            self.config: RunConfig = RunConfig.from_dict(m["config"])
        except (KeyError, TypeError) as e:
            raise StoreError(f"{exp.manifest_path} has no usable config ({e}); rerun the experiment into a new "
                             "folder.") from e
        self._memo: dict[str, tuple[Any, Any]] = {}

    # ------------------------------------------------------------ memoisation keyed by file state

    def _memoised(self, name: str, paths: list[Path], load: Callable[[], Any]) -> Any:
        """``load()``, recomputed only when one of ``paths`` changed (mtime, size) since the last call."""
        state = []
        for p in paths:
            try:
                st = p.stat()
                state.append((st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                state.append(None)
        state_t = tuple(state)
        hit = self._memo.get(name)
        if hit is not None and hit[0] == state_t:
            return hit[1]
        value = load()
        self._memo[name] = (state_t, value)
        return value

    # ------------------------------------------------------------ what is there

    @property
    def manifest(self) -> dict:
        return self._memoised("manifest", [self.exp.manifest_path], self.exp.manifest)

    def _data_info(self) -> dict:
        def load() -> dict:
            try:
                return read_json(self.root / "data.json")
            except FileNotFoundError:
                return {}
        return self._memoised("data", [self.root / "data.json"], load)

    @property
    def dialects(self) -> tuple[str, ...]:
        d = self._data_info().get("dialects")
        if d:
            return tuple(d)
        man = self._rep_manifest_or_none()
        if man:
            return tuple(v for v in man["varieties"] if v != HR)
        return tuple(self.config.varieties)

    @property
    def varieties(self) -> tuple[str, ...]:
        return (HR, *self.dialects)

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(a for a in self.config.arms if self.exp.checkpoints(a))

    @property
    def models(self) -> tuple[str, ...]:
        return ("base", *self.arms)

    @property
    def sites(self) -> tuple[str, ...]:
        """Decoder-layer sites in the representation cache (before it exists: every layer of the base model)."""
        man = self._rep_manifest_or_none()
        if man:
            return tuple(man["sites"])
        return self._model_sites()

    def _model_sites(self) -> tuple[str, ...]:
        from .model import site_name
        from .pipeline import base_model_path
        try:
            cfg = json.loads((base_model_path(self.exp, self.config) / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            return ()
        cfg = cfg.get("text_config", cfg)
        n = cfg.get("num_hidden_layers") or cfg.get("n_layer") or 0
        return tuple(site_name(i) for i in range(int(n)))

    @property
    def penalised_sites(self) -> tuple[str, ...]:
        return rep.penalised_sites(self.exp, self.config)

    @property
    def complete(self) -> bool:
        stages = self.manifest.get("stages", {})
        need = ["prepare", *([] if self.config.base_steps == 0 else ["base"]),
                *[f"arm:{a}" for a in self.config.arms], "eval:base", *[f"eval:{a}" for a in self.config.arms],
                "represent"]
        return all(stages.get(s, {}).get("done", False) for s in need)

    def checkpoints(self, model: str) -> list[int]:
        """Steps with weights (and representations, once built): ``"base"`` -> [0]."""
        if model == "base":
            return [0]
        if model not in self.config.arms:
            raise ValueError(f"unknown model {model!r}; this experiment has {list(self.models)}")
        return self.exp.checkpoints(model)

    def progress(self) -> dict | None:
        return self.exp.progress()

    # ------------------------------------------------------------ representation cache

    def _rep_manifest(self) -> dict:
        path = rep.represent_dir(self.exp) / "manifest.json"

        def load() -> dict | None:
            return rep.read_represent_manifest(self.exp)
        man = self._memoised("rep_manifest", [path], load)
        if man is None:
            raise StoreError(f"{self.root} has no representation cache yet. Build it with "
                             f"`python -m explorer represent {self.root}`.")
        why = rep.incompatibility(man, self.config)
        if why:
            raise StoreError(f"the representation cache in {self.root} cannot be used: {why}. Rebuild it with "
                             f"`python -m explorer represent {self.root}`.")
        return man

    def _rep_manifest_or_none(self) -> dict | None:
        try:
            return self._rep_manifest()
        except StoreError:
            return None

    def _entry(self, model: str, step: int, site: str) -> tuple[dict, dict]:
        man = self._rep_manifest()
        if site not in man["sites"]:
            raise ValueError(f"unknown site {site!r}; the cache has {man['sites'][0]} to {man['sites'][-1]}")
        entry = man["entries"].get(rep.entry_key(model, step))
        if entry is None:
            have = [k for k in man["entries"] if k.startswith(model + "/")]
            raise StoreError(f"no representations for {model} at step {step} in {self.root} (cached: "
                             f"{have or 'none for this model'}). Run `python -m explorer represent {self.root}`.")
        return man, entry

    def index(self) -> pd.DataFrame:
        """The analysis rows: row, sent_id, variety, split, text (row i of every variety is the same sentence)."""
        path = rep.represent_dir(self.exp) / "index.jsonl"
        self._rep_manifest()

        def load() -> pd.DataFrame:
            return pd.DataFrame(read_jsonl(path), columns=["row", "sent_id", "variety", "split", "text"])
        return self._memoised("index", [path], load).copy()

    def representations(self, model: str, step: int, site: str) -> np.ndarray:
        """(n_rows, d) float32 pooled sentence vectors, read lazily (one tensor) and checked against its checksum."""
        man, entry = self._entry(model, step, site)
        path = rep.represent_dir(self.exp) / entry["file"]
        hint = f"Rebuild it with `python -m explorer represent {self.root}`."
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise StoreError(f"{path} is missing. {hint}") from None
        if size != entry["bytes"]:
            raise StoreError(f"{path} is truncated or was replaced ({size} bytes, expected {entry['bytes']}). {hint}")
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="np") as f:
                a = f.get_tensor(site)
        except Exception as e:  # safetensors raises several types for damaged files
            raise StoreError(f"{path} is damaged ({e}). {hint}") from e
        if a.shape != (man["n_rows"], man["d"]) or rep.tensor_sha256(a) != entry["sha256"].get(site):
            raise StoreError(f"{path}[{site}] does not match its checksum (damaged). {hint}")
        return a.astype(np.float32)

    # ------------------------------------------------------------ geometry

    def geometry_long(self) -> pd.DataFrame:
        """Every geometry record: model, step, site, variety, centroid_cosine, centroid_l2, paired_cosine, cka,
        energy_share_mean (None where the site has no MSA subspace), subspace_step, subspace_refit."""
        path = rep.represent_dir(self.exp) / "geometry.jsonl"
        self._rep_manifest()

        def load() -> pd.DataFrame:
            if not path.exists():
                raise StoreError(f"{path} is missing. Run `python -m explorer represent {self.root}`.")
            return pd.DataFrame(read_jsonl(path)).reindex(columns=GEOMETRY_COLUMNS)
        return self._memoised("geometry", [path], load).copy()

    def geometry(self, model: str, step: int, site: str) -> pd.DataFrame:
        """The ``geometry.geometry_table`` records of one (model, step, site), one row per variety."""
        g = self.geometry_long()
        out = g[(g["model"] == model) & (g["step"] == step) & (g["site"] == site)]
        if out.empty:
            self._entry(model, step, site)  # a clear error for an unknown slice
        return out.reset_index(drop=True)

    def energy_heatmap(self, model: str, site: str) -> pd.DataFrame:
        """Mean MSA-subspace energy share: index variety, columns step, NaN where there is no subspace.

        For an arm, step 0 is the base model (every arm starts from it)."""
        g = self.geometry_long()
        steps = [0] if model == "base" else [0, *self.checkpoints(model)]
        sel = g[(g["site"] == site) & (((g["model"] == model) & (g["step"] > 0)) |
                                       ((g["model"] == "base") & (g["step"] == 0)))]
        table = sel.pivot_table(index="variety", columns="step", values="energy_share_mean", aggfunc="first",
                                dropna=False)
        return table.reindex(index=list(self.varieties), columns=steps).astype(float)

    def pca(self, model: str, step: int, site: str) -> np.ndarray:
        """(n_rows, 2) float32 PCA coordinates (cached by the represent stage; recomputed if the cache is bad)."""
        man, entry = self._entry(model, step, site)
        cached = _read_pca(rep.represent_dir(self.exp), man, entry, site)
        return cached if cached is not None else pca_2d(self.representations(model, step, site))

    def umap(self, model: str, step: int, site: str, params: UmapParams = DEFAULT_UMAP) -> np.ndarray:
        """(n_rows, 2) float32 UMAP coordinates, computed once per (model, step, site, params) and kept on disk.

        The cache file's json holds the parameters, the checksum of the representations it came from and the
        umap-learn version; a mismatch recomputes it."""
        man, entry = self._entry(model, step, site)
        src = entry["sha256"][site]
        pkey = hashlib.sha256(json.dumps(params.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
        stem = rep.represent_dir(self.exp) / "umap" / f"{model}-step-{step:06d}-{site}-{pkey}"
        meta_path, npy_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".npy")
        want = {"params": params.to_dict(), "source_sha256": src, "shape": [man["n_rows"], 2]}
        try:
            meta = json.loads(meta_path.read_text())
            if all(meta.get(k) == v for k, v in want.items()):
                a = np.load(npy_path, allow_pickle=False)
                if a.shape == (man["n_rows"], 2) and a.dtype == np.float32 and np.isfinite(a).all():
                    return a
        except (OSError, ValueError, json.JSONDecodeError):
            pass  # missing or damaged: recompute
        emb = umap_2d(self.representations(model, step, site), params)
        _atomic_save_npy(npy_path, emb)
        import umap as umap_lib
        store.write_json(meta_path, {**want, "umap_version": umap_lib.__version__, "model": model, "step": step,
                                     "site": site})
        return emb

    # ------------------------------------------------------------ subspaces and probes

    def refits(self, arm: str = "decoupled") -> pd.DataFrame:
        """One row per (refit, site): index, step, site, rank, the largest principal angle (degrees) to the previous
        and to the first refit, and the probe's accuracy, code length, compression, MI bound (NaN for the random
        control, which has no probe), and the refit's seconds."""
        rows = []
        for r in self.exp.refits(arm):
            for site, s in r.get("sites", {}).items():
                probe = s.get("probe") or {}
                rows.append({"index": r["index"], "step": r["step"], "site": site, "rank": s.get("rank"),
                             "angle_prev_deg": s.get("angle_prev_deg"), "angle_first_deg": s.get("angle_first_deg"),
                             "accuracy": probe.get("accuracy"), "code_length_bits": probe.get("code_length_bits"),
                             "compression": probe.get("compression"),
                             "mi_lower_bound_bits": probe.get("mi_lower_bound_bits"), "seconds": r.get("seconds")})
        frame = pd.DataFrame(rows, columns=REFIT_COLUMNS)
        return frame.astype({c: float for c in REFIT_COLUMNS[4:]})

    def refit_varieties(self, arm: str = "decoupled") -> pd.DataFrame:
        """One row per (refit, site, variety): the probe's per-variety n, accuracy, code length and compression."""
        rows = []
        for r in self.exp.refits(arm):
            for site, s in r.get("sites", {}).items():
                for v, m in ((s.get("probe") or {}).get("per_variety") or {}).items():
                    rows.append({"index": r["index"], "step": r["step"], "site": site, "variety": v,
                                 **{k: m.get(k) for k in ("n", "accuracy", "code_length_bits", "compression")}})
        frame = pd.DataFrame(rows, columns=REFIT_VARIETY_COLUMNS)
        return frame.astype({c: float for c in REFIT_VARIETY_COLUMNS[4:]})

    def subspace(self, step: int, site: str, arm: str = "decoupled") -> Subspace | None:
        """The arm's subspace at ``site`` current at ``step`` (latest refit at or before it), or None."""
        found = rep.subspace_at(self.exp, step, site, arm)
        return None if found is None else found[0]

    # ------------------------------------------------------------ evaluation and logs

    def scores(self) -> pd.DataFrame:
        """chrF++ per model and direction (eval/<model>/scores.json)."""
        rows = []
        for model in ("base", *self.config.arms):
            path = self.exp.eval_dir / model / "scores.json"
            if not path.exists():
                continue
            for d, s in read_json(path)["directions"].items():
                src, tgt = d.split("-", 1)
                rows.append({"model": model, "direction": d, "src": src, "tgt": tgt, "chrf": s["chrf"], "n": s["n"]})
        return pd.DataFrame(rows, columns=SCORE_COLUMNS)

    def copy_source(self) -> dict[str, float]:
        """direction -> chrF++ of outputting the source unchanged (eval/copy_source.json; empty if absent)."""
        path = self.exp.eval_dir / "copy_source.json"
        if not path.exists():
            return {}
        return {d: s["chrf"] for d, s in read_json(path)["directions"].items()}

    def deltas(self) -> pd.DataFrame:
        """Δ chrF++ of each system against the baseline with its 95% bootstrap interval (eval/deltas.json)."""
        path = self.exp.eval_dir / "deltas.json"
        rows = []
        if path.exists():
            for system, dirs in read_json(path).get("systems", {}).items():
                for d, x in dirs.items():
                    src, tgt = d.split("-", 1)
                    rows.append({"system": system, "direction": d, "src": src, "tgt": tgt,
                                 **{k: x.get(k) for k in ("delta", "low", "high", "p_value")}})
        return pd.DataFrame(rows, columns=DELTA_COLUMNS)

    def hypotheses(self) -> pd.DataFrame:
        """One row per (direction, sent_id): direction, src, tgt, sent_id, source, ref, then hyp_<model> and
        chrf_<model> for every evaluated model."""
        models = [m for m in ("base", *self.config.arms) if (self.exp.eval_dir / m / "hyps.jsonl").exists()]
        paths = [self.exp.eval_dir / m / "hyps.jsonl" for m in models]

        def load() -> pd.DataFrame:
            keys = ["direction", "src", "tgt", "sent_id", "source", "ref"]
            out: pd.DataFrame | None = None
            for m, p in zip(models, paths):
                f = pd.DataFrame(read_jsonl(p))
                f = f[keys + ["hyp", "chrf"]].rename(columns={"hyp": f"hyp_{m}", "chrf": f"chrf_{m}"})
                out = f if out is None else out.merge(f.drop(columns=["src", "tgt", "source", "ref"]),
                                                      on=["direction", "sent_id"], how="outer")
            return out if out is not None else pd.DataFrame(columns=keys)
        return self._memoised("hyps", paths, load).copy()

    def train_log(self, model: str) -> pd.DataFrame:
        """The training log of an arm (or of the base stage): step, loss, lr, grad_norm, penalty, elapsed."""
        path = self.exp.base_dir / "log.jsonl" if model == "base" else self.exp.arm_dir(model) / "log.jsonl"
        if model != "base" and model not in self.config.arms:
            raise ValueError(f"unknown model {model!r}; this experiment has {list(self.models)}")
        return pd.DataFrame(read_jsonl(path))

    def load_model(self, model: str, step: int | None = None):
        """(model in eval mode, tokenizer) of ``model`` at ``step`` (default: its last checkpoint)."""
        from .pipeline import load_arm
        if model == "base" and step not in (None, 0):
            raise ValueError(f"the base model has only step 0, not {step}")
        m, tok = load_arm(self.exp, self.config, model, None if model == "base" else step)
        return m.eval(), tok

    def __repr__(self) -> str:
        return f"ExperimentView({str(self.root)!r})"


def _read_pca(root: Path, man: dict, entry: dict, site: str) -> np.ndarray | None:
    """The cached PCA coordinates of one site, or None if the cache file is missing, stale or damaged."""
    pca = entry.get("pca")
    if not pca:
        return None
    path = root / pca["file"]
    from safetensors import safe_open
    try:
        if path.stat().st_size != pca["bytes"]:
            return None
        with safe_open(str(path), framework="np") as f:
            if (f.metadata() or {}).get("digest") != entry["digest"]:
                return None
            a = f.get_tensor(site)
    except Exception:  # noqa: BLE001 - any damage means "recompute"
        return None
    ok = a.shape == (man["n_rows"], 2) and np.isfinite(a).all()
    return a.astype(np.float32) if ok else None


def _atomic_save_npy(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, a, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
