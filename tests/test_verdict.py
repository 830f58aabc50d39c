"""The verdict on Home and the one-line readings of each page are computed from the numbers: two invented runs with
opposite results get different verdicts, one seed and three seeds are worded differently, a Δ inside the noise
floor is called so, and the text follows the numbers when they change.

The invented runs are summaries in ``experiment.report.summary``'s format, their readings and noise floors made by
the backend's own functions (``evaluation.chrf.reading`` / ``noise_floor``)."""

from __future__ import annotations

import pandas as pd
import pytest

from explorer.analysis import readings
from explorer.analysis.verdict import PAPER_GAIN, findings, leakage
from explorer.analysis.verdict_text import verdict
from explorer.evaluation.chrf import noise_floor, reading
from explorer.experiment.view import REFIT_COLUMNS, REFIT_VARIETY_COLUMNS

DIALECTS = ("arz", "ary", "aeb", "apc")
ARMS = ("baseline", "decoupled", "random")


def run_summary(arm_gain: float, *, seeds=(0, 1, 2), spread: float = 0.5, tuned: float = 40.0, base: float = 30.0,
                copy: float = 35.0, control_gain: float = 0.0, half_width: float = 0.6,
                leak: dict | None = None, accepted: int = 3, total: int = 3) -> dict:
    """An invented run's summary: the baseline scores ``tuned`` on every direction (seed k adds ``spread * k``, so
    its noise floor is ``spread * (len(seeds) - 1)``), decoupled ``arm_gain`` more on MSA → dialect, random
    ``control_gain`` more. ``leak``: arm -> share of MSA → dialect outputs called MSA."""
    leak = leak or {"base": 0.6, "baseline": 0.2, "decoupled": 0.2, "random": 0.2}
    gains = {"baseline": 0.0, "decoupled": arm_gain, "random": control_gain}
    dirs = [(src, tgt) for d in DIALECTS for src, tgt in (("arb", d), (d, "arb"))]
    s = {"seeds": list(seeds), "models": {"base": {}}, "arms": {a: {} for a in ARMS}, "deltas": {},
         "aggregate": {}, "aggregate_noise_floor": {}, "copy_source": {}, "looks_like": {}, "refits": {},
         "interval": "seeds+sentences" if len(seeds) > 1 else "sentences",
         "classifiers": {"msa_vs_dialect": {"balanced_accuracy": 0.91}, "dialect_id": {"accuracy": 0.8},
                         "references": {"directions": {f"arb-{d}": {"as_requested": 0.9, "called_msa": 0.05}
                                                       for d in DIALECTS}}}}
    for src, tgt in dirs:
        d = f"{src}-{tgt}"
        s["models"]["base"][d] = {"chrf": base, "n": 40}
        s["copy_source"][d] = {"chrf": copy}
        for a in ARMS:
            gain = gains[a] if src == "arb" else 0.0
            per = {k: tuned + gain + spread * i for i, k in enumerate(seeds)}
            for k, v in per.items():
                s["models"].setdefault(f"{a}.s{k}", {})[d] = {"chrf": v, "n": 40}
            vals = list(per.values())
            s["arms"][a][d] = {"mean": sum(vals) / len(vals), "sd": pd.Series(vals).std() if len(vals) > 1 else None,
                               "per_seed": {str(k): v for k, v in per.items()}}
    floors = {}
    for key in ("msa_to_dialect", "dialect_to_msa"):
        floors[key] = noise_floor({k: tuned + spread * i for i, k in enumerate(seeds)})
        if floors[key]:
            s["aggregate_noise_floor"][key] = floors[key]
    for a in ("decoupled", "random"):
        s["deltas"][a], s["aggregate"][a] = {}, {}
        for src, tgt in dirs:
            g = gains[a] if src == "arb" else 0.0
            x = {"delta": g, "low": g - half_width, "high": g + half_width}
            s["deltas"][a][f"{src}-{tgt}"] = {**x, "reading": reading(x, floors["msa_to_dialect"])}
        for key, floor in floors.items():
            g = gains[a] if key == "msa_to_dialect" else 0.0
            x = {"delta": g, "low": g - half_width, "high": g + half_width}
            s["aggregate"][a][key] = {**x, "interval": s["interval"], "reading": reading(x, floor)}
    for model in s["models"]:
        arm = model.split(".s")[0]
        s["looks_like"][model] = {"directions": {f"arb-{d}": {"as_requested": 0.5, "called_msa": leak[arm]}
                                                 for d in DIALECTS}, "identical_across_targets": 0.1}
        if arm in ("decoupled", "random"):
            s["refits"][model] = {"accepted": accepted, "total": total}
    return s


