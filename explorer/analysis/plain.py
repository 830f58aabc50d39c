"""What a run shows, for a student: at most 60 words, no jargon, from the numbers the verdict reads.

Home opens with this; the full verdict (``verdict.verdict``: intervals, noise floor, leakage, probe gate) is folded
below it. Both are made from one ``verdict.Findings`` (``verdict.findings``), so the plain words and the verdict can
never disagree about a number: "better" here is the verdict's "better" (beyond the noise between two seeds of plain
training, with an interval that excludes zero), "no clear difference" its "within noise".

``GLOSSARY`` explains the terms of the full verdict and the tables below it; Home shows each as a tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from .verdict import PAPER_GAIN, Findings, findings

MAX_WORDS = 60
JARGON = ("chrF", "Δ", "CI", "probe", "interval", "noise floor", "bootstrap", "subspace")   # never in the summary

GLOSSARY = {
    "chrF++": "A score from 0 to 100 of how closely a translation matches a human translation, counting shared "
              "character sequences and words. Higher is better.",
    "Δ (delta)": "The difference between two models' scores on the same test sentences: decoupled minus plain "
                 "fine-tuning (the baseline). Positive means decoupling scored higher.",
    "95% interval": "The range the difference would likely fall in if the experiment were repeated with other "
                    "test sentences and training seeds. If it includes 0, the difference may be chance.",
    "noise floor": "How far two runs of plain fine-tuning land apart when only their random seed differs. A "
                   "difference smaller than that is not evidence of anything.",
    "seed": "The number that fixes a training run's random choices (data order, starting draws). Several seeds of "
            "the same method show how much results vary by luck.",
    "MSA leakage": "The share of outputs meant to be in a dialect that a classifier calls Modern Standard Arabic "
                   "instead.",
    "probe": "A small classifier reading a model's hidden states to tell MSA from dialect. If it succeeds, the "
             "model keeps that information in a direction it can find; decoupling pushes states out of it.",
    "random control": "The same penalty on a randomly chosen direction. If it helps as much, the MSA direction is "
                      "not what matters.",
}


def _points(x: float) -> str:
    n = abs(x)
    return f"{n:.1f} point{'' if round(n, 1) == 1 else 's'}"


def _effect(f: Findings) -> str:
    d = f.delta
    if f.never_penalised:
        return ("The method never switched on: the model showed no Standard Arabic direction to push away from, "
                "so this run cannot test it.")
    if not f.readable:
        return ("The models have not yet learned to translate into dialects (they score below the model they "
                "started from, or below copying the sentence unchanged), so this run cannot test the method.")
    if f.within_noise or d.reading not in ("better", "worse"):
        return (f"Pushing the models away from Standard Arabic changed dialect translation scores by "
                f"{_points(d.delta)} out of 100, no more than chance between training runs: no clear effect.")
    how = "higher" if d.reading == "better" else "lower"
    sure = ("more than chance explains" if f.seeds > 1 else
            "but with one training run per method this may still be luck")
    return (f"Pushing the models away from Standard Arabic made dialect translations score {_points(d.delta)} "
            f"{how} out of 100, {sure} (the paper found {PAPER_GAIN:.1f} higher).")


def _control(f: Findings) -> str | None:
    c = f.control_delta
    if c is None or f.delta is None or f.never_penalised or not f.readable:
        return None
    arm_real = f.delta.reading in ("better", "worse") and not f.within_noise
    ctrl_real = c.reading in ("better", "worse") and not (f.noise_floor is not None and abs(c.delta) <= f.noise_floor)
    if arm_real and not ctrl_real:
        return "Pushing away from a random direction did not do this, so Standard Arabic itself matters."
    if ctrl_real:
        return "Pushing away from a random direction changed scores too, so this is not about Standard Arabic."
    return None


def _leak(f: Findings) -> str | None:
    if f.arm not in f.leak or f.reference not in f.leak:
        return None
    (a, _), (r, _) = f.leak[f.arm], f.leak[f.reference]
    return (f"Outputs that still read as Standard Arabic instead of dialect: {a:.0%} with the method, {r:.0%} "
            "without.")


def _words(sentences: list[str]) -> int:
    return sum(len(s.split()) for s in sentences)


def plain(f: Findings) -> list[str]:
    """The summary's sentences: the effect, the random control, how much Standard Arabic the outputs still hold;
    the later ones are left out if together they would pass ``MAX_WORDS``."""
    if f.n_directions == 0 or f.delta is None or not math.isfinite(f.delta.delta):
        return ["This run has no dialect translation scores yet: the summary appears when it has been evaluated."]
    out = [_effect(f)]
    for extra in (_control(f), _leak(f)):
        if extra and _words([*out, extra]) <= MAX_WORDS:
            out.append(extra)
    return out


def summary(run: Mapping, *, refits: pd.DataFrame | None = None, arm: str = "decoupled",
            reference: str = "baseline", control: str | None = "random") -> list[str]:
    """``plain`` of ``verdict.findings`` on the run's summary (``experiment.report.summary``), the same call the
    verdict makes."""
    return plain(findings(run, refits=refits, arm=arm, reference=reference, control=control))
