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


def test_resampling_statistics_give_sacrebleus_corpus_score():
    """The bootstrap scores resamples from per-sentence statistics; any subset's sum must equal sacrebleu's own
    corpus chrF++ of that subset (punctuation split off words, empty outputs, English and Arabic alike)."""
    import numpy as np

    from explorer.evaluation.chrf import chrf_from_statistics, chrf_statistics

    hyps = [*GOOD, *BAD, "", "(quoted), text!", "a", "مرحبا، يا صديقي.", "x y z"]
    refs = [*REFS, *REFS, "something", "quoted text", "a", "مرحبا يا صديقي", "x  y\tz"]
    stats = chrf_statistics(hyps, refs)
    rng = np.random.default_rng(0)
    for _ in range(25):
        idx = rng.choice(len(hyps), size=rng.integers(1, len(hyps) + 1), replace=True)
        ours = float(chrf_from_statistics(stats[idx].sum(0)))
        want = CHRF(word_order=2).corpus_score([hyps[i] for i in idx], [[refs[i] for i in idx]]).score
        assert ours == pytest.approx(want, abs=1e-9)
    # vectorised over resamples, as the bootstrap uses it
    many = chrf_from_statistics(np.stack([stats[:4].sum(0), stats[4:8].sum(0)]))
    assert many.shape == (2,) and many[0] == pytest.approx(corpus_chrf(GOOD, REFS))
