"""The verdict on Home and the one-line readings of each page are computed from the numbers: two invented runs with
opposite results get different verdicts, and the text follows the numbers when they change."""

from __future__ import annotations

import pandas as pd
import pytest

from explorer.analysis import readings
from explorer.analysis.verdict import PAPER_GAIN, findings, verdict
from explorer.experiment.view import DELTA_COLUMNS, REFIT_COLUMNS, REFIT_VARIETY_COLUMNS, SCORE_COLUMNS

DIALECTS = ("arz", "ary", "aeb", "apc")


def run_tables(arm_gain: float, *, tuned: float = 40.0, base: float = 30.0, copy: float = 35.0,
               control_gain: float = 0.0, half_width: float = 0.6):
    """(scores, deltas, copy_source) of an invented run in the view's formats: the baseline scores ``tuned`` on
    every MSA → dialect direction, decoupled ``tuned + arm_gain``, random ``tuned + control_gain``."""
    rows, deltas, copy_src = [], [], {}
    for d in DIALECTS:
        for src, tgt in (("arb", d), (d, "arb")):
            direction = f"{src}-{tgt}"
            gain = arm_gain if src == "arb" else 0.0
            for model, chrf in (("base", base), ("baseline", tuned), ("decoupled", tuned + gain),
                                ("random", tuned + (control_gain if src == "arb" else 0.0))):
                rows.append({"model": model, "direction": direction, "src": src, "tgt": tgt, "chrf": chrf, "n": 40})
            for system, g in (("decoupled", gain), ("random", control_gain if src == "arb" else 0.0)):
                deltas.append({"system": system, "direction": direction, "src": src, "tgt": tgt, "delta": g,
                               "low": g - half_width, "high": g + half_width, "p_value": 0.01})
            copy_src[direction] = copy
    return (pd.DataFrame(rows, columns=SCORE_COLUMNS), pd.DataFrame(deltas, columns=DELTA_COLUMNS), copy_src)


def refit_tables(angles: list[float], accuracy: float, msa_share: float = 0.5):
    """(refits, refit_varieties) with the given consecutive angles and a final probe accuracy."""
    rows, per = [], []
    for i, a in enumerate([None, *angles]):
        step = 50 * i
        rows.append({"index": i, "step": step, "site": "layer.02", "rank": 1, "angle_prev_deg": a,
                     "angle_first_deg": min(90.0, sum(angles[:i])) if i else 0.0, "accuracy": accuracy,
                     "code_length_bits": 100.0, "compression": 1.2, "mi_lower_bound_bits": 0.1, "seconds": 0.5})
        per.append({"index": i, "step": step, "site": "layer.02", "variety": "arb", "n": 1000 * msa_share,
                    "accuracy": accuracy, "code_length_bits": 50.0, "compression": 1.2})
        per.append({"index": i, "step": step, "site": "layer.02", "variety": "arz", "n": 1000 * (1 - msa_share),
                    "accuracy": accuracy, "code_length_bits": 50.0, "compression": 1.2})
    return (pd.DataFrame(rows, columns=REFIT_COLUMNS).astype({c: float for c in REFIT_COLUMNS[4:]}),
            pd.DataFrame(per, columns=REFIT_VARIETY_COLUMNS))


def test_opposite_runs_get_opposite_verdicts():
    good = verdict(*run_tables(+2.5), refits=refit_tables([10, 8, 6], 0.92)[0],
                   refit_varieties=refit_tables([10, 8, 6], 0.92)[1])
    bad = verdict(*run_tables(-2.5), refits=refit_tables([10, 8, 6], 0.92)[0],
                  refit_varieties=refit_tables([10, 8, 6], 0.92)[1])
    assert good != bad
    assert 2 <= len(good) <= 3 and 2 <= len(bad) <= 3
    assert f"+{PAPER_GAIN:.1f}" in good[0] and "+2.5" in good[0] and "in line with the paper's claim" in good[0]
    assert "-2.5" in bad[0] and "the opposite of the claim" in bad[0]
    assert "4 clearly better" in good[0] and "4 clearly worse" in bad[0]
    assert "probe told MSA" in good[-1] and "0.92" in good[-1]


def test_text_follows_the_numbers():
    small = verdict(*run_tables(+0.3, half_width=1.0))
    assert "+0.3" in small[0] and "0 clearly better" in small[0] and "not supported" in small[0]
    assert verdict(*run_tables(+0.4, half_width=1.0))[0] != small[0]
    noisy = verdict(*run_tables(+1.5), noise_floor=2.0, seeds=3)
    assert "within the seed-to-seed noise" in noisy[0] and "±2.0" in noisy[0] and "mean of 3 seeds" in noisy[0]


def test_unreadable_comparisons_are_called_so():
    # the run of the issue: every fine-tuned model below the untuned base and below copying the source
    below = verdict(*run_tables(-0.8, tuned=20.0, base=30.0, copy=45.0))
    assert "cannot be read" in below[1] and "below the untuned base" in below[1] and "copying the source" in below[1]
    assert "every fine-tuned model" in below[1]
    fine = verdict(*run_tables(-0.8, tuned=50.0, base=30.0, copy=45.0))
    assert "cannot be read" not in " ".join(fine)
    # a probe at chance, an unstable subspace
    rf, per = refit_tables([80, 85, 88], 0.52, msa_share=0.5)
    text = " ".join(verdict(*run_tables(+2.5), refits=rf, refit_varieties=per))
    assert "at chance (0.52 vs 0.50" in text and "unstable" in text and "85°" in text
    rf, per = refit_tables([5, 4, 3], 0.71, msa_share=0.7)            # chance is the larger class: 0.70
    assert findings(*run_tables(0.0), refits=rf, refit_varieties=per).probe_at_chance


