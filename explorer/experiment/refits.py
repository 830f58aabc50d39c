"""An arm's stored refits, read back: which subspace it was penalising at a step and site, and at which sites the
decoupling acted (the representation stage and the read API both ask here)."""

from __future__ import annotations

from ..config import RunConfig
from ..files import StoreError, load_tensors
from ..method.subspace import Subspace
from ..names import arm_kind, parse_model
from .layout import Experiment, arm_models


def subspace_at(exp: Experiment, step: int, site: str, model: str,
                refits: list[dict] | None = None) -> tuple[Subspace, int] | None:
    """The subspace ``model`` (a decoupled or random arm) was penalising at ``site`` at ``step``: its latest refit at
    or before ``step`` that the gate accepted, with its refit index; None when it had none yet (no penalty then)."""
    records = [r for r in (exp.refits(model) if refits is None else refits)
               if site in r.get("sites", {}) and r["sites"][site].get("gate", {"accepted": True})["accepted"]
               and r["step"] <= step]
    if not records:
        return None
    chosen = max(records, key=lambda r: (r["step"], r["index"]))
    path = exp.refit_file(model, chosen["index"])
    try:
        tensors = load_tensors(path)
    except FileNotFoundError:
        raise StoreError(f"{path} is missing (refit {chosen['index']} of {model}, recorded in its refits.jsonl). "
                         "Rerun the same `python -m explorer run ...` that made the experiment: it retrains the "
                         "arms whose files are missing or damaged.") from None
    key = f"{site}.basis"
    if key not in tensors:
        raise StoreError(f"{path} has no {key!r} tensor; the refit record and its file disagree. "
                         "Rerun the arm into a new folder.")
    kind = chosen.get("kind") or ("random" if parse_model(model)[0] == "random" else "probe")  # format-1 records
    return Subspace(tensors[key].float(), site=site, step=int(chosen["step"]), kind=kind), int(chosen["index"])


def penalised_sites(exp: Experiment, cfg: RunConfig) -> tuple[str, ...]:
    """The sites the decoupling acted on: recorded by the arm stages, else in the refits, else the config."""
    stages = exp.manifest().get("stages", {}) if exp.exists() else {}
    models = [m for m in arm_models(cfg) if arm_kind(parse_model(m)[0]) != "baseline"]
    for model in models:
        sites = stages.get(exp.stage_key("arm", model), {}).get("sites")
        if sites:
            return tuple(sites)
    for model in models:
        for r in exp.refits(model):
            if r.get("sites"):
                return tuple(r["sites"])
    return tuple(cfg.sites)
