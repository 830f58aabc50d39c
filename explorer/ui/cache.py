"""Every Streamlit cache of the app, in one place (docs/design.md §7).

Keys are short strings: an *experiment key* ``"<folder>::<manifest mtime>"`` (so a stage that finishes
invalidates what was read before it), a model name, a step, a site. Never an array or a DataFrame.
``cache_resource`` holds objects shared by every session and never mutated (experiment views, models with
their decode lock, the dialect classifier); ``cache_data`` holds tables and 2-D layouts (copied per call).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ..analysis import errors, guess, plain, readings
from ..analysis.verdict import leakage as leakage_table
from ..analysis.verdict import probe_chance
from ..analysis.verdict_text import verdict as verdict_sentences
from ..data.varieties import ENG, variety, variety_label
from ..evaluation.dialect_id import DialectClassifier
from ..evaluation.single import ModelHandle, Translation, translate_text
from ..experiment import report
from ..experiment.annotations import Annotations, AnnotationStore
from ..experiment.pack import verify_pack
from ..experiment.view import ExperimentView, list_experiment_dirs, load_experiment
from ..files import StoreError, read_json
from . import figures, maps


def experiment_key(folder: str | Path) -> str:
    """``"<folder>::<mtime_ns of manifest.json>"`` (the folder alone when there is no manifest)."""
    p = Path(folder).resolve()
    try:
        stamp = (p / "manifest.json").stat().st_mtime_ns
    except FileNotFoundError:
        stamp = 0
    return f"{p}::{stamp}"


def folder_of(key: str) -> Path:
    return Path(key.rsplit("::", 1)[0])


# ---------------------------------------------------------------- resources (shared, never mutated)


@st.cache_resource(max_entries=8, show_spinner=False)
def view(key: str) -> ExperimentView:
    v = load_experiment(folder_of(key))
    if v.exp.pack_path.exists():
        verify_pack(v.root)       # a shipped copy: every file checked once, when it is opened (experiment.pack)
    return v


ENV_THREADS = "DDE_TORCH_THREADS"


def _torch_threads() -> None:
    """One intra-op thread for decoding in the app (``$DDE_TORCH_THREADS`` to change it).

    The app decodes one sentence at a time, where per-step overhead dominates; with two or more OpenMP threads
    on a busy 2-core laptop (a training run going on beside it, as after the Run button) each decoding step
    spin-waits and one sentence took ~1 s instead of ~0.05 s with one thread. Process-wide, set once."""
    import torch

    n = max(1, int(os.environ.get(ENV_THREADS, "1") or 1))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


@st.cache_resource(max_entries=6, show_spinner="Loading the model…")
def model(key: str, name: str, step: int) -> ModelHandle:
    _torch_threads()
    m, tok = view(key).load_model(name, step)
    m.eval()
    return ModelHandle(m, tok, name, step)


@st.cache_resource(max_entries=4, show_spinner="Preparing the dialect classifier…")
def classifier(key: str) -> DialectClassifier:
    return view(key).classifier()


# ---------------------------------------------------------------- tables (copied per call)


@st.cache_data(ttl=5, show_spinner=False)
def experiment_dirs(root: str) -> list[str]:
    return [str(p) for p in list_experiment_dirs(Path(root))]


@st.cache_data(max_entries=16, show_spinner=False)
def index(key: str) -> pd.DataFrame:
    return view(key).index()


@st.cache_data(max_entries=16, show_spinner=False)
def scores(key: str) -> pd.DataFrame:
    return view(key).scores()


@st.cache_data(max_entries=16, show_spinner=False)
def deltas(key: str) -> pd.DataFrame:
    return view(key).deltas()


@st.cache_data(max_entries=16, show_spinner=False)
def headline_table(key: str) -> pd.DataFrame:
    v = view(key)
    return report.headline_table(scores(key), deltas(key), v.models, v.copy_source(), v.aggregate_deltas())


@st.cache_data(max_entries=16, show_spinner=False)
def map_frame(key: str, system: str, kind: str) -> pd.DataFrame:
    return report.map_frame(deltas(key), system, kind)


@st.cache_data(max_entries=16, show_spinner=False)
def geometry_long(key: str) -> pd.DataFrame:
    return view(key).geometry_long()


@st.cache_data(max_entries=32, show_spinner=False)
def energy_heatmap(key: str, model_name: str, site: str) -> pd.DataFrame:
    return view(key).energy_heatmap(model_name, site)


@st.cache_data(max_entries=16, show_spinner=False)
def refits(key: str, arm: str) -> pd.DataFrame:
    return view(key).refits(arm)


@st.cache_data(max_entries=16, show_spinner=False)
def refit_varieties(key: str, arm: str) -> pd.DataFrame:
    return view(key).refit_varieties(arm)


@st.cache_data(max_entries=16, show_spinner=False)
def penalties(key: str) -> pd.DataFrame:
    return view(key).penalties()


@st.cache_data(max_entries=16, show_spinner=False)
def posthoc(key: str) -> pd.DataFrame:
    return view(key).posthoc()


@st.cache_data(max_entries=128, show_spinner="Computing the layout…")
def layout(key: str, model_name: str, step: int, site: str, method: str) -> np.ndarray:
    """(n_rows, 2) plot coordinates of the analysis rows: ``method`` is "UMAP" or "PCA"."""
    v = view(key)
    if method == "UMAP":
        return v.umap(model_name, step, site)
    return v.pca(model_name, step, site)


@st.cache_resource(max_entries=4, show_spinner=False)
def msa_classifier(key: str) -> DialectClassifier:
    return view(key).msa_classifier()


@st.cache_resource(max_entries=4, show_spinner=False)
def lexicon(key: str) -> frozenset[str]:
    """Every word of the corpus's training split in the experiment's varieties (``analysis.guess``'s unknown words)."""
    from ..data.sources import load_corpus

    v = view(key)
    cfg = v.config
    train = load_corpus(cfg.data, dev=cfg.dev_size, test=cfg.test_size, seed=cfg.seed).split("train")
    return guess.lexicon(t for c in v.varieties if c in train.columns for t in train[c].dropna().astype(str))


@st.cache_data(max_entries=8, show_spinner="Reading the test translations…")
def error_table(key: str) -> pd.DataFrame:
    v = view(key)
    table = errors.error_table(v.hypotheses(), v.models, classifier(key))
    return guess.add_guesses(table, v.models, classifier(key), msa=msa_classifier(key), known=lexicon(key))


@st.cache_data(max_entries=8, show_spinner=False)
def not_msa_breakdown(key: str) -> pd.DataFrame:
    """What the MSA → dialect outputs not called MSA hold, per arm (``analysis.guess.not_msa_breakdown``)."""
    v = view(key)
    return pd.DataFrame(guess.not_msa_breakdown(error_table(key), v.arms, v.arm_of))


@st.cache_data(max_entries=8, show_spinner=False)
def test_sentences(key: str) -> pd.DataFrame:
    """The test split's parallel sentences, one row per sentence, one column per variety (and English)."""
    h = view(key).hypotheses()
    if h.empty:
        return pd.DataFrame()
    src = h[["sent_id", "src", "source"]].rename(columns={"src": "variety", "source": "text"})
    tgt = h[["sent_id", "tgt", "ref"]].rename(columns={"tgt": "variety", "ref": "text"})
    long = pd.concat([src, tgt]).drop_duplicates(["sent_id", "variety"])
    wide = long.pivot(index="sent_id", columns="variety", values="text").reset_index()
    wide.columns.name = None
    return wide


@st.cache_data(ttl=5, show_spinner=False)
def experiments_overview(root: str) -> pd.DataFrame:
    """One row per experiment folder: name, preset, corpus, varieties, arms, complete (or what is wrong)."""
    rows = []
    for d in experiment_dirs(root):
        try:
            v = view(experiment_key(d))
            rows.append({"experiment": v.name, "preset": v.config.preset, "corpus": v.config.data,
                         "dialects": ", ".join(v.dialects), "arms": ", ".join(v.arms),
                         "status": "complete" if v.complete else "incomplete",
                         "created": v.manifest.get("created", ""), "folder": d})
        except (StoreError, ValueError, OSError) as e:
            rows.append({"experiment": Path(d).name, "status": f"cannot be read: {e}", "folder": d})
    return pd.DataFrame(rows)


@st.cache_data(max_entries=128, show_spinner="Computing the layout…")
def points(key: str, model_name: str, step: int, site: str, method: str) -> pd.DataFrame:
    """The analysis rows with their 2-D coordinates and region, ready to plot."""
    df = index(key).copy()
    xy = layout(key, model_name, step, site, method)
    df["x"], df["y"] = xy[:, 0], xy[:, 1]
    df["region"] = [variety(c).region for c in df["variety"]]
    return df


# ---------------------------------------------------------------- what the pages say and draw


@st.cache_data(max_entries=16, show_spinner=False)
def data_notes(key: str) -> list[str]:
    """The corpus loader's notes for this run (skipped or missing cities, ignored files), from data.json."""
    try:
        notes = read_json(view(key).exp.data_info_path).get("notes", [])
    except (FileNotFoundError, StoreError, ValueError):
        return []
    return [str(n) for n in notes]


@st.cache_data(max_entries=16, show_spinner=False)
def summary(key: str) -> dict:
    """``experiment.report.summary``: every number of the run in one dict (what ``summary --json`` prints)."""
    return report.summary(view(key).exp)


@st.cache_data(max_entries=16, show_spinner=False)
def arm_refits(key: str, arm: str) -> pd.DataFrame:
    """The refit rows of every seed of ``arm`` (an arm name such as "decoupled"), with a ``model`` column."""
    v = view(key)
    frames = [refits(key, m).assign(model=m) for m in v.arms if v.arm_of(m) == arm]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@st.cache_data(max_entries=16, show_spinner=False)
def leakage(key: str) -> pd.DataFrame:
    """What the MSA → dialect outputs look like per arm (``analysis.verdict.leakage``): as requested, called MSA."""
    return leakage_table(summary(key))


@st.cache_data(max_entries=16, show_spinner=False)
def dose_response(key: str) -> pd.DataFrame:
    """The λ sweep (``experiment.report.dose_response``), one row per decoupled arm and the baseline; empty when
    the experiment has no sweep arm."""
    s = summary(key)
    if not any(a.startswith("decoupled-") for a in s["arms"]):
        return pd.DataFrame()
    return pd.DataFrame(report.dose_response(s))


@st.cache_data(max_entries=16, show_spinner=False)
def verdict(key: str, arm: str = "decoupled", reference: str = "baseline") -> list[str]:
    return verdict_sentences(summary(key), refits=arm_refits(key, arm), arm=arm, reference=reference)


@st.cache_data(max_entries=16, show_spinner=False)
def plain_summary(key: str, arm: str = "decoupled", reference: str = "baseline") -> list[str]:
    """``analysis.plain.summary``: the verdict's numbers in at most 60 plain words, for Home's first lines."""
    return plain.summary(summary(key), refits=arm_refits(key, arm), arm=arm, reference=reference)


@st.cache_data(max_entries=16, show_spinner=False)
def delta_limit(key: str) -> float:
    return figures.delta_limit(deltas(key))


@st.cache_data(max_entries=16, show_spinner=False)
def probe_chance_of(key: str, arm: str) -> float:
    return probe_chance(refit_varieties(key, arm))


@st.cache_data(max_entries=64, show_spinner=False)
def msa_distances(key: str, model_name: str, step: int, site: str) -> pd.DataFrame:
    return readings.msa_distances(geometry_long(key), model_name, step, site)


@st.cache_data(max_entries=64, show_spinner=False)
def seed_distances(key: str, step: int, site: str) -> pd.DataFrame:
    """Every model's mean distance of the dialects to MSA at ``site``, each at its checkpoint nearest ``step``."""
    v = view(key)
    steps = {m: 0 if m == "base" else min(v.checkpoints(m), key=lambda c: abs(c - step)) for m in v.models}
    return readings.seed_distances(geometry_long(key), steps, site)


@st.cache_data(max_entries=8, show_spinner=False)
def annotations(root: str, stamp: int) -> Annotations:
    """The annotations file as read at modification time ``stamp`` (AnnotationsError for a damaged file)."""
    return AnnotationStore(root).load()


def _map(key: str, system: str, kind: str) -> go.Figure:
    return maps.delta_map(map_frame(key, system, kind), f"Δ chrF++ ({system} − baseline), {kind}",
                             delta_limit(key))


def _bars(key: str, system: str, kind: str) -> go.Figure:
    table = headline_table(key)
    table = table[~table["mean"]] if "mean" in table.columns else table
    d = deltas(key)
    d = d[(d["system"] == system) & (d["direction"].isin(table.loc[table["kind"] == kind, "code"]))]
    return figures.delta_bars(d, list(table["direction"]), f"{system} − baseline, {kind} (whiskers: 95% interval)",
                              delta_limit(key))


def _dose(key: str) -> go.Figure:
    return figures.dose_response(dose_response(key))


def _angles(key: str, arm: str) -> go.Figure:
    return figures.angles(refits(key, arm))


def _probe(key: str, arm: str, metric: str, varieties: tuple[str, ...]) -> go.Figure:
    return figures.probe(refits(key, arm), refit_varieties(key, arm), probe_chance_of(key, arm), varieties, metric)


def _penalties(key: str, arms: tuple[str, ...]) -> go.Figure:
    return figures.penalties(penalties(key), arms)


def _posthoc(key: str, models: tuple[str, ...], site: str) -> go.Figure:
    return figures.posthoc_vs_energy(geometry_long(key), posthoc(key), models, site)


def _energy(key: str, model_name: str, site: str, lo: float, hi: float) -> go.Figure:
    return figures.energy_heatmap(energy_heatmap(key, model_name, site),
                                  f"{model_name} at {site}", (lo, hi) if np.isfinite(lo) else None)


def _layers(key: str, metric: str, variety_code: str, step: int, models: tuple[str, ...]) -> go.Figure:
    g = geometry_long(key)
    g = g[(g["step"] == step) | (g["model"] == "base")]
    return figures.per_layer(g, metric, variety_code, models,
                             f"{figures.GEOMETRY_LABELS[metric]}, {variety_label(variety_code)} vs MSA, step {step}")


def _embedding(key: str, model_name: str, step: int, site: str, method: str, colour: str, link: str,
               title: str) -> go.Figure:
    return figures.embedding(points(key, model_name, step, site, method), colour_by=colour, link=link or None,
                             title=title)


FIGURES = {"map": _map, "bars": _bars, "dose": _dose, "angles": _angles, "probe": _probe,
           "penalties": _penalties, "posthoc": _posthoc, "energy": _energy, "layers": _layers,
           "embedding": _embedding}


@st.cache_resource(max_entries=256, show_spinner=False)
def figure(name: str, key: str, *args) -> go.Figure:
    """A figure of the app, built once per (experiment key, arguments): pages redraw it without rebuilding it.
    Shared by every session, so never mutated: ``st.plotly_chart`` only serialises it, and a page that wants a
    variant copies it first (``go.Figure(fig)``); ``tests/test_app.py`` checks every cached figure after the renders."""
    return FIGURES[name](key, *args)


@st.cache_data(max_entries=64, show_spinner=False)
def subspace_source(key: str, model_name: str, step: int) -> str:
    """Which subspace the Translate switch removes for ``model_name`` at ``step`` (``readings.subspace_source``)."""
    v = view(key)
    subs = v.projection(model_name, step if model_name != "base" else 0, 1.0).subspaces
    return readings.subspace_source({site: (s.kind, int(s.step)) for site, s in subs.items()}, str(v.root))


@st.cache_data(max_entries=256, show_spinner=False)
def translation(key: str, model_name: str, step: int, src: str, tgt: str, text: str, alpha: float) -> Translation:
    """One sentence by one model, with the decoupling switch at strength ``alpha`` (0 = off). ValueError for input
    to fix. Cached: toggling back is instant."""
    v = view(key)
    cfg = v.config
    projection = v.projection(model_name, step if model_name != "base" else 0, alpha)
    return translate_text(model(key, model_name, step), [*v.varieties, ENG], text, src, tgt, max_len=cfg.max_len,
                          max_new_tokens=cfg.max_new_tokens, projection=projection)