def refit_rows(angles: list[float], accepted: bool = True) -> pd.DataFrame:
    """The refit rows of one decoupled model, consecutive accepted refits ``angles`` degrees apart."""
    rows = [{"index": i, "step": 50 * i, "site": "layer.02", "rank": 1, "angle_prev_deg": a, "angle_first_deg": a,
             "accuracy": 0.9, "chance": 0.5, "gate_threshold": 0.55, "accepted": accepted, "gate_reason": ""}
            for i, a in enumerate([None, *angles])]
    return pd.DataFrame(rows).assign(model="decoupled.s0")


def test_opposite_runs_get_opposite_verdicts():
    good, bad = verdict(run_summary(+2.5)), verdict(run_summary(-2.5))
    assert good != bad
    assert f"+{PAPER_GAIN:.1f}" in good[0] and "+2.50 [+1.90, +3.10]" in good[0] and "3 seeds" in good[0]
    assert "beyond it and its interval excludes zero: in line with the paper's claim" in good[1]
    assert "-2.50 [-3.10, -1.90]" in bad[0] and "the opposite of the claim" in bad[1]
    assert "noise floor" in good[1] and "up to 1.00 chrF++" in good[1]
    small = verdict(run_summary(+0.8, spread=0.2, half_width=0.3))
    assert "in the claimed direction but smaller than the paper's" in small[1]


def test_one_seed_and_three_seeds_are_worded_differently():
    one = verdict(run_summary(+2.5, seeds=(0,)))
    three = verdict(run_summary(+2.5, seeds=(0, 1, 2)))
    assert "one seed" in one[0] and "over test sentences only" in one[0]
    assert "With one seed there is no noise floor and the interval ignores training noise" in one[1]
    assert "--seeds 3" in one[1]
    assert "3 seeds" in three[0] and "over seeds and test sentences" in three[0]
    assert "ignores training noise" not in " ".join(three)
    assert findings(run_summary(+2.5, seeds=(0,))).noise_floor is None
    assert findings(run_summary(+2.5)).noise_floor == pytest.approx(1.0)


def test_a_delta_inside_the_noise_floor_is_called_so():
    # +1.5 with an interval that excludes zero, but two baseline seeds land 2.0 apart
    s = run_summary(+1.5, spread=1.0, half_width=0.5)
    f = findings(s)
    assert f.delta.excludes_zero and f.noise_floor == pytest.approx(2.0) and f.within_noise
    text = verdict(s)
    assert "up to 2.00 chrF++" in text[1] and "this Δ is inside: within the seed-to-seed noise" in text[1]
    assert "in line with" not in " ".join(text)
    # the same Δ with a tight baseline is beyond noise
    assert not findings(run_summary(+1.5, spread=0.2, half_width=0.5)).within_noise


def test_unreadable_comparisons_are_called_so():
    below = verdict(run_summary(-0.8, tuned=20.0, base=30.0, copy=45.0))
    text = " ".join(below)
    assert "cannot be read" in text and "below the untuned base" in text and "copying the source" in text
    assert "every fine-tuned model" in text
    assert "cannot be read" not in " ".join(verdict(run_summary(-0.8, tuned=50.0, base=30.0, copy=45.0)))


