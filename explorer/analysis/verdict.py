"""The numbers behind the verdict on a run: the decoupled arm's Δ against the baseline and the noise floor, the
control, MSA leakage, the probe gate and the post-hoc probes, gathered from the experiment's summary into
``Findings``. The sentences built from them are in ``analysis.verdict_text``.

The input is the experiment's summary, ``experiment.report.summary`` (the dict ``python -m explorer summary
--json`` prints): ``seeds``, ``models`` (base scores), ``arms`` (arm -> direction -> mean, sd, per_seed),
``deltas`` (system -> direction -> delta, low, high, reading), ``aggregate`` (system -> "msa_to_dialect" |
"dialect_to_msa" -> delta, low, high, reading, interval), ``aggregate_noise_floor``, ``copy_source``,
``looks_like``, ``classifiers``, ``refits`` (model -> accepted, total), ``posthoc`` (model -> site -> accuracy)
and ``stages`` (the penalised site). Optionally the refit rows of the arm's
models (``ExperimentView.refits`` with a ``model`` column) for the subspace's stability. Arm names are parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data.varieties import HR, KINDS, direction_kind
from ..names import arm_of

PAPER_GAIN = 2.0          # chrF++, MSA → dialect, decoupled − baseline, averaged over 25 cities (the paper)
PROBE_MARGIN = 0.05       # a probe within this of chance accuracy is "at chance"
UNSTABLE_DEG = 45.0       # median angle between consecutive accepted refits above which the subspace is "unstable"
BELOW = 0.5               # chrF++: a model this much under the base / the copy bar is below it
LEAK_POINTS = 0.02        # a leakage difference smaller than this (or than two sds over seeds, about the range of
                          # three seeds: the leakage's noise floor) is "about the same"
DIALECT_OVER_CHANCE = 2.0  # a model "writes dialect" when its requested-dialect share is at least this times chance
WEAK_CLASSIFIER = 0.7     # below this (balanced) accuracy the leakage shares are read loosely
MSA_TO_DIALECT = "msa_to_dialect"   # the key of deltas.json's aggregate over MSA → dialect directions
KIND_KEYS = {"msa_to_dialect": KINDS[0], "dialect_to_msa": KINDS[1]}


def _mean(x) -> float:
    x = np.asarray([v for v in x if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def _sd(x) -> float | None:
    x = np.asarray([v for v in x if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    return float(x.std(ddof=1)) if x.size > 1 else None


def msa_to_dialect(directions) -> list[str]:
    """The MSA → dialect directions ("arb-arz") among ``directions``, in their order."""
    out = []
    for d in directions:
        src, _, tgt = str(d).partition("-")
        if tgt and direction_kind(src, tgt) == KINDS[0]:
            out.append(d)
    return out


def directions(summary: Mapping, kind: str = MSA_TO_DIALECT) -> list[str]:
    """The run's directions of one kind (``"msa_to_dialect"`` or ``"dialect_to_msa"``), sorted."""
    every = {d for dirs in summary.get("models", {}).values() for d in dirs}
    return sorted(d for d in every if direction_kind(*d.split("-", 1)) == KIND_KEYS[kind])


@dataclass(frozen=True)
class Delta:
    """One arm's Δ chrF++ against the reference arm, as deltas.json gives it."""

    delta: float
    low: float = float("nan")
    high: float = float("nan")
    reading: str | None = None     # "better" | "worse" | "within noise" (None: written before readings existed)
    interval: str = ""             # "seeds+sentences" | "sentences" | "" (no interval)

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def excludes_zero(self) -> bool:
        return self.has_interval and (self.low > 0 or self.high < 0)

    def text(self) -> str:
        return (f"{self.delta:+.2f} [{self.low:+.2f}, {self.high:+.2f}]" if self.has_interval
                else f"{self.delta:+.2f}")