def test_control_arm_is_read():
    same = verdict(*run_tables(+2.5, control_gain=+2.4))
    assert "not specific to the MSA subspace" in same[1]
    less = verdict(*run_tables(+2.5, control_gain=0.1))
    assert "points to the MSA subspace" in less[1]


def test_seeded_model_names_are_averaged():
    scores, deltas, copy = run_tables(+2.0)
    seeded = []
    for _, r in scores.iterrows():
        if r["model"] == "base":
            seeded.append(r.to_dict())
            continue
        for s, shift in ((0, -1.0), (1, +1.0)):
            seeded.append({**r.to_dict(), "model": f"{r['model']}.s{s}", "chrf": r["chrf"] + shift})
    f = findings(pd.DataFrame(seeded), deltas, copy)
    assert f.arm_chrf == pytest.approx(42.0) and f.reference_chrf == pytest.approx(40.0)
    assert set(f.below_base) == set()


def test_no_scores_says_so():
    scores, deltas, copy = run_tables(1.0)
    out = verdict(scores[scores["model"] == "base"], deltas.iloc[:0], copy)
    assert len(out) == 1 and "no MSA → dialect scores" in out[0]


# ---------------------------------------------------------------- the one-line readings of each figure


def test_angle_reading_tells_settled_from_moving():
    settled, _ = refit_tables([12, 6, 3], 0.9)
    moving, _ = refit_tables([70, 85, 88], 0.9)
    assert "settles" in readings.angles_reading(settled) and "median 6°" in readings.angles_reading(settled)
    assert "keeps moving" in readings.angles_reading(moving) and "median 85°" in readings.angles_reading(moving)
    assert "Only 1 refit" in readings.angles_reading(settled.iloc[:1])
    assert "Random draws" in readings.angles_reading(moving, drawn=True)


def test_probe_reading_uses_chance_and_names_the_worst_dialect():
    rf, per = refit_tables([5, 5], 0.68)
    per.loc[(per["variety"] == "arz") & (per["step"] == 100), "accuracy"] = 0.19
    text = readings.probe_reading(rf, per, 0.5)
    assert "0.68" in text and "0.50" in text and "+0.18 above chance" in text
    assert "Egyptian 0.19 (most of its tokens are called MSA)" in text
    assert "at chance" in readings.probe_reading(refit_tables([5], 0.52)[0], per, 0.5)


def test_energy_reading_tells_separation_from_shrinking():
    def heat(dialect_last, msa_last):
        return pd.DataFrame({0: [0.30, 0.30, 0.30], 200: [msa_last, dialect_last, dialect_last]},
                            index=["arb", "arz", "ary"])
    assert "separated" in readings.energy_reading({"decoupled": heat(0.10, 0.29)})
    assert "every row falls alike" in readings.energy_reading({"decoupled": heat(0.10, 0.10)})
    assert "rises alike" in readings.energy_reading({"baseline": heat(0.5, 0.5)})
    assert "0.300 → 0.100" in readings.energy_reading({"decoupled": heat(0.10, 0.10)})


def test_map_embedding_and_error_readings_follow_the_numbers():
    frame = pd.DataFrame({"variety": ["arz", "ary", "ars"], "name": ["a", "b", "c"], "delta": [1.5, -0.5, -2.0],
                          "low": [0.5, -1.0, -3.0], "high": [2.5, 0.1, -1.0]})
    text = readings.map_reading(frame, "decoupled", "MSA → dialect")
    assert "above baseline in 1 of 3" in text and "below in 2" in text and "(1 and 1 with" in text
    assert "largest gain Egyptian +1.5" in text and "largest loss Najdi -2.0" in text
    near = pd.DataFrame({"dialect": ["Egyptian", "mean"], "paired 1 − cos": [0.10, 0.10],
                         "centroid 1 − cos": [0.01, 0.01], "centroid L2": [1.0, 1.0]})
    far = near.assign(**{"paired 1 − cos": [0.15, 0.15]})
    assert "further from MSA" in readings.embedding_reading({"baseline": near, "decoupled": far}, "layer.02")
    assert "closer to MSA" in readings.embedding_reading({"baseline": far, "decoupled": near}, "layer.02")
    shown = pd.DataFrame({"delta": [1.0, -2.0, 0.0], "pair_flags": ["", "source = reference", ""],
                          "flags_baseline": ["empty", "", "near-copy of source"], "flags_decoupled": ["", "", ""]})
    text = readings.errors_reading(shown, 10, ["baseline", "decoupled"], ("decoupled", "baseline"))
    assert "3 of 10" in text and "beats baseline on 1 and loses on 1" in text and "1 test pair" in text
    assert "No translation matches" in readings.errors_reading(shown.iloc[:0], 10, ["baseline"], None)


def test_msa_distances_from_geometry_rows():
    geo = pd.DataFrame({"model": ["baseline"] * 3, "step": [200] * 3, "site": ["layer.02"] * 3,
                        "variety": ["arb", "arz", "ary"], "centroid_cosine": [1.0, 0.9, 0.8],
                        "centroid_l2": [0.0, 2.0, 4.0], "paired_cosine": [1.0, 0.7, 0.5]})
    t = readings.msa_distances(geo, "baseline", 200, "layer.02")
    assert list(t["dialect"]) == ["Egyptian", "Moroccan", "mean"]
    assert t["paired 1 − cos"].tolist() == pytest.approx([0.3, 0.5, 0.4])
    assert t["centroid L2"].tolist() == pytest.approx([2.0, 4.0, 3.0])
