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

The numbers come from ``analysis.verdict.findings``; only the wording is here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .verdict import LEAK_POINTS, PAPER_GAIN, WEAK_CLASSIFIER, Findings, findings


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
    if problems and f.writes_dialect and f.reference in f.below_copy:
        share = f.as_requested.get(f.reference, float("nan"))
        return ("Read it with care: " + " and ".join(problems) + f"; copying MSA scores well against these close "
                f"dialects while writing none of them, and the {f.reference} writes the requested dialect in "
                f"{share:.0%} of its MSA → dialect outputs (chance {f.dialect_chance:.0%}), so it does translate.")
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
    if math.isfinite(f.median_refit_angle):
        from .readings import subspace_motion    # the one wording of this number (readings imports the verdict)

        return (text + f"; between accepted refits the subspace {subspace_motion(f.median_refit_angle)} "
                f"({f.median_refit_angle:.0f}° on median)" + (", so the penalty chased a moving direction."
                                                              if f.unstable else "."))
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
