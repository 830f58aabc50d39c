"""What a run shows against the paper's claim, in two or three sentences computed from its numbers.

Elshabrawy et al. (2025) report +2.0 chrF++ on average on MSA → dialect for decoupled fine-tuning over plain
fine-tuning (up to +4.9), with a random-subspace control that does not help. ``verdict`` states how this run's
numbers compare, and says so when the comparison cannot be read at all: when the fine-tuned models are below the
untuned base or below copying the source (fine-tuning has not produced a translator yet), when the probe that
estimates the MSA subspace is at chance (there was no MSA direction to penalise), or when the subspace is unstable
(consecutive refits far apart: the penalty chased a moving direction).

Inputs are plain tables, as ``ExperimentView`` returns them; every model name is a parameter:

- ``scores``: model, direction, src, tgt, chrf. A name with seeds (``"decoupled.s0"``, ``"decoupled.s1"``) is
  averaged over them when asked for as ``"decoupled"``.
- ``deltas``: system, direction, delta, low, high (the interval of system − reference, whatever produced it).
- ``copy_source``: direction -> chrF++ of the source itself as the output.
- ``refits`` (optional): step, angle_prev_deg, angle_first_deg, accuracy, and ``chance`` if known;
  ``refit_varieties`` (optional): step, variety, n, to work out chance (the larger class's share) otherwise.
- ``noise_floor`` (optional): the seed-to-seed spread of the reference arm (chrF++); differences smaller than it are
  called noise. ``seeds`` (optional): how many seeds the numbers average over.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.varieties import HR, KINDS, direction_kind

PAPER_GAIN = 2.0          # chrF++, MSA → dialect, decoupled − baseline, averaged over 25 cities (the paper)
PROBE_MARGIN = 0.05       # a probe within this of chance accuracy is "at chance"
UNSTABLE_DEG = 45.0       # median angle between consecutive refits above which the subspace is "unstable"
BELOW = 0.5               # chrF++: a model this much under the base / the copy bar is below it


def _mean(x) -> float:
    x = np.asarray(list(x), dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def model_scores(scores: pd.DataFrame, name: str) -> pd.Series:
    """direction -> chrF++ of ``name``, averaged over its seeds (``name.s<k>``) when it has several."""
    if scores.empty:
        return pd.Series(dtype=float)
    pattern = re.compile(rf"^{re.escape(name)}(\.s\d+)?$")
    rows = scores[[bool(pattern.match(str(m))) for m in scores["model"]]]
    return rows.groupby("direction")["chrf"].mean()


def msa_to_dialect(directions) -> list[str]:
    out = []
    for d in directions:
        src, _, tgt = str(d).partition("-")
        if tgt and direction_kind(src, tgt) == KINDS[0]:
            out.append(d)
    return out


@dataclass(frozen=True)
class Findings:
    """The numbers the verdict is made of (NaN / None where the run has no such number)."""

    arm: str
    reference: str
    n_directions: int           # MSA → dialect directions compared
    delta: float                # mean Δ chrF++ (arm − reference) over them
    better: int                 # directions whose interval lies above 0
    worse: int                  # ... below 0
    arm_chrf: float             # mean chrF++ over the same directions
    reference_chrf: float
    base_chrf: float
    copy_chrf: float
    below_base: tuple[str, ...]     # fine-tuned models under the base
    below_copy: tuple[str, ...]     # fine-tuned models under copying the source
    control: str | None = None      # the control arm, if any
    control_delta: float = float("nan")
    probe_accuracy: float = float("nan")   # at the last refit
    probe_chance: float = float("nan")
    median_refit_angle: float = float("nan")   # degrees between consecutive refits
    last_vs_first_angle: float = float("nan")
    n_refits: int = 0
    noise_floor: float | None = None
    seeds: int | None = None
    tuned: tuple[str, ...] = ()      # every fine-tuned model of the run (seeds folded)

    @property
    def readable(self) -> bool:
        """The arm comparison means something: the reference arm is neither under the base nor under copying."""
        return self.reference not in self.below_base and self.reference not in self.below_copy

    @property
    def probe_at_chance(self) -> bool:
        return (math.isfinite(self.probe_accuracy) and math.isfinite(self.probe_chance)
                and self.probe_accuracy - self.probe_chance < PROBE_MARGIN)

    @property
    def unstable(self) -> bool:
        return math.isfinite(self.median_refit_angle) and self.median_refit_angle > UNSTABLE_DEG

    @property
    def within_noise(self) -> bool:
        return self.noise_floor is not None and abs(self.delta) <= self.noise_floor


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


def findings(scores: pd.DataFrame, deltas: pd.DataFrame, copy_source: Mapping[str, float], *,
             refits: pd.DataFrame | None = None, refit_varieties: pd.DataFrame | None = None,
             arm: str = "decoupled", reference: str = "baseline", base: str = "base", control: str | None = "random",
             noise_floor: float | None = None, seeds: int | None = None) -> Findings:
    """Gather the numbers ``verdict`` speaks about (see the module docstring for the inputs)."""
    a, r, b = model_scores(scores, arm), model_scores(scores, reference), model_scores(scores, base)
    dirs = msa_to_dialect(sorted(set(a.index) & set(r.index)))
    d = deltas[(deltas["system"] == arm) & deltas["direction"].isin(dirs)] if not deltas.empty else deltas
    if len(d):
        delta = _mean(d["delta"])
        better, worse = int((d["low"] > 0).sum()), int((d["high"] < 0).sum())
    else:
        delta, better, worse = _mean(a.reindex(dirs) - r.reindex(dirs)), 0, 0
    copy = _mean(copy_source.get(x, np.nan) for x in dirs)
    base_chrf = _mean(b.reindex(dirs)) if len(b) else float("nan")
    tuned = sorted({re.sub(r"\.s\d+$", "", str(m)) for m in scores["model"]} - {base}) if not scores.empty else []
    means = {m: _mean(model_scores(scores, m).reindex(dirs)) for m in tuned}
    below_base = tuple(m for m, v in means.items() if math.isfinite(base_chrf) and v < base_chrf - BELOW)
    below_copy = tuple(m for m, v in means.items() if math.isfinite(copy) and v < copy - BELOW)
    ctrl_delta = float("nan")
    if control and control in means and not deltas.empty:
        c = deltas[(deltas["system"] == control) & deltas["direction"].isin(dirs)]
        ctrl_delta = _mean(c["delta"]) if len(c) else _mean(model_scores(scores, control).reindex(dirs)
                                                              - r.reindex(dirs))
    acc = chance = med = last_first = float("nan")
    n_refits = 0
    if refits is not None and not refits.empty:
        rf = refits.sort_values("step")
        n_refits = int(rf["step"].nunique())
        fitted = rf.dropna(subset=["accuracy"]) if "accuracy" in rf else rf.iloc[:0]
        if len(fitted):
            last = fitted[fitted["step"] == fitted["step"].max()]
            acc = _mean(last["accuracy"])
            chance = (_mean(last["chance"]) if "chance" in last and last["chance"].notna().any()
                      else probe_chance(refit_varieties, int(last["step"].iloc[0])))
        med = float(np.nanmedian(rf["angle_prev_deg"])) if rf["angle_prev_deg"].notna().any() else float("nan")
        lf = rf["angle_first_deg"].dropna()
        last_first = float(lf.iloc[-1]) if len(lf) else float("nan")
    return Findings(arm, reference, len(dirs), delta, better, worse, _mean(a.reindex(dirs)), _mean(r.reindex(dirs)),
                    base_chrf, copy, below_base, below_copy, control if math.isfinite(ctrl_delta) else None,
                    ctrl_delta, acc, chance, med, last_first, n_refits, noise_floor, seeds, tuple(tuned))


def _names(models: tuple[str, ...], f: Findings) -> str:
    return "every fine-tuned model" if len(models) >= 2 and set(models) == set(f.tuned) else " and ".join(models)


def _is(who: str) -> str:
    return "is" if who.startswith("every") or " and " not in who else "are"


def sentences(f: Findings, claim: float = PAPER_GAIN) -> list[str]:
    """Two or three sentences: the result against the claim, whether it can be read, and what the probe did."""
    if f.n_directions == 0 or not math.isfinite(f.delta):
        return [(f"This run has no MSA → dialect scores for both {f.arm} and {f.reference} yet, so it cannot be "
                 f"set against the paper's claim (+{claim:.1f} chrF++ on average).")]
    seeds = f" (mean of {f.seeds} seeds)" if f.seeds and f.seeds > 1 else ""
    spread = (f"; the {f.reference} arm alone varies by ±{f.noise_floor:.1f} from seed to seed"
              if f.noise_floor is not None else "")
    if f.within_noise:
        judged = "within the seed-to-seed noise"
    elif f.delta >= claim / 2 and f.better > f.worse:
        judged = "in line with the paper's claim"
    elif f.delta > 0 and f.better > f.worse:
        judged = "in the claimed direction but smaller"
    elif f.delta > 0:
        judged = "slightly positive but not supported by the intervals"
    elif f.worse > f.better:
        judged = "the opposite of the claim"
    else:
        judged = "no gain"
    first = (f"The paper reports +{claim:.1f} chrF++ for decoupling on MSA → dialect; here {f.arm} − {f.reference} "
             f"averages {f.delta:+.1f} chrF++ over {f.n_directions} directions{seeds} ({f.better} clearly better, "
             f"{f.worse} clearly worse, {f.n_directions - f.better - f.worse} within the 95% interval of zero"
             f"{spread}): {judged}.")
    out = [first]
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
        out.append("This comparison cannot be read as evidence for or against the method: "
                   + " and ".join(problems) + ", so fine-tuning has not yet produced a working dialect translator.")
    elif problems:
        out.append("Read it with care: " + " and ".join(problems) + ".")
    elif f.control and math.isfinite(f.control_delta):
        same = abs(f.control_delta) >= 0.5 * abs(f.delta) and np.sign(f.control_delta) == np.sign(f.delta)
        out.append(f"The random-subspace control moves by {f.control_delta:+.1f}: "
                   + ("about as much, so the effect is not specific to the MSA subspace."
                      if same and abs(f.delta) > 0.1 else
                      "much less, which points to the MSA subspace itself." if abs(f.delta) > 0.1 else
                      "neither arm differs from the baseline."))
    mech = []
    if f.probe_at_chance:
        mech.append(f"the MSA probe was at chance ({f.probe_accuracy:.2f} vs {f.probe_chance:.2f} by always "
                    "guessing the larger class), so there was no MSA direction to penalise")
    if f.unstable:
        mech.append(f"the estimated MSA subspace was unstable (consecutive refits {f.median_refit_angle:.0f}° apart "
                    f"on median, the last {f.last_vs_first_angle:.0f}° from the first), so the penalty chased a "
                    "moving direction")
    if mech:
        out.append("Inside the model, " + "; and ".join(mech) + ".")
    elif math.isfinite(f.probe_accuracy) and math.isfinite(f.probe_chance):
        stable = (f", and its subspace held still ({f.median_refit_angle:.0f}° between refits on median)"
                  if math.isfinite(f.median_refit_angle) else "")
        out.append(f"Inside the model, the probe told MSA from dialect tokens ({f.probe_accuracy:.2f} vs chance "
                   f"{f.probe_chance:.2f}){stable}.")
    return out[:3]


def verdict(scores: pd.DataFrame, deltas: pd.DataFrame, copy_source: Mapping[str, float], **kwargs) -> list[str]:
    """Two or three sentences on what the run shows against the paper's claim (``findings`` for the inputs)."""
    claim = kwargs.pop("claim", PAPER_GAIN)
    return sentences(findings(scores, deltas, copy_source, **kwargs), claim)