@pytest.mark.parametrize("share,readable", [(0.5, True), (0.3, False)])
def test_below_copying_is_readable_when_the_models_write_the_requested_dialect(share, readable):
    """Copying MSA scores well against close dialects while writing none: a baseline under that bar still
    translates when it writes the requested dialect at least twice as often as chance (here 1/5 = 20%)."""
    s = run_summary(+0.1, tuned=32.0, base=31.0, copy=45.0)
    s["classifiers"]["dialect_id"]["classes"] = ["arb", *DIALECTS]
    for model, looks in s["looks_like"].items():
        for d in looks["directions"].values():
            d["as_requested"] = share
    f = findings(s)
    assert f.reference in f.below_copy and f.dialect_chance == pytest.approx(0.2)
    assert f.writes_dialect is readable and f.readable is readable
    text = " ".join(verdict(s))
    assert ("cannot be read" in text) is not readable
    if readable:
        assert "writes the requested dialect in 50% of its MSA → dialect outputs (chance 20%)" in text


def test_msa_leakage_per_arm_against_the_baseline():
    less = " ".join(verdict(run_summary(+2.5, leak={"base": 0.6, "baseline": 0.3, "decoupled": 0.1,
                                                    "random": 0.3})))
    assert "baseline 30%" in less and "decoupled 10%" in less and "random 30%" in less
    assert "decoupled leaks less MSA than baseline (-20 points)" in less and "91% balanced accuracy" in less
    assert "the references themselves 5%" in less and "the untuned base 60%" in less
    same = " ".join(verdict(run_summary(+2.5)))
    assert "decoupled leaks about as much as baseline" in same
    # the default run's case: +2.5 points with seed sds of 1.2 and 2.0 points is within the seeds' spread
    spread = run_summary(+2.5)
    for model, share in {"baseline.s0": 0.75, "baseline.s1": 0.77, "baseline.s2": 0.79, "decoupled.s0": 0.785,
                         "decoupled.s1": 0.795, "decoupled.s2": 0.805}.items():
        for d in spread["looks_like"][model]["directions"].values():
            d["called_msa"] = share
    assert "decoupled leaks about as much as baseline" in " ".join(verdict(spread))
    for model, share in {"decoupled.s0": 0.88, "decoupled.s1": 0.89, "decoupled.s2": 0.90}.items():
        for d in spread["looks_like"][model]["directions"].values():
            d["called_msa"] = share                # +12 points: far beyond two seed sds
    assert "decoupled leaks more MSA than baseline" in " ".join(verdict(spread))
    table = leakage(run_summary(+2.5))
    assert list(table["arm"]) == ["base", "baseline", "decoupled", "random", "reference"]
    assert table.set_index("arm").loc["decoupled", "seeds"] == 3


def test_gate_decisions_and_subspace_stability():
    none = " ".join(verdict(run_summary(+2.5, accepted=0, total=3)))
    assert "accepted none of the 9 refits of decoupled" in none and "plain fine-tuning" in none
    some = " ".join(verdict(run_summary(+2.5, accepted=2, total=3), refits=refit_rows([5, 4])))
    assert "accepted 6 of 9 refits of decoupled over 3 seeds" in some and "holds still" in some
    moving = " ".join(verdict(run_summary(+2.5), refits=refit_rows([80, 85])))
    assert "chased a moving direction" in moving
    # rejected refits do not count towards the subspace's movement
    rejected = pd.concat([refit_rows([5, 4]), refit_rows([80, 85], accepted=False)])
    assert "holds still" in " ".join(verdict(run_summary(+2.5), refits=rejected))


def test_control_arm_is_read():
    same = " ".join(verdict(run_summary(+2.5, control_gain=+2.4)))
    assert "also beyond noise: the effect is not specific to the MSA subspace" in same
    less = " ".join(verdict(run_summary(+2.5, control_gain=0.1)))
    assert "points to the MSA subspace itself" in less


def test_no_scores_says_so():
    s = run_summary(1.0)
    s["arms"], s["aggregate"], s["deltas"] = {}, {}, {}
    out = verdict(s)
    assert len(out) == 1 and "no MSA → dialect scores" in out[0]


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
    return (pd.DataFrame(rows, columns=REFIT_COLUMNS).astype({c: float for c in REFIT_COLUMNS[4:13]}),
            pd.DataFrame(per, columns=REFIT_VARIETY_COLUMNS))