def aggregate_delta(summary: Mapping, system: str, kind: str = MSA_TO_DIALECT) -> Delta | None:
    """``system``'s mean Δ over the directions of ``kind`` with its interval and reading (deltas.json
    ``aggregate``); for a folder evaluated before aggregates existed, the mean of its per-direction Δ (no
    interval). None when the run has no such Δ."""
    x = summary.get("aggregate", {}).get(system, {}).get(kind)
    if x:
        return Delta(float(x["delta"]), float(x["low"]), float(x["high"]), x.get("reading"),
                     x.get("interval", summary.get("interval") or "sentences"))
    per = summary.get("deltas", {}).get(system, {})
    vals = [per[d]["delta"] for d in directions(summary, kind) if d in per]
    return Delta(_mean(vals)) if vals else None


def noise_floor(summary: Mapping, kind: str = MSA_TO_DIALECT) -> float | None:
    """The baseline's seed-to-seed spread of the mean chrF++ over ``kind``'s directions (largest |Δ| between two of
    its seeds); None with one seed."""
    floor = (summary.get("aggregate_noise_floor") or {}).get(kind)
    return float(floor["max_abs"]) if floor else None


def leakage(summary: Mapping) -> pd.DataFrame:
    """What the MSA → dialect outputs look like, per arm: ``as_requested`` (share the dialect classifier assigns to
    the requested dialect), ``called_msa`` (share the MSA-vs-dialect classifier calls MSA: the leakage) and
    ``identical`` (share of test sentences whose outputs are the same for every target dialect). Each is the mean
    over directions for one model, then the mean over the arm's seeds, with the sd across seeds (NaN with one
    seed). Rows: the base, every arm, and "reference" (the references themselves: the ceiling)."""
    per_model = dict(summary.get("looks_like", {}))
    ref = (summary.get("classifiers") or {}).get("references")
    if ref:
        per_model["reference"] = ref
    groups: dict[str, list[dict]] = {}
    for model, doc in per_model.items():
        dirs = doc.get("directions", {}).values()
        groups.setdefault(arm_of(model), []).append({
            "as_requested": _mean(v.get("as_requested") for v in dirs),
            "called_msa": _mean(v.get("called_msa") for v in dirs),
            "identical": doc.get("identical_across_targets") if model != "reference" else float("nan")})
    rows = []
    for arm, runs in groups.items():
        row = {"arm": arm, "seeds": len(runs)}
        for k in ("as_requested", "called_msa", "identical"):
            vals = [r[k] for r in runs]
            row[k], sd = _mean(vals), _sd(vals)
            row[f"{k}_sd"] = float("nan") if sd is None else sd
        rows.append(row)
    cols = ["arm", "seeds", "as_requested", "as_requested_sd", "called_msa", "called_msa_sd", "identical",
            "identical_sd"]
    order = {"base": 0, "reference": 2}
    rows.sort(key=lambda r: order.get(r["arm"], 1))
    return pd.DataFrame(rows, columns=cols)


