"""The evaluation stage's results as tables: chrF++ per model and direction, Δ against the baseline with intervals
and the noise floor, what the outputs look like, and every test translation (read from ``eval/``; the read API,
``experiment.view.ExperimentView``, hands them to the app)."""

from __future__ import annotations

import pandas as pd

from ..config import RunConfig
from ..files import read_json, read_jsonl
from ..names import parse_model
from .evaluate import AGGREGATES
from .layout import Experiment, arm_models

SCORE_COLUMNS = ["model", "arm", "seed", "direction", "src", "tgt", "chrf", "n"]
DELTA_COLUMNS = ["system", "direction", "src", "tgt", "delta", "low", "high", "p_value", "interval", "per_seed",
                 "reading", "noise_floor"]
AGGREGATE_COLUMNS = ["system", "kind", "delta", "low", "high", "interval", "reading", "noise_floor"]
LOOKS_COLUMNS = ["model", "arm", "seed", "direction", "n", "as_requested", "called_msa", "identical_across_targets"]


def scores(exp: Experiment, cfg: RunConfig) -> pd.DataFrame:
    """chrF++ per model and direction (eval/<model>/scores.json), with the model's arm and seed."""
    rows = []
    for model in ("base", *arm_models(cfg)):
        path = exp.scores_path(model)
        if not path.exists():
            continue
        for d, s in read_json(path)["directions"].items():
            src, tgt = d.split("-", 1)
            arm, seed = parse_model(model)
            rows.append({"model": model, "arm": arm, "seed": seed, "direction": d, "src": src, "tgt": tgt,
                         "chrf": s["chrf"], "n": s["n"]})
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def looks_like(exp: Experiment, cfg: RunConfig) -> pd.DataFrame:
    """Per model and MSA→dialect direction: the share of outputs assigned to the requested dialect
    (``as_requested``) and the share called MSA (``called_msa``, MSA leakage), plus each model's share of test
    sentences whose outputs are identical for every target dialect. The references' shares come as model
    ``"reference"`` (the ceiling a perfect system would reach)."""
    rows = []
    sources = [(m, exp.scores_path(m)) for m in ("base", *arm_models(cfg))]
    for model, path in sources:
        if path.exists():
            rows += _looks_like_rows(model, read_json(path).get("looks_like"))
    if exp.classifiers_path.exists():
        rows += _looks_like_rows("reference", read_json(exp.classifiers_path).get("references"))
    return pd.DataFrame(rows, columns=LOOKS_COLUMNS)


def classifiers(exp: Experiment) -> dict:
    """The classifiers' held-out accuracies (eval/classifiers.json; empty before the evaluation)."""
    path = exp.classifiers_path
    return read_json(path) if path.exists() else {}


def copy_source(exp: Experiment) -> dict[str, float]:
    """direction -> chrF++ of outputting the source unchanged (eval/copy_source.json; empty if absent)."""
    path = exp.copy_source_path
    if not path.exists():
        return {}
    return {d: s["chrf"] for d, s in read_json(path)["directions"].items()}


def deltas(exp: Experiment) -> pd.DataFrame:
    """Δ chrF++ of each system (an arm, or the base) against the baseline, per direction (eval/deltas.json): the
    mean over seeds with its 95% interval (``interval`` says what it resamples: "seeds+sentences", or
    "sentences" for one seed), the per-seed Δ, the baseline's noise floor (largest |Δ| between two of its
    seeds; NaN with one seed) and the reading of the two together."""
    path = exp.deltas_path
    rows = []
    if path.exists():
        doc = read_json(path)
        floors = doc.get("noise_floor", {})
        for system, dirs in doc.get("systems", {}).items():
            for d, x in dirs.items():
                src, tgt = d.split("-", 1)
                floor = floors.get(d)
                rows.append({"system": system, "direction": d, "src": src, "tgt": tgt,
                             **{k: x.get(k) for k in ("delta", "low", "high", "p_value")},
                             "interval": x.get("interval", "sentences"), "per_seed": x.get("per_seed"),
                             "reading": x.get("reading"),
                             "noise_floor": floor["max_abs"] if floor else float("nan")})
    return pd.DataFrame(rows, columns=DELTA_COLUMNS)


def aggregate_deltas(exp: Experiment) -> pd.DataFrame:
    """Δ chrF++ of each system against the baseline over all the directions of a kind (MSA→dialect,
    dialect→MSA; eval/deltas.json "aggregate"): the mean over directions and seeds, its joint 95% interval, its
    reading and the noise floor of that mean (largest gap between two baseline seeds)."""
    path = exp.deltas_path
    rows = []
    if path.exists():
        doc = read_json(path)
        for system, kinds in doc.get("aggregate", {}).items():
            for key, x in kinds.items():
                floor = doc.get("aggregates", {}).get(key, {}).get("noise_floor")
                rows.append({"system": system, "kind": AGGREGATES.get(key, key),
                             **{k: x.get(k) for k in ("delta", "low", "high")},
                             "interval": x.get("interval", "sentences"), "reading": x.get("reading"),
                             "noise_floor": floor["max_abs"] if floor else float("nan")})
    return pd.DataFrame(rows, columns=AGGREGATE_COLUMNS)


def hypotheses(exp: Experiment, cfg: RunConfig) -> pd.DataFrame:
    """One row per (direction, sent_id): direction, src, tgt, sent_id, source, ref, then hyp_<model> and
    chrf_<model> for every evaluated model."""
    keys = ["direction", "src", "tgt", "sent_id", "source", "ref"]
    out: pd.DataFrame | None = None
    for m in ("base", *arm_models(cfg)):
        path = exp.hyps_path(m)
        if not path.exists():
            continue
        f = pd.DataFrame(read_jsonl(path))
        f = f[keys + ["hyp", "chrf"]].rename(columns={"hyp": f"hyp_{m}", "chrf": f"chrf_{m}"})
        out = f if out is None else out.merge(f.drop(columns=["src", "tgt", "source", "ref"]),
                                              on=["direction", "sent_id"], how="outer")
    return out if out is not None else pd.DataFrame(columns=keys)


def _looks_like_rows(model: str, doc: dict | None) -> list[dict]:
    if not doc:
        return []
    arm, seed = parse_model(model) if model != "reference" else ("reference", None)
    return [{"model": model, "arm": arm, "seed": seed, "direction": d, **{k: v.get(k) for k in ("n", "as_requested",
             "called_msa")}, "identical_across_targets": doc.get("identical_across_targets")}
            for d, v in doc.get("directions", {}).items()]
