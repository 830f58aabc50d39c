"""The read API the app calls: one experiment folder as typed tables and arrays (no Streamlit here).

    view = load_experiment("cache/default")
    x = view.representations("decoupled", 400, "layer.02")      # (n_rows, d) float32
    xy = view.umap("decoupled", 400, "layer.02")                 # (n_rows, 2), computed, never stored
    view.geometry("baseline", 400, "layer.02")                   # one row per variety

A view is a snapshot: it reads the folder's small metadata (manifest, data notes, representation manifest,
checkpoints) once when it is made and never changes afterwards, so the app can share one between sessions
(``st.cache_resource``) and make a new one when the manifest changes. Everything else (tables, arrays) is read
from the files on each call; the app caches those with ``st.cache_data``. A damaged or incompatible cache raises
``StoreError`` saying what to run, never returns garbage.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..analysis import repcache
from ..analysis.geometry import UmapParams, pca_2d, umap_2d
from ..config import RunConfig
from ..data.varieties import HR
from ..evaluation import dialect_id
from ..files import StoreError, read_json
from ..method.hooks import Projection
from ..method.subspace import Subspace, qr_basis
from ..model.sites import site_name
from ..names import arm_kind, parse_model
from . import results
from .classify import stored_classifier
from .layout import CACHE_ROOT, Experiment, arm_models, list_experiments
from .models import base_model_path, load_arm
from .refits import penalised_sites, subspace_at

__all__ = ["ExperimentView", "list_experiment_dirs", "load_experiment"]

REFIT_COLUMNS = ["index", "step", "site", "rank", "angle_prev_deg", "angle_first_deg", "accuracy",
                 "code_length_bits", "compression", "mi_lower_bound_bits", "seconds", "chance", "gate_threshold",
                 "accepted", "gate_reason"]
PROBE_COLUMNS = ["model", "arm", "seed", "step", "site", "accuracy", "chance", "n_train", "n_heldout", "rank",
                 "input"]
REFIT_VARIETY_COLUMNS = ["index", "step", "site", "variety", "n", "accuracy", "code_length_bits", "compression"]
GEOMETRY_COLUMNS = ["model", "step", "site", "variety", *repcache.GEOMETRY_METRICS, "subspace_step",
                    "subspace_refit"]
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
        self._checkpoints: dict[str, tuple[int, ...]] = {m: tuple(exp.checkpoints(m)) for m in arm_models(self.config)}
        self._rep_manifest, self._rep_problem = self._read_rep_manifest()
        # the arm models ("<arm>.s<seed>") that have at least one checkpoint, arm by arm
        self.arms: tuple[str, ...] = tuple(m for m in arm_models(self.config) if self._checkpoints[m])
        self.models: tuple[str, ...] = ("base", *self.arms)
        self.seeds: tuple[int, ...] = tuple(self.config.seeds)
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
        why = repcache.incompatibility(man, self.manifest["fingerprint"])
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
        models = arm_models(self.config)
        need = ["prepare", *([] if self.config.base_steps == 0 else ["base"]),
                *[self.exp.stage_key("arm", m) for m in models], "eval:base",
                *[self.exp.stage_key("eval", m) for m in models], "represent"]
        return all(stages.get(s, {}).get("done", False) for s in need)

    def has_stage(self, stage: str) -> bool:
        return bool(self.manifest.get("stages", {}).get(stage, {}).get("done"))

    def checkpoints(self, model: str) -> list[int]:
        """Steps with weights (and representations, once built): ``"base"`` -> [0]."""
        if model == "base":
            return [0]
        if model not in self._checkpoints:
            raise ValueError(f"unknown model {model!r}; this experiment has {list(self.models)}")
        return list(self._checkpoints[model])

    def arm_of(self, model: str) -> str:
        """``"decoupled.s1"`` -> ``"decoupled"`` (``"base"`` -> ``"base"``)."""
        return parse_model(model)[0]

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
        """(n_rows, 2) float32 UMAP coordinates, computed here and written nowhere: a view never writes into the
        experiment folder. The app holds each layout in memory (``ui.cache.layout``)."""
        return umap_2d(self.representations(model, step, site), params)

    # ------------------------------------------------------------ subspaces and probes

    def refits(self, model: str = "decoupled.s0") -> pd.DataFrame:
        """One row per (refit, site) of a decoupled or random arm: index, step, site, rank, the largest principal angle
        (degrees) to the previous accepted and to the first accepted subspace, the probe's accuracy, code length,
        compression, MI bound (NaN for the random control, which has no probe), the refit's seconds, and the gate:
        whether it was accepted, the accuracy it had to beat and why."""
        rows = []
        for r in self.exp.refits(model):
            for site, s in r.get("sites", {}).items():
                probe = s.get("probe") or {}
                gate = s.get("gate") or {"accepted": True, "reason": "no gate (format 1)"}
                rows.append({"index": r["index"], "step": r["step"], "site": site, "rank": s.get("rank"),
                             "angle_prev_deg": s.get("angle_prev_deg"), "angle_first_deg": s.get("angle_first_deg"),
                             "accuracy": probe.get("accuracy"), "code_length_bits": probe.get("code_length_bits"),
                             "compression": probe.get("compression"),
                             "mi_lower_bound_bits": probe.get("mi_lower_bound_bits"), "seconds": r.get("seconds"),
                             "chance": probe.get("chance_rate"), "gate_threshold": gate.get("threshold"),
                             "accepted": bool(gate["accepted"]), "gate_reason": gate.get("reason", "")})
        frame = pd.DataFrame(rows, columns=REFIT_COLUMNS)
        return frame.astype({c: float for c in REFIT_COLUMNS[4:13]})

    def refit_varieties(self, model: str = "decoupled.s0") -> pd.DataFrame:
        """One row per (refit, site, variety): the probe's per-variety n, accuracy, code length and compression."""
        rows = []
        for r in self.exp.refits(model):
            for site, s in r.get("sites", {}).items():
                for v, m in ((s.get("probe") or {}).get("per_variety") or {}).items():
                    rows.append({"index": r["index"], "step": r["step"], "site": site, "variety": v,
                                 **{k: m.get(k) for k in ("n", "accuracy", "code_length_bits", "compression")}})
        frame = pd.DataFrame(rows, columns=REFIT_VARIETY_COLUMNS)
        return frame.astype({c: float for c in REFIT_VARIETY_COLUMNS[4:]})

    def subspace(self, model: str, step: int, site: str) -> Subspace | None:
        """The MSA subspace of ``model`` at ``step`` and ``site``: for a decoupled arm, the U it was trained against
        at that step (latest accepted refit); for every other model (and where an arm has none), its post-hoc probe
        at that checkpoint (``posthoc``). None when neither exists."""
        if arm_kind(self.arm_of(model)) == "decoupled":
            found = subspace_at(self.exp, step, site, model)
            if found is not None:
                return found[0]
        man = self._rep_manifest
        entry = man["entries"].get(repcache.entry_key(model, step)) if man else None
        bases = repcache.read_probe_bases(self.exp.represent_dir, entry) if entry else None
        if not bases or site not in bases:
            return None
        basis = torch.as_tensor(bases[site], dtype=torch.float32)
        return Subspace(qr_basis(basis).to(torch.float32), site=site, step=step, kind="posthoc")

    def projection(self, model: str, step: int, alpha: float) -> Projection:
        """The decoupling switch for ``model`` at ``step``, strength ``alpha``: its own MSA subspace (``subspace``) at
        each penalised site. Off, with no subspace, when the model has none (representations not built yet)."""
        subs = {}
        for site in self.penalised_sites:
            sub = self.subspace(model, step, site)
            if sub is not None:
                subs[site] = sub
        return Projection(subs, alpha)

    def posthoc(self) -> pd.DataFrame:
        """One row per (model, checkpoint, site): the post-hoc probe's held-out accuracy (MSA vs dialect tokens,
        classes balanced, held out by sentence; chance 0.5), how much MSA information is still linearly there, and
        what it read (``input``: "tagged source", the sentence after its variety tag as a prompt's source, as the
        training probe reads it)."""
        man = self._rep()
        rows = []
        for entry in man["entries"].values():
            for site, rec in (entry.get("probes") or {}).get("sites", {}).items():
                arm, seed = parse_model(entry["model"])
                rows.append({"model": entry["model"], "arm": arm, "seed": seed, "step": entry["step"], "site": site,
                             **{k: rec.get(k) for k in PROBE_COLUMNS[5:]}})
        return pd.DataFrame(rows, columns=PROBE_COLUMNS).sort_values(["model", "step", "site"]).reset_index(drop=True)

    # ------------------------------------------------------------ evaluation and logs

    def scores(self) -> pd.DataFrame:
        """See ``experiment.results.scores``."""
        return results.scores(self.exp, self.config)

    def looks_like(self) -> pd.DataFrame:
        """See ``experiment.results.looks_like``."""
        return results.looks_like(self.exp, self.config)

    def classifiers(self) -> dict:
        """See ``experiment.results.classifiers``."""
        return results.classifiers(self.exp)

    def copy_source(self) -> dict[str, float]:
        """See ``experiment.results.copy_source``."""
        return results.copy_source(self.exp)

    def deltas(self) -> pd.DataFrame:
        """See ``experiment.results.deltas``."""
        return results.deltas(self.exp)

    def aggregate_deltas(self) -> pd.DataFrame:
        """See ``experiment.results.aggregate_deltas``."""
        return results.aggregate_deltas(self.exp)

    def hypotheses(self) -> pd.DataFrame:
        """See ``experiment.results.hypotheses``."""
        return results.hypotheses(self.exp, self.config)

    def train_log(self, model: str) -> pd.DataFrame:
        """The training log of an arm (or of the base stage): step, loss, lr, grad_norm, penalty, elapsed."""
        if model != "base" and model not in self._checkpoints:
            raise ValueError(f"unknown model {model!r}; this experiment has {list(self.models)}")
        return pd.DataFrame(self.exp.train_log(model))

    def load_model(self, model: str, step: int | None = None):
        """(model in eval mode, tokenizer) of ``model`` at ``step`` (default: its last checkpoint)."""
        if model == "base" and step not in (None, 0):
            raise ValueError(f"the base model has only step 0, not {step}")
        m, tok = load_arm(self.exp, self.config, model, None if model == "base" else step)
        return m.eval(), tok

    def classifier(self) -> dialect_id.DialectClassifier:
        """The experiment's dialect classifier (every variety of the run), as the evaluation stage stored it (fitted
        in memory, not stored, for a folder that has none)."""
        return stored_classifier(self.exp, self.config, list(self.varieties), msa_vs_dialect=False)

    def msa_classifier(self) -> dialect_id.DialectClassifier:
        """The MSA-vs-dialect classifier behind the MSA-leakage numbers."""
        return stored_classifier(self.exp, self.config, list(self.varieties), msa_vs_dialect=True)

    def penalties(self) -> pd.DataFrame:
        """The penalty trajectories of every decoupled and random arm: model, arm, seed, step, penalty (NaN where no
        U was in force yet), read side by side to see the matched control's penalty reset at each redraw."""
        frames = []
        for m in self.arms:
            if arm_kind(self.arm_of(m)) == "baseline":
                continue
            log = pd.DataFrame(self.exp.train_log(m))
            if log.empty:
                continue
            arm, seed = parse_model(m)
            frames.append(log.reindex(columns=["step", "penalty"]).assign(model=m, arm=arm, seed=seed))
        cols = ["model", "arm", "seed", "step", "penalty"]
        return pd.concat(frames)[cols].astype({"penalty": float}) if frames else pd.DataFrame(columns=cols)

    def __repr__(self) -> str:
        return f"ExperimentView({str(self.root)!r})"