# ---------------------------------------------------------------- the one-line readings of each figure


def test_angle_reading_tells_settled_from_moving():
    settled, _ = refit_tables([12, 6, 3], 0.9)
    moving, _ = refit_tables([70, 85, 88], 0.9)
    assert "holds still" in readings.angles_reading(settled) and "median 6°" in readings.angles_reading(settled)
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


def test_map_reading_uses_the_backends_reading_when_there_is_one():
    frame = pd.DataFrame({"variety": ["arz", "ary"], "name": ["a", "b"], "delta": [1.5, 0.8], "low": [0.5, 0.1],
                          "high": [2.5, 1.5], "significant": [True, False]})   # ary: interval > 0 but within noise
    text = readings.map_reading(frame, "decoupled", "MSA → dialect")
    assert "(1 and 0 read better or worse" in text and "noise floor" in text


def test_gate_penalty_and_posthoc_readings_follow_the_numbers():
    rows = refit_rows([5.0, 4.0]).assign(accepted=[False, True, True], gate_reason=["not above chance", "", ""])
    assert "accepted 2 of 3 refits; the penalty applies from step 50" in readings.gate_reading(rows)
    none = rows.assign(accepted=False)
    assert "rejected all 3 refits (not above chance)" in readings.gate_reading(none)
    assert "plain fine-tuning" in readings.gate_reading(none)
    assert "No probe gate" in readings.gate_reading(rows.assign(gate_threshold=float("nan")))
    assert "accepted none of the 3 refits" in readings.angles_reading(none)
    pens = pd.DataFrame({"model": ["decoupled.s0"] * 3 + ["random.s0"] * 3, "arm": ["decoupled"] * 3 + ["random"] * 3,
                         "seed": 0, "step": [1, 2, 3] * 2, "penalty": [float("nan"), 0.4, 0.1, 0.5, 0.5, 0.6]})
    text = readings.penalty_reading(pens)
    assert "decoupled 0.4 → 0.1 (1 seed)" in text and "random 0.5 → 0.6" in text
    assert "No penalty" in readings.penalty_reading(pens.assign(penalty=float("nan")))
    probes = pd.DataFrame({"model": ["baseline.s0", "decoupled.s0"], "step": [16, 16], "site": "layer.01",
                           "accuracy": [0.9, 0.85]})
    energy = pd.DataFrame({"model": ["baseline.s0", "decoupled.s0"], "step": [16, 16], "site": "layer.01",
                           "variety": "arz", "energy_share_mean": [0.30, 0.05]})
    text = readings.posthoc_reading(probes, energy, ["baseline.s0", "decoupled.s0"], "layer.01")
    assert "decoupled.s0 energy 0.050, probe 0.85" in text and "the information stays" in text
    chance = readings.posthoc_reading(probes.assign(accuracy=0.5), energy, ["baseline.s0", "decoupled.s0"],
                                      "layer.01")
    assert "at chance for every model" in chance


def test_subspace_source_says_which_subspace():
    assert readings.subspace_source({"layer.01": ("probe", 40)}) == \
        "this model's own training subspace, refit at step 40 (layer.01)"
    assert readings.subspace_source({"layer.01": ("posthoc", 96)}) == \
        "a probe fitted on this model's states at step 96 (layer.01)"
    assert "build representations" in readings.subspace_source({}, "cache/x") and "cache/x" in \
        readings.subspace_source({}, "cache/x")


