"""What a run shows against the paper's claim, in a few sentences computed from its numbers.

Elshabrawy et al. (2025) report +2.0 chrF++ on average on MSA → dialect for decoupled fine-tuning over plain
fine-tuning (up to +4.9), with a random-subspace control that does not help. ``verdict`` states:

1. the MSA → dialect Δ of the decoupled arm against the baseline, averaged over directions and seeds, with its
   interval (two-level bootstrap over seeds and test sentences; with one seed over sentences only, which ignores
   training noise, and the verdict says so), against the noise floor: how far two baseline runs that differ only in
   their seed land apart. A Δ inside the noise floor is called so, whatever its interval;
2. the random-subspace control's Δ, and what the pair means;
3. whether the comparison can be read at all: fine-tuned models below the untuned base or below copying the
   source have not learned to translate yet;
4. MSA leakage per arm (the share of MSA → dialect outputs an MSA-vs-dialect classifier calls MSA, mean over
   directions, ± sd over seeds) against the baseline's, with the classifier's accuracy;
5. what the probe gate did: how many refits it accepted (before the first accepted one no penalty applies; none
   accepted means the decoupled arm was plain fine-tuning), and whether the accepted subspace held still;
6. what a post-hoc probe still reads at the penalised site: the arm against the reference and the control (how
   much MSA information the penalty removed from the states, whatever it did to the outputs).

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

    @property
    def readable(self) -> bool:
        """The arm comparison means something: the reference arm is neither under the base nor under copying."""
        return self.reference not in self.below_base and self.reference not in self.below_copy

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
        accepted=accepted, refits=total, median_refit_angle=med, probe_site=site, probes=probes)


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


def _names(models: tuple[str, ...], f: Findings) -> str:
    return "every fine-tuned model" if len(models) >= 2 and set(models) == set(f.tuned) else " and ".join(models)


def _is(who: str) -> str:
    return "is" if who.startswith("every") or " and " not in who else "are"


def _pct(x: float, sd: float | None = None) -> str:
    return f"{x:.0%}" + (f" ± {sd * 100:.0f}" if sd is not None else "")


def _headline(f: Findings, claim: float) -> list[str]:
    d = f.delta
    seeds = f"{f.seeds} seeds" if f.seeds > 1 else "one seed"
    interval = (" (95% interval over seeds and test sentences)" if d.interval == "seeds+sentences" else
                " (95% interval over test sentences only)" if d.has_interval else "")
    first = (f"The paper reports +{claim:.1f} chrF++ for decoupling on MSA → dialect; here {f.arm} − {f.reference} "
             f"averages {d.text()} chrF++{interval} over {f.n_directions} MSA → dialect directions and {seeds}.")
    if f.seeds > 1 and f.noise_floor is not None:
        floor = (f"The {f.reference} alone moves by up to {f.noise_floor:.2f} chrF++ between two of its seeds "
                 "(the noise floor)")
        if f.within_noise:
            where = ("inside" if abs(d.delta) <= f.noise_floor else
                     "beyond it but with an interval that includes zero")
            judged = f"{floor}; this Δ is {where}: within the seed-to-seed noise, no evidence either way."
        elif d.reading == "better" or (d.reading is None and d.excludes_zero and d.delta > 0):
            size = "in line with the paper's claim" if d.delta >= claim / 2 else \
                "in the claimed direction but smaller than the paper's"
            judged = f"{floor}; this Δ is beyond it and its interval excludes zero: {size}."
        elif d.reading == "worse" or (d.reading is None and d.excludes_zero and d.delta < 0):
            judged = f"{floor}; this Δ is beyond it and its interval excludes zero: the opposite of the claim."
        else:
            judged = f"{floor}; this Δ is beyond it but its interval includes zero: no clear difference."
    else:
        when = ("its interval excludes zero" if d.excludes_zero else "its interval includes zero" if d.has_interval
                else "it has no interval")
        judged = (f"With one seed there is no noise floor and the interval ignores training noise (a second seed "
                  f"of the same arm can land this far apart), so {when} and this is at most a hint: rerun with "
                  "--seeds 3 to tell an effect from seed luck.")
    return [first, judged]


def _control(f: Findings) -> str | None:
    c = f.control_delta
    if c is None or f.delta is None:
        return None
    arm_real = not f.within_noise and f.delta.excludes_zero
    ctrl_real = (c.reading in ("better", "worse") if c.reading else c.excludes_zero) and \
        not (f.noise_floor is not None and abs(c.delta) <= f.noise_floor)
    head = f"The random-subspace control moves by {c.text()}"
    if arm_real and not ctrl_real:
        return f"{head}, within noise: the effect points to the MSA subspace itself."
    if arm_real and ctrl_real and np.sign(c.delta) == np.sign(f.delta.delta):
        return f"{head}, also beyond noise: the effect is not specific to the MSA subspace."
    if ctrl_real:
        return f"{head}, beyond noise while {f.arm} is not: the penalty itself, not the MSA subspace, moves chrF++."
    return f"{head}: neither arm differs from the {f.reference} beyond noise."


def _readable(f: Findings) -> str | None:
    problems = []
    scores_txt = f"{f.reference} {f.reference_chrf:.1f}, {f.arm} {f.arm_chrf:.1f}"
    if f.below_base:
        who = _names(f.below_base, f)
        problems.append(f"{who} {_is(who)} below the untuned base ({scores_txt} vs base {f.base_chrf:.1f})")
    if f.below_copy:
        if set(f.below_copy) == set(f.below_base):
            problems.append(f"below copying the source unchanged ({f.copy_chrf:.1f})")
        else:
            who = _names(f.below_copy, f)
            extra = "" if f.below_base else f"{scores_txt}, "
            problems.append(f"{who} {_is(who)} below copying the source unchanged ({extra}copy {f.copy_chrf:.1f})")
    if not f.readable:
        return ("This comparison cannot be read as evidence for or against the method: " + " and ".join(problems)
                + ", so fine-tuning has not yet produced a working dialect translator.")
    if problems:
        return "Read it with care: " + " and ".join(problems) + "."
    return None


def _leakage(f: Findings) -> str | None:
    arms = [a for a in (f.reference, f.arm, f.control) if a and a in f.leak]
    if f.reference not in f.leak or f.arm not in f.leak:
        return None
    parts = ", ".join(f"{a} {_pct(*f.leak[a])}" for a in arms)
    extra = [f"the references themselves {_pct(f.leak_reference)}"] if math.isfinite(f.leak_reference) else []
    if "base" in f.leak:
        extra.append(f"the untuned base {_pct(f.leak['base'][0])}")
    clf = (f"the MSA-vs-dialect classifier ({f.msa_classifier:.0%} balanced accuracy on held-out sentences)"
           if math.isfinite(f.msa_classifier) else "the MSA-vs-dialect classifier")
    spread = f", ± sd over {f.seeds} seeds" if f.seeds > 1 else ""
    (a, sa), (r, sr) = f.leak[f.arm], f.leak[f.reference]
    margin = max(LEAK_POINTS, 2 * (sa or 0.0), 2 * (sr or 0.0))
    judged = (f"{f.arm} leaks about as much as {f.reference}" if abs(a - r) <= margin else
              f"{f.arm} leaks less MSA than {f.reference} ({(a - r) * 100:+.0f} points)" if a < r else
              f"{f.arm} leaks more MSA than {f.reference} ({(a - r) * 100:+.0f} points)")
    weak = (" (a weak classifier: read these shares loosely)"
            if math.isfinite(f.msa_classifier) and f.msa_classifier < WEAK_CLASSIFIER else "")
    return (f"MSA leakage, the share of MSA → dialect outputs that {clf} calls MSA: {parts} (mean over directions"
            f"{spread}{'; ' + ', '.join(extra) if extra else ''}): {judged}{weak}.")


def _gate(f: Findings) -> str | None:
    if f.accepted is None:
        return None
    if f.never_penalised:
        return (f"Inside the model, the probe gate accepted none of the {f.refits} refits of {f.arm}: no MSA "
                f"direction was ever found above chance, so no penalty applied and {f.arm} is plain fine-tuning: "
                "this run says nothing about the method.")
    seeds = f" over {f.seeds} seeds" if f.seeds > 1 else ""
    text = (f"Inside the model, the probe gate accepted {f.accepted} of {f.refits} refits of {f.arm}{seeds} "
            "(before the first accepted one no penalty applies)")
    if f.unstable:
        return (text + f"; the accepted subspaces were {f.median_refit_angle:.0f}° apart on median, so the penalty "
                "chased a moving direction.")
    if math.isfinite(f.median_refit_angle):
        return text + f", and the subspace held still ({f.median_refit_angle:.0f}° between refits on median)."
    return text + "."


def _probe(f: Findings) -> str | None:
    """What a fresh probe still reads at the penalised site: the arm against the reference (and the control)."""
    if f.arm not in f.probes or f.reference not in f.probes:
        return None
    shown = [a for a in (f.reference, f.arm, f.control, "base") if a and a in f.probes]
    parts = ", ".join(f"{'the untuned base' if a == 'base' else a} {m:.2f}" + (f" ± {sd:.2f}" if sd else "")
                      for a, (m, sd) in ((a, f.probes[a]) for a in shown))
    (a, sa), (r, sr) = f.probes[f.arm], f.probes[f.reference]
    margin = max(LEAK_POINTS, 2 * (sa or 0.0), 2 * (sr or 0.0))
    judged = (f"the penalty left about as much MSA readable in {f.arm} as in {f.reference}" if abs(a - r) <= margin
              else f"{f.arm} keeps {(r - a) * 100:.0f} points less MSA readable than {f.reference}" if a < r
              else f"{f.arm} keeps {(a - r) * 100:.0f} points more MSA readable than {f.reference}")
    if f.control and f.control in f.probes and abs(a - r) > margin:
        c, sc = f.probes[f.control]
        same = abs(c - r) <= max(LEAK_POINTS, 2 * (sc or 0.0), 2 * (sr or 0.0))
        judged += (f", and the random control does not ({f.control} about as {f.reference})" if same
                   else f", and so does the random control ({(r - c) * 100:+.0f} points)")
    spread = f", mean ± sd over {f.seeds} seeds" if f.seeds > 1 else ""
    return (f"A fresh linear probe fitted after training on each model's states at the penalised {f.probe_site} "
            f"(MSA against dialect tokens of the tagged source, held out by sentence, chance 0.50) reads MSA with "
            f"accuracy {parts}{spread}: {judged}.")


def sentences(f: Findings, claim: float = PAPER_GAIN) -> list[str]:
    """The verdict: the Δ against the claim and the noise floor, the control, whether it can be read, MSA leakage,
    and what the probe gate did (each only when the run has the numbers)."""
    if f.n_directions == 0 or f.delta is None or not math.isfinite(f.delta.delta):
        return [(f"This run has no MSA → dialect scores for both {f.arm} and {f.reference} yet, so it cannot be "
                 f"set against the paper's claim (+{claim:.1f} chrF++ on average).")]
    out = _headline(f, claim)
    readable = _readable(f)
    if f.readable:
        out += [s for s in (_control(f), readable) if s]
    else:
        out.append(readable)
    out += [s for s in (_leakage(f), _gate(f), _probe(f)) if s]
    return out


def verdict(summary: Mapping, *, refits: pd.DataFrame | None = None, arm: str = "decoupled",
            reference: str = "baseline", control: str | None = "random", claim: float = PAPER_GAIN) -> list[str]:
    """A few sentences on what the run shows against the paper's claim (see the module docstring)."""
    return sentences(findings(summary, refits=refits, arm=arm, reference=reference, control=control), claim)


def seeds_of(models: Sequence[str], arm: str) -> list[str]:
    """The models of ``arm`` among ``models`` ("decoupled" -> ["decoupled.s0", "decoupled.s1"])."""
    return [m for m in models if arm_of(m) == arm]
