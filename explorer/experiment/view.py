"""The read API the app calls: one experiment folder as typed tables and arrays (no Streamlit here).

    view = load_experiment("cache/default")
    x = view.representations("decoupled", 400, "layer.02")      # (n_rows, d) float32
    xy = view.umap("decoupled", 400, "layer.02")                 # (n_rows, 2), cached on disk
    view.geometry("baseline", 400, "layer.02")                   # one row per variety

A view is a snapshot: it reads the folder's small metadata (manifest, data notes, representation manifest,
checkpoints) once when it is made and never changes afterwards, so the app can share one between sessions
(``st.cache_resource``) and make a new one when the manifest changes. Everything else (tables, arrays) is read
from the files on each call; the app caches those with ``st.cache_data``. A damaged or incompatible cache raises
``StoreError`` saying what to run, never returns garbage.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis import repcache
from ..analysis.geometry import UmapParams, pca_2d, umap_2d
from ..config import RunConfig
from ..data.varieties import HR
from ..evaluation import dialect_id
from ..files import StoreError, load_npy, read_json, read_jsonl, save_npy, write_json
from ..method.hooks import Projection
from ..method.subspace import Subspace
from ..model.sites import site_name
from .layout import CACHE_ROOT, Experiment, list_experiments
from .models import base_model_path, load_arm
from .represent import penalised_sites, subspace_at

__all__ = ["ExperimentView", "list_experiment_dirs", "load_experiment"]

REFIT_COLUMNS = ["index", "step", "site", "rank", "angle_prev_deg", "angle_first_deg", "accuracy",
                 "code_length_bits", "compression", "mi_lower_bound_bits", "seconds"]
REFIT_VARIETY_COLUMNS = ["index", "step", "site", "variety", "n", "accuracy", "code_length_bits", "compression"]
GEOMETRY_COLUMNS = ["model", "step", "site", "variety", *repcache.GEOMETRY_METRICS, "subspace_step",
                    "subspace_refit"]
SCORE_COLUMNS = ["model", "direction", "src", "tgt", "chrf", "n"]
DELTA_COLUMNS = ["system", "direction", "src", "tgt", "delta", "low", "high", "p_value"]
DEFAULT_UMAP = UmapParams()


def load_experiment(path: str | Path) -> ExperimentView:
    """Open an experiment folder; StoreError (with what to do) for a folder that is not one or has another version."""
    p = Path(path).expanduser()
    if not p.exists():
        raise StoreError(f"{p} does not exist. Pick an experiment folder, or create one with "
                         "`python -m explorer run --out DIR`.")
    if not p.is_dir():
        raise StoreError(f"{p} is a file; an experiment is a folder holding manifest.json.")
    return ExperimentView(Experiment(p))


def list_experiment_dirs(root: Path = CACHE_ROOT) -> list[Path]:
    """Experiment folders (those with a manifest.json) directly under ``root``, sorted by name."""
    return list_experiments(Path(root))


class ExperimentView:
    """One experiment folder, read-only. Construct with ``load_experiment``.

    Models are ``"base"`` (the stage-1 model, step 0) and the arms that have at least one checkpoint; sites are
    named ``layer.NN`` as everywhere else; varieties are HR first, then the run's dialects (English is not in the
    analysis set). What is read at construction (manifest, data notes, checkpoints, representation manifest) is a
    snapshot: nothing here changes after ``__init__``."""

    def __init__(self, exp: Experiment):
        self.exp = exp
        self.root: Path = exp.root
        self.name: str = exp.root.name
        self.manifest: dict = exp.manifest()  # StoreError for a non-experiment or another format version
        try:
            self.config: RunConfig = RunConfig.from_dict(self.manifest["config"])
        except (KeyError, TypeError) as e:
            raise StoreError(f"{exp.manifest_path} has no usable config ({e}); rerun the experiment into a new "
                             "folder.") from e
        try:
            self._data_info: dict = read_json(exp.data_info_path)
        except FileNotFoundError:
            self._data_info = {}
        self._checkpoints: dict[str, tuple[int, ...]] = {a: tuple(exp.checkpoints(a)) for a in self.config.arms}
        self._rep_manifest, self._rep_problem = self._read_rep_manifest()
        self.arms: tuple[str, ...] = tuple(a for a in self.config.arms if self._checkpoints[a])
        self.models: tuple[str, ...] = ("base", *self.arms)
        self.dialects: tuple[str, ...] = self._find_dialects()
        self.varieties: tuple[str, ...] = (HR, *self.dialects)
        self.sites: tuple[str, ...] = (tuple(self._rep_manifest["sites"]) if self._rep_manifest
                                       else self._model_sites())
        self.penalised_sites: tuple[str, ...] = penalised_sites(exp, self.config)

    # ------------------------------------------------------------ what is there

    def _read_rep_manifest(self) -> tuple[dict | None, str]:
        hint = f"`python -m explorer represent {self.root}`"
        try:
            man = repcache.read_represent_manifest(self.exp.represent_dir)
        except StoreError as e:
            return None, f"the representation cache in {self.root} cannot be used: {e}. Rebuild it with {hint}."
        if man is None:
            return None, f"{self.root} has no representation cache yet. Build it with {hint}."
        why = repcache.incompatibility(man, self.config)
        if why:
            return None, f"the representation cache in {self.root} cannot be used: {why}. Rebuild it with {hint}."
        return man, ""

    def _find_dialects(self) -> tuple[str, ...]:
        d = self._data_info.get("dialects")
        if d:
            return tuple(d)
        if self._rep_manifest:
            return tuple(v for v in self._rep_manifest["varieties"] if v != HR)
        return tuple(self.config.varieties)

    def _model_sites(self) -> tuple[str, ...]:
        try:
            cfg = json.loads((base_model_path(self.exp, self.config) / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            return ()
        cfg = cfg.get("text_config", cfg)
        n = cfg.get("num_hidden_layers") or cfg.get("n_layer") or 0
        return tuple(site_name(i) for i in range(int(n)))

    @property
    def complete(self) -> bool:
        stages = self.manifest.get("stages", {})
        need = ["prepare", *([] if self.config.base_steps == 0 else ["base"]),
                *[f"arm:{a}" for a in self.config.arms], "eval:base", *[f"eval:{a}" for a in self.config.arms],
                "represent"]
        return all(stages.get(s, {}).get("done", False) for s in need)

    def has_stage(self, stage: str) -> bool:
        return bool(self.manifest.get("stages", {}).get(stage, {}).get("done"))

    def checkpoints(self, model: str) -> list[int]:
        """Steps with weights (and representations, once built): ``"base"`` -> [0]."""
        if model == "base":
            return [0]
        if model not in self.config.arms:
            raise ValueError(f"unknown model {model!r}; this experiment has {list(self.models)}")
        return list(self._checkpoints[model])

    def progress(self) -> dict | None:
        return self.exp.progress()

    # ------------------------------------------------------------ representation cache

    def _rep(self) -> dict:
        if self._rep_manifest is None:
            raise StoreError(self._rep_problem)
        return self._rep_manifest

    def _entry(self, model: str, step: int, site: str) -> tuple[dict, dict]:
        man = self._rep()
        if site not in man["sites"]:
            raise ValueError(f"unknown site {site!r}; the cache has {man['sites'][0]} to {man['sites'][-1]}")
        entry = man["entries"].get(repcache.entry_key(model, step))
        if entry is None:
            have = [k for k in man["entries"] if k.startswith(model + "/")]
            raise StoreError(f"no representations for {model} at step {step} in {self.root} (cached: "
                             f"{have or 'none for this model'}). Run `python -m explorer represent {self.root}`.")
        return man, entry

    def index(self) -> pd.DataFrame:
        """The analysis rows: row, sent_id, variety, split, text (row i of every variety is the same sentence)."""
        self._rep()
        return repcache.read_index(self.exp.represent_dir)

    def representations(self, model: str, step: int, site: str) -> np.ndarray:
        """(n_rows, d) float32 pooled sentence vectors, read lazily (one tensor) and checked against its checksum."""
        man, entry = self._entry(model, step, site)
        return repcache.read_matrix(self.exp.represent_dir, man, entry, site,
                                    f"Rebuild it with `python -m explorer represent {self.root}`.")

    # ------------------------------------------------------------ geometry

    def geometry_long(self) -> pd.DataFrame:
        """Every geometry record: model, step, site, variety, centroid_cosine, centroid_l2, paired_cosine, cka,
        energy_share_mean (None where the site has no MSA subspace), subspace_step, subspace_refit."""
        self._rep()
        try:
            rows = repcache.read_geometry(self.exp.represent_dir)
        except StoreError as e:
            raise StoreError(f"{e} Run `python -m explorer represent {self.root}`.") from None
        return pd.DataFrame(rows).reindex(columns=GEOMETRY_COLUMNS)

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
        cached = repcache.read_pca(self.exp.represent_dir, man, entry, site)
        return cached if cached is not None else pca_2d(self.representations(model, step, site))

    def umap(self, model: str, step: int, site: str, params: UmapParams = DEFAULT_UMAP) -> np.ndarray:
        """(n_rows, 2) float32 UMAP coordinates, computed once per (model, step, site, params) and kept on disk.

        The cache file's json holds the parameters, the checksum of the representations it came from and the
        umap-learn version; a mismatch recomputes it."""
        man, entry = self._entry(model, step, site)
        src = entry["sha256"][site]
        pkey = hashlib.sha256(json.dumps(params.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
        meta_path, npy_path = repcache.umap_files(self.exp.represent_dir, model, step, site, pkey)
        want = {"params": params.to_dict(), "source_sha256": src, "shape": [man["n_rows"], 2]}
        try:
            # MERGE-NOTE (issue 10, wt-rel): read through files.py so garbled cache bytes are caught (recomputed)
            meta = read_json(meta_path)
            if all(meta.get(k) == v for k, v in want.items()):
                a = load_npy(npy_path)
                if a.shape == (man["n_rows"], 2) and a.dtype == np.float32 and np.isfinite(a).all():
                    return a
        except (OSError, ValueError, json.JSONDecodeError):
            pass  # missing or damaged: recompute
        emb = umap_2d(self.representations(model, step, site), params)
        save_npy(npy_path, emb)
        import umap as umap_lib
        write_json(meta_path, {**want, "umap_version": umap_lib.__version__, "model": model, "step": step,
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
        found = subspace_at(self.exp, step, site, arm)
        return None if found is None else found[0]

    def projection(self, step: int, alpha: float, arm: str = "decoupled") -> Projection:
        """The decoupling switch at strength ``alpha`` with the subspaces ``arm`` had estimated by ``step`` at the
        penalised sites (off, with no subspace, when it has none)."""
        subs = {}
        for site in self.penalised_sites:
            sub = self.subspace(step, site, arm=arm)
            if sub is not None:
                subs[site] = sub
        return Projection(subs, alpha)

    # ------------------------------------------------------------ evaluation and logs

    def scores(self) -> pd.DataFrame:
        """chrF++ per model and direction (eval/<model>/scores.json)."""
        rows = []
        for model in ("base", *self.config.arms):
            path = self.exp.scores_path(model)
            if not path.exists():
                continue
            for d, s in read_json(path)["directions"].items():
                src, tgt = d.split("-", 1)
                rows.append({"model": model, "direction": d, "src": src, "tgt": tgt, "chrf": s["chrf"], "n": s["n"]})
        return pd.DataFrame(rows, columns=SCORE_COLUMNS)

    def copy_source(self) -> dict[str, float]:
        """direction -> chrF++ of outputting the source unchanged (eval/copy_source.json; empty if absent)."""
        path = self.exp.copy_source_path
        if not path.exists():
            return {}
        return {d: s["chrf"] for d, s in read_json(path)["directions"].items()}

    def deltas(self) -> pd.DataFrame:
        """Δ chrF++ of each system against the baseline with its 95% bootstrap interval (eval/deltas.json)."""
        path = self.exp.deltas_path
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
        keys = ["direction", "src", "tgt", "sent_id", "source", "ref"]
        out: pd.DataFrame | None = None
        for m in ("base", *self.config.arms):
            path = self.exp.hyps_path(m)
            if not path.exists():
                continue
            f = pd.DataFrame(read_jsonl(path))
            f = f[keys + ["hyp", "chrf"]].rename(columns={"hyp": f"hyp_{m}", "chrf": f"chrf_{m}"})
            out = f if out is None else out.merge(f.drop(columns=["src", "tgt", "source", "ref"]),
                                                  on=["direction", "sent_id"], how="outer")
        return out if out is not None else pd.DataFrame(columns=keys)

    def train_log(self, model: str) -> pd.DataFrame:
        """The training log of an arm (or of the base stage): step, loss, lr, grad_norm, penalty, elapsed."""
        if model != "base" and model not in self.config.arms:
            raise ValueError(f"unknown model {model!r}; this experiment has {list(self.models)}")
        return pd.DataFrame(self.exp.train_log(model))

    def load_model(self, model: str, step: int | None = None):
        """(model in eval mode, tokenizer) of ``model`` at ``step`` (default: its last checkpoint)."""
        if model == "base" and step not in (None, 0):
            raise ValueError(f"the base model has only step 0, not {step}")
        m, tok = load_arm(self.exp, self.config, model, None if model == "base" else step)
        return m.eval(), tok

    def classifier(self) -> dialect_id.DialectClassifier:
        """The experiment's dialect classifier: read from its folder, or fitted (seconds) and stored there.

        It sees the same corpus and split as the models did."""
        varieties = list(self.varieties)
        key = dialect_id.key_for(self.config, varieties)
        model = dialect_id.load(self.exp.dialect_id_dir, key)
        if model is not None:
            return model
        model = dialect_id.fit_for(self.config, varieties)
        try:
            dialect_id.save(model, self.exp.dialect_id_dir, key)
        except OSError:
            pass  # a read-only experiment folder still gets predictions, just not a stored classifier
        return model

    def __repr__(self) -> str:
        return f"ExperimentView({str(self.root)!r})"