def test_headline_mean_rows_average_directions_per_seed():
    """The "mean of N directions" row: each arm's mean over a kind's directions (per seed, then mean ± sd over
    seeds), the copy bar's mean, and the Δ, interval, reading and noise floor of that mean from the aggregate."""
    from explorer.experiment.report import headline_table
    from explorer.experiment.results import AGGREGATE_COLUMNS, DELTA_COLUMNS, SCORE_COLUMNS

    chrf = {("base", None): {"arb-arz": 50.0, "arb-ary": 40.0},
            ("baseline", 0): {"arb-arz": 30.0, "arb-ary": 20.0}, ("baseline", 1): {"arb-arz": 34.0, "arb-ary": 24.0},
            ("decoupled", 0): {"arb-arz": 31.0, "arb-ary": 23.0}, ("decoupled", 1): {"arb-arz": 39.0, "arb-ary": 21.0}}
    rows = [{"model": arm if seed is None else f"{arm}.s{seed}", "arm": arm, "seed": seed, "direction": d,
             "src": "arb", "tgt": d[4:], "chrf": v, "n": 40}
            for (arm, seed), dirs in chrf.items() for d, v in dirs.items()]
    scores = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    deltas = pd.DataFrame([{"system": "decoupled", "direction": d, "src": "arb", "tgt": d[4:], "delta": 0.5,
                            "low": -1.0, "high": 2.0, "p_value": 0.5, "interval": "seeds+sentences",
                            "per_seed": [0, 1], "reading": "within noise", "noise_floor": 4.0}
                           for d in ("arb-arz", "arb-ary")], columns=DELTA_COLUMNS)
    aggregates = pd.DataFrame([{"system": "decoupled", "kind": "MSA → dialect", "delta": 2.5, "low": 0.5,
                                "high": 4.5, "interval": "seeds+sentences", "reading": "better", "noise_floor": 2.0}],
                              columns=AGGREGATE_COLUMNS)
    table = headline_table(scores, deltas, copy_source={"arb-arz": 60.0, "arb-ary": 50.0}, aggregates=aggregates)
    assert list(table["mean"]) == [False, False, True]            # after the directions of its kind
    mean = table.iloc[-1]
    assert mean["direction"] == "mean of 2 directions" and mean["kind"] == "MSA → dialect"
    assert mean["chrF++ base"] == pytest.approx(45.0)
    assert mean["chrF++ baseline"] == pytest.approx(27.0)          # seeds: 25, 29
    assert mean["sd baseline"] == pytest.approx(pd.Series([25.0, 29.0]).std())
    assert mean["chrF++ decoupled"] == pytest.approx(28.5)         # seeds: 27, 30
    assert mean["chrF++ copy src"] == pytest.approx(55.0)
    assert mean["Δ decoupled"] == 2.5 and (mean["low decoupled"], mean["high decoupled"]) == (0.5, 4.5)
    assert mean["reading decoupled"] == "better" and mean["noise floor"] == 2.0
    # one direction of a kind: no mean row; a seed missing a direction does not enter the mean
    one = headline_table(scores[scores["direction"] == "arb-arz"], deltas)
    assert not one["mean"].any()
    partial = headline_table(scores.drop(index=scores.index[(scores["model"] == "baseline.s1")
                                                             & (scores["direction"] == "arb-ary")]), deltas)
    assert partial.iloc[-1]["chrF++ baseline"] == pytest.approx(25.0)


def with_probes(s: dict, acc: dict[str, list[float]], site: str = "layer.02") -> dict:
    """``s`` with post-hoc probe accuracies at the penalised ``site``: arm -> one value per seed."""
    s = {**s, "stages": {"arm:decoupled.s0": {"sites": [site]}}, "posthoc": {"base": {site: 0.9}}}
    for arm, values in acc.items():
        for k, v in zip(s["seeds"], values):
            s["posthoc"][f"{arm}.s{k}"] = {site: v, "layer.00": 0.5}
    return s