@dataclass(frozen=True)
class Findings:
    """The numbers the verdict is made of (NaN / None where the run has no such number)."""

    arm: str
    reference: str
    n_directions: int                   # MSA → dialect directions compared
    seeds: int                          # seeds per arm
    delta: Delta | None                 # the arm's mean Δ over MSA → dialect directions
    noise_floor: float | None           # the reference arm's seed-to-seed spread of that mean (None: one seed)
    better: int = 0                     # directions read "better" (interval above 0 and beyond their noise floor)
    worse: int = 0
    arm_chrf: float = float("nan")      # mean chrF++ over the same directions (and seeds)
    reference_chrf: float = float("nan")
    base_chrf: float = float("nan")
    copy_chrf: float = float("nan")
    below_base: tuple[str, ...] = ()    # fine-tuned arms under the base
    below_copy: tuple[str, ...] = ()    # fine-tuned arms under copying the source
    tuned: tuple[str, ...] = ()         # every fine-tuned arm of the run
    control: str | None = None
    control_delta: Delta | None = None
    leak: Mapping[str, tuple[float, float | None]] = field(default_factory=dict)  # arm -> (called MSA, sd)
    leak_reference: float = float("nan")     # the references' own share called MSA
    msa_classifier: float = float("nan")     # balanced accuracy of the MSA-vs-dialect classifier
    accepted: int | None = None         # refits of the arm's models the gate accepted (None: no refits recorded)
    refits: int = 0
    median_refit_angle: float = float("nan")   # degrees between consecutive accepted refits (median over seeds)
    probe_site: str | None = None       # the penalised site the post-hoc probes are read at
    probes: Mapping[str, tuple[float, float | None]] = field(default_factory=dict)  # arm -> (accuracy, sd)
    as_requested: Mapping[str, float] = field(default_factory=dict)  # arm -> share of outputs in the requested dialect
    dialect_chance: float = float("nan")     # that share by chance (one over the dialect classifier's classes)

    @property
    def writes_dialect(self) -> bool:
        """The reference arm writes the requested dialect clearly above chance (``DIALECT_OVER_CHANCE``×)."""
        share = self.as_requested.get(self.reference, float("nan"))
        return math.isfinite(share) and math.isfinite(self.dialect_chance) and \
            share >= DIALECT_OVER_CHANCE * self.dialect_chance

    @property
    def readable(self) -> bool:
        """The arm comparison means something: the reference arm is not under the base, and it is either above
        copying the source or writes the requested dialect (copying MSA scores well against close dialects while
        writing none: a model that writes dialect may score below it and still translate)."""
        return self.reference not in self.below_base and (self.reference not in self.below_copy
                                                          or self.writes_dialect)

    @property
    def within_noise(self) -> bool:
        """|Δ| no larger than the noise floor (with several seeds), or the backend's reading says so."""
        if self.delta is None:
            return False
        if self.noise_floor is not None and abs(self.delta.delta) <= self.noise_floor:
            return True
        return self.delta.reading == "within noise"

    @property
    def never_penalised(self) -> bool:
        return self.accepted == 0 and self.refits > 0

    @property
    def unstable(self) -> bool:
        return math.isfinite(self.median_refit_angle) and self.median_refit_angle > UNSTABLE_DEG


def probe_chance(refit_varieties: pd.DataFrame | None, step: int | None = None) -> float:
    """Accuracy of always answering the larger class (MSA or not-MSA) at the refit of ``step`` (the last one when
    None), from the per-variety token counts."""
    if refit_varieties is None or refit_varieties.empty or "n" not in refit_varieties:
        return float("nan")
    per = refit_varieties
    step = per["step"].max() if step is None else step
    per = per[per["step"] == step]
    n = per.groupby("variety")["n"].sum()
    total = float(n.sum())
    if total <= 0:
        return float("nan")
    p = float(n.get(HR, 0.0)) / total
    return max(p, 1 - p)


