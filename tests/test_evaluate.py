"""chrF++ and the paired bootstrap agree with sacrebleu."""

from __future__ import annotations

import pytest
from sacrebleu.metrics import CHRF

from explorer.evaluation.chrf import chrf_signature, corpus_chrf, paired_bootstrap, score_hypotheses

REFS = ["الجو حلو النهارده", "انا رايح البيت", "فين المحطة؟", "عايز اشرب شاي"]
GOOD = ["الجو حلو النهارده", "انا رايح البيت", "فين المحطة", "عايز اشرب شاي"]
BAD = ["الطقس جميل اليوم", "أنا ذاهب إلى المنزل", "أين المحطة؟", "أريد أن أشرب الشاي"]


def test_chrf_matches_sacrebleu_on_a_fixed_example():
    assert corpus_chrf(BAD, REFS) == pytest.approx(CHRF(word_order=2).corpus_score(BAD, [REFS]).score)
    assert "nw:2" in chrf_signature() and "nc:6" in chrf_signature()


def test_paired_bootstrap_delta_and_interval():
    d = paired_bootstrap(GOOD * 5, BAD * 5, REFS * 5, n_samples=300)
    assert d.delta == pytest.approx(corpus_chrf(GOOD * 5, REFS * 5) - corpus_chrf(BAD * 5, REFS * 5), abs=1e-3)
    assert d.low <= d.delta <= d.high and d.low > 0
    same = paired_bootstrap(BAD * 5, BAD * 5, REFS * 5, n_samples=100)
    assert same.delta == 0 and same.low == 0 and same.high == 0


def test_score_hypotheses_groups_by_direction():
    recs = [{"direction": "arb-arz", "hyp": h, "ref": r} for h, r in zip(GOOD, REFS)]
    recs += [{"direction": "arz-arb", "hyp": h, "ref": r} for h, r in zip(BAD, REFS)]
    s = score_hypotheses(recs)
    assert s["arb-arz"]["n"] == 4 and s["arb-arz"]["chrf"] > s["arz-arb"]["chrf"]