def test_posthoc_probe_sentence_reads_the_penalised_site():
    """The verdict says how much MSA a fresh probe still reads at the penalised site: less in the decoupled arm than
    in the baseline only beyond twice the seeds' sd, and whether the random control does the same."""
    base = run_summary(0.0)
    assert not any("fresh linear probe" in x for x in verdict(base))          # no probes: nothing said
    removed = verdict(with_probes(base, {"baseline": [0.87, 0.86, 0.88], "decoupled": [0.81, 0.80, 0.81],
                                         "random": [0.88, 0.89, 0.87]}))[-1]
    assert "at the penalised layer.02" in removed and "decoupled 0.81 ± 0.01" in removed
    assert "decoupled keeps 6 points less MSA readable than baseline" in removed
    assert "the random control does not" in removed and "the untuned base 0.90" in removed
    both = verdict(with_probes(base, {"baseline": [0.87, 0.86, 0.88], "decoupled": [0.81, 0.80, 0.81],
                                      "random": [0.80, 0.81, 0.80]}))[-1]
    assert "and so does the random control" in both
    noisy = verdict(with_probes(base, {"baseline": [0.87, 0.80, 0.94], "decoupled": [0.84, 0.85, 0.83],
                                       "random": [0.88, 0.89, 0.87]}))[-1]
    assert "about as much MSA readable in decoupled as in baseline" in noisy    # 3 points, inside 2 sd


def test_reference_model_is_the_baseline_of_the_same_seed():
    """The Subspace page compares the chosen model with the baseline of its own seed. Models are always named
    ``<arm>.s<seed>``: looking for a bare "baseline" found nothing and fell back to the base (issue 21)."""
    models = ["base", "baseline.s0", "baseline.s1", "decoupled.s0", "decoupled.s1", "random.s1"]
    assert readings.reference_model(models, "decoupled.s1") == "baseline.s1"
    assert readings.reference_model(models, "decoupled.s0") == "baseline.s0"
    assert readings.reference_model(["base", "baseline.s0", "random.s3"], "random.s3") == "baseline.s0"
    assert readings.reference_model(["base", "decoupled.s0"], "decoupled.s0") == "base"


def test_home_and_subspace_word_the_same_angle_alike():
    """Home's verdict and the Subspace page's reading word one median angle between refits the same way (issue 21:
    Home said a 40° subspace "held still" while Subspace called a 39° median "moves noticeably")."""
    for angles, word in (([38, 40, 39], "moves noticeably"), ([5, 4, 6], "holds still"), ([80, 85, 88], "keeps moving")):
        said = " ".join(verdict(run_summary(+2.5), refits=refit_rows(angles)))
        rf, _ = refit_tables(angles, 0.9)
        assert f"the subspace {word}" in said and f"the subspace {word}" in readings.angles_reading(rf), angles
        others = {"moves noticeably", "holds still", "keeps moving"} - {word}
        assert not any(o in said or o in readings.angles_reading(rf) for o in others)


SCENARIOS = {"better": dict(arm_gain=+2.5), "worse": dict(arm_gain=-2.5), "within noise": dict(arm_gain=+0.2),
             "control too": dict(arm_gain=+2.5, control_gain=+2.4), "never on": dict(arm_gain=+2.5, accepted=0),
             "unreadable": dict(arm_gain=+2.5, tuned=20.0), "one seed": dict(arm_gain=+2.5, seeds=(0,))}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_plain_summary_is_short_plain_and_follows_the_verdict(name):
    """Home's first lines: at most 60 words, none of the verdict's jargon, and the same reading of the same numbers
    as the full verdict (both from verdict.findings)."""
    from explorer.analysis.plain import JARGON, MAX_WORDS, summary

    run = run_summary(**{k: v for k, v in SCENARIOS[name].items()})
    text = " ".join(summary(run))
    full = " ".join(verdict(run))
    assert len(text.split()) <= MAX_WORDS, text
    assert not [j for j in JARGON if j.lower() in text.lower()], text
    gain = SCENARIOS[name]["arm_gain"]
    expect = {"better": "2.5 points higher", "worse": "2.5 points lower", "within noise": "no clear effect",
              "control too": "not about Standard Arabic", "never on": "never switched on",
              "unreadable": "cannot test the method", "one seed": "may still be luck"}[name]
    assert expect in text, text
    if name in ("better", "worse", "within noise"):
        assert f"{gain:+.2f}" in full                                  # the verdict's number, said plainly
        assert ("beyond it and its interval excludes zero" in full) == (name != "within noise")
    if name == "better":
        assert "Standard Arabic itself matters" in text and "20% with the method, 20% without" in text