def findings(summary: Mapping, *, refits: pd.DataFrame | None = None, arm: str = "decoupled",
             reference: str = "baseline", control: str | None = "random") -> Findings:
    """Gather the numbers ``verdict`` speaks about (see the module docstring for the inputs)."""
    dirs = directions(summary)
    arms = summary.get("arms", {})

    def mean_chrf(name: str) -> float:
        if name == "base":
            return _mean(summary.get("models", {}).get("base", {}).get(d, {}).get("chrf") for d in dirs)
        return _mean(arms.get(name, {}).get(d, {}).get("mean") for d in dirs)

    tuned = tuple(arms)
    means = {a: mean_chrf(a) for a in tuned}
    base = mean_chrf("base")
    copy = _mean(summary.get("copy_source", {}).get(d, {}).get("chrf") for d in dirs)
    per_dir = summary.get("deltas", {}).get(arm, {})
    readings = [per_dir[d].get("reading") for d in dirs if d in per_dir]
    leak = leakage(summary)
    by_arm = {r["arm"]: (r["called_msa"], None if math.isnan(r["called_msa_sd"]) else r["called_msa_sd"])
              for r in leak.to_dict("records") if math.isfinite(r["called_msa"])}
    models = [m for m in summary.get("refits", {}) if arm_of(m) == arm]
    accepted = sum(summary["refits"][m]["accepted"] for m in models) if models else None
    total = sum(summary["refits"][m]["total"] for m in models) if models else 0
    med = float("nan")
    if refits is not None and not refits.empty and "angle_prev_deg" in refits:
        rf = refits[refits["accepted"]] if "accepted" in refits else refits
        if rf["angle_prev_deg"].notna().any():
            med = float(np.nanmedian(rf["angle_prev_deg"]))
    ctrl = aggregate_delta(summary, control) if control and control in arms else None
    site, probes = posthoc_at_penalised_site(summary)
    return Findings(
        arm=arm, reference=reference, n_directions=len(dirs), seeds=max(1, len(summary.get("seeds") or [])),
        delta=aggregate_delta(summary, arm) if arm in arms else None, noise_floor=noise_floor(summary),
        better=readings.count("better"), worse=readings.count("worse"), arm_chrf=means.get(arm, float("nan")),
        reference_chrf=means.get(reference, float("nan")), base_chrf=base, copy_chrf=copy,
        below_base=tuple(a for a, v in means.items() if math.isfinite(base) and v < base - BELOW),
        below_copy=tuple(a for a, v in means.items() if math.isfinite(copy) and v < copy - BELOW),
        tuned=tuned, control=control if ctrl is not None else None, control_delta=ctrl, leak=by_arm,
        leak_reference=by_arm.get("reference", (float("nan"), None))[0],
        msa_classifier=float((summary.get("classifiers") or {}).get("msa_vs_dialect", {}).get("balanced_accuracy",
                                                                                              float("nan"))),
        accepted=accepted, refits=total, median_refit_angle=med, probe_site=site, probes=probes,
        as_requested=requested_shares(summary), dialect_chance=dialect_chance(summary))


def requested_shares(summary: Mapping) -> dict[str, float]:
    """Per arm: the mean over its models (seeds) and MSA → dialect directions of the share of outputs the dialect
    classifier assigns to the requested dialect (``summary["looks_like"]``)."""
    per: dict[str, list[float]] = {}
    for model, looks in (summary.get("looks_like") or {}).items():
        if model == "base":
            continue
        vals = [v["as_requested"] for v in (looks.get("directions") or {}).values()
                if isinstance(v.get("as_requested"), (int, float)) and math.isfinite(v["as_requested"])]
        if vals:
            per.setdefault(arm_of(model), []).append(float(np.mean(vals)))
    return {a: float(np.mean(v)) for a, v in per.items()}


def dialect_chance(summary: Mapping) -> float:
    """The requested-dialect share of a random guess: one over the dialect classifier's classes."""
    classes = ((summary.get("classifiers") or {}).get("dialect_id") or {}).get("classes") or []
    return 1.0 / len(classes) if classes else float("nan")


def penalised_site(summary: Mapping) -> str | None:
    """The (first) site the arms were trained at, from the summary's stage records (None before any arm)."""
    return next((v["sites"][0] for v in (summary.get("stages") or {}).values() if v.get("sites")), None)


def posthoc_at_penalised_site(summary: Mapping) -> tuple[str | None, dict[str, tuple[float, float | None]]]:
    """The penalised site, and per arm (and the base) the post-hoc probe's held-out accuracy there at the last
    checkpoint: mean and sd over seeds (``summary["posthoc"]``: model -> site -> accuracy)."""
    site = penalised_site(summary)
    ph = summary.get("posthoc") or {}
    if site is None or not ph:
        return site, {}
    by: dict[str, list[float]] = {}
    for model, sites in ph.items():
        if site in sites:
            by.setdefault(arm_of(model), []).append(sites[site])
    return site, {a: (_mean(v), _sd(v)) for a, v in by.items()}


def seeds_of(models: Sequence[str], arm: str) -> list[str]:
    """The models of ``arm`` among ``models`` ("decoupled" -> ["decoupled.s0", "decoupled.s1"])."""
    return [m for m in models if arm_of(m) == arm]
