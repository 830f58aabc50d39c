"""Results you can trust (issue 9): the gate, the matched control, the penalty forms, seed-aware intervals and the
noise floor, and that the decoupling penalty does what it claims on a real (small) run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.evaluation.chrf import chrf_statistics, noise_floor, paired_bootstrap, reading, seed_bootstrap
from explorer.method.decoupler import Decoupler, DecoupleSettings, gate_threshold, penalty
from explorer.method.probe import ProbeConfig, ProbeFitter
from explorer.method.subspace import Subspace, random_subspace

CODES = ["arb", "arz", "ary", "eng"]


def _settings(**kw) -> DecoupleSettings:
    base = {"arm": "decoupled", "kind": "probe", "sites": ("layer.00",), "lam": 0.1, "rank": 1, "probe_every": 5, "probe_tokens": 10**6,
                "probe_steps": 80, "squared": False, "penalty_tokens": "all", "penalty_form": "norm", "mode": "penalty", "gate": 0.01,
                "seed": 0}
    return DecoupleSettings(**{**base, **kw})


def _planted(n_sent: int, signal: float, d: int = 16, seed: int = 0, u: np.ndarray | None = None):
    """Token states of n_sent sentences (8 tokens each), half MSA, half dialect, MSA shifted by ``signal`` along a
    planted direction ``u`` (drawn from the seed when not given); returns (h, is_hr, varieties, groups, u)."""
    g = np.random.default_rng(seed)
    if u is None:
        u = g.normal(size=d)
        u /= np.linalg.norm(u)
    h, hr, var, grp = [], [], [], []
    for s in range(n_sent):
        msa = s % 2 == 0
        x = g.normal(size=(8, d)) + (signal * u if msa else 0)
        h.append(x)
        hr += [msa] * 8
        var += ["arb" if msa else ("arz" if s % 4 == 1 else "ary")] * 8
        grp += [s] * 8
    return (torch.tensor(np.concatenate(h), dtype=torch.float32), torch.tensor(hr), np.array(var),
            torch.tensor(grp), u)


# ---------------------------------------------------------------- the gate


def test_gate_threshold_is_a_one_sided_binomial_bound():
    assert gate_threshold(0.5, 400, 0.0) == -math.inf
    t = gate_threshold(0.5, 400, 0.01)
    assert t == pytest.approx(0.5 + 2.3263 * 0.5 / 20, abs=1e-4)
    assert gate_threshold(0.5, 4000, 0.01) < t          # more held-out tokens, a tighter bound


def test_probe_held_out_by_sentence_reports_chance_on_noise_and_finds_a_signal():
    h, hr, var, grp, u = _planted(60, signal=0.0)
    fitter = ProbeFitter(16, ProbeConfig(steps=80, seed=0))
    _, noise = fitter.fit(h, hr, var, site="layer.00", step=0, groups=grp)
    assert noise.accuracy < gate_threshold(noise.chance_rate, noise.n_heldout, 0.01)
    h, hr, var, grp, u = _planted(60, signal=3.0)
    sub, rep = ProbeFitter(16, ProbeConfig(steps=80, seed=0)).fit(h, hr, var, site="layer.00", step=0, groups=grp)
    assert rep.accuracy > 0.9 and rep.compression > 1
    assert abs(float(sub.basis[:, 0] @ torch.tensor(u, dtype=torch.float32))) > 0.9


def _decoupler_on(states: dict[int, tuple], **kw) -> Decoupler:
    """A Decoupler whose buffer at each step is the given planted states (collect_buffer patched out)."""
    d = Decoupler(_settings(**kw), 16, CODES, probe_batches=lambda step: [])
    import explorer.method.decoupler as mod

    def fake_collect(model, batches, sites, codes, *, max_tokens, seed=0, autocast=None):
        h, hr, var, grp, _ = states[fake_collect.step]
        return {s: h for s in sites}, hr, var, grp
    d._fake = fake_collect
    d._mod = mod
    return d


def _refit(d: Decoupler, step: int):
    d._fake.step = step
    orig = d._mod.collect_buffer
    d._mod.collect_buffer = d._fake
    try:
        return d.refit(None, step, None)
    finally:
        d._mod.collect_buffer = orig


def test_no_penalty_before_the_first_accepted_fit_and_rejected_fits_keep_u():
    noise, signal = _planted(60, 0.0, seed=1), _planted(60, 3.0, seed=2)
    d = _decoupler_on({0: noise, 5: signal, 10: noise})
    batch = {"variety": torch.zeros(1, 4, dtype=torch.long), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    states = {"layer.00": torch.randn(1, 4, 16)}
    r0 = _refit(d, 0)
    assert not r0.record["accepted"] and r0.record["sites"]["layer.00"]["gate"]["reason"].startswith("held-out")
    assert not d.active and d.loss_term(states, batch) is None          # trains exactly like the baseline
    r5 = _refit(d, 5)
    assert r5.record["accepted"] and d.active and d.current["layer.00"].step == 5
    assert d.loss_term(states, batch).value > 0
    r10 = _refit(d, 10)
    assert not r10.record["accepted"] and d.current["layer.00"].step == 5   # a rejected fit keeps the old U
    assert r10.record["sites"]["layer.00"]["angle_prev_deg"] is not None


# ---------------------------------------------------------------- the matched random control


def test_random_control_redraws_on_the_decoupled_schedule_per_site_and_seed():
    redraws = {0: {"layer.00": 1, "layer.01": 1}, 15: {"layer.00": 2, "layer.01": 2}}
    s = _settings(arm="random", kind="random", sites=("layer.00", "layer.01"), redraws=redraws)
    d = Decoupler(s, 16, CODES, probe_batches=lambda step: [])
    assert [t for t in range(30) if d.due(t)] == [0, 15]
    r0 = d.refit(None, 0, None)
    u00, u01 = (d.current[site].basis for site in ("layer.00", "layer.01"))
    assert not torch.allclose(u00, u01), "one independent draw per site"
    r15 = d.refit(None, 15, None)
    assert d.current["layer.00"].rank == 2 and not torch.allclose(d.current["layer.00"].basis[:, :1], u00)
    assert r0.record["kind"] == r15.record["kind"] == "random"
    again = Decoupler(s, 16, CODES, probe_batches=lambda step: [])
    again.refit(None, 0, None)
    assert torch.equal(again.current["layer.00"].basis, u00), "seeded from (seed, step, site)"
    other_seed = Decoupler(_settings(arm="random", kind="random", sites=("layer.00",), redraws=redraws, seed=1),
                           16, CODES, probe_batches=lambda step: [])
    other_seed.refit(None, 0, None)
    assert not torch.allclose(other_seed.current["layer.00"].basis, u00)
    # with nothing to follow, it redraws every probe_every steps
    alone = Decoupler(_settings(arm="random", kind="random"), 16, CODES, probe_batches=lambda step: [])
    assert [t for t in range(12) if alone.due(t)] == [0, 5, 10]


# ---------------------------------------------------------------- penalty forms


def test_penalty_forms():
    g = torch.Generator().manual_seed(0)
    sub = random_subspace(8, 2, site="s", seed=3)
    h = torch.randn(2, 5, 8, generator=g)
    mask = torch.ones(2, 5, dtype=torch.bool)
    plain = penalty({"s": h}, {"s": sub}, mask)
    assert plain == pytest.approx(torch.linalg.vector_norm(h @ sub.basis, dim=-1).mean().item(), rel=1e-5)
    # normalised: blind to the scale of the stream (a shrinking h cannot lower it)
    assert penalty({"s": 3 * h}, {"s": sub}, mask, form="normalised") == pytest.approx(
        penalty({"s": h}, {"s": sub}, mask, form="normalised").item(), rel=1e-5)
    assert penalty({"s": 3 * h}, {"s": sub}, mask) == pytest.approx(3 * plain.item(), rel=1e-5)
    # centred: a shared offset along U costs nothing, the spread along U does
    shifted = h + 5.0 * sub.basis[:, 0]
    assert penalty({"s": shifted}, {"s": sub}, mask, form="centred") == pytest.approx(
        penalty({"s": h}, {"s": sub}, mask, form="centred").item(), rel=1e-4)
    assert penalty({"s": shifted}, {"s": sub}, mask) > plain + 1.0
    inside = sub.project_out(h)          # no component in U at all: every form is ~0
    for form in ("norm", "normalised", "centred"):
        assert penalty({"s": inside}, {"s": sub}, mask, form=form) < 1e-3


def test_probe_fitted_subspace_beats_a_random_one_on_held_out_accuracy():
    """What the probe finds carries the MSA signal; a random direction of the same rank does not."""
    h, hr, var, grp, u = _planted(80, signal=2.0, d=32, seed=4)
    sub, _ = ProbeFitter(32, ProbeConfig(steps=80, seed=0)).fit(h, hr, var, site="s", step=0, groups=grp)
    rnd = random_subspace(32, 1, site="s", seed=9)
    test_h, test_hr, _, _, _ = _planted(80, signal=2.0, d=32, seed=5, u=u)   # new sentences, same direction

    def accuracy(s: Subspace) -> float:      # the best threshold on the 1-D projection, from training data
        x_tr, x_te = (h @ s.basis)[:, 0], (test_h @ s.basis)[:, 0]
        sign = 1.0 if x_tr[hr].mean() > x_tr[~hr].mean() else -1.0
        cut = 0.5 * (x_tr[hr].mean() + x_tr[~hr].mean())
        return float(((sign * (x_te - cut) > 0) == test_hr).float().mean())

    assert accuracy(sub) > 0.75 and accuracy(sub) > accuracy(rnd) + 0.15


# ---------------------------------------------------------------- seed-aware intervals and the noise floor

REFS = ["الجو حلو النهارده", "انا رايح البيت", "فين المحطة؟", "عايز اشرب شاي", "الأكل ده حلو قوي"] * 6
GOOD = ["الجو حلو النهارده", "انا رايح البيت", "فين المحطة", "عايز اشرب شاي", "الأكل ده حلو"] * 6
BAD = ["الطقس جميل اليوم", "أنا ذاهب إلى المنزل", "أين المحطة؟", "أريد أن أشرب الشاي", "هذا الطعام لذيذ"] * 6


def _mix(k: int) -> list[str]:
    """A system that gets the first k sentences right and the rest wrong."""
    return GOOD[:k] + BAD[k:]


def test_one_seed_gives_the_sentence_interval_and_says_so():
    a, b = chrf_statistics(_mix(20), REFS), chrf_statistics(_mix(10), REFS)
    one = seed_bootstrap({0: a}, {0: b}, n_samples=400)
    assert one.interval == "sentences" and one.low <= one.delta <= one.high and one.low > 0
    sent = paired_bootstrap(_mix(20), _mix(10), REFS, n_samples=400)
    assert one.delta == pytest.approx(sent.delta, abs=1e-3)
    assert (one.high - one.low) == pytest.approx(sent.high - sent.low, rel=0.35)


def test_training_noise_widens_the_interval():
    """Arms whose advantage flips between seeds: with seeds resampled the interval crosses zero, where a single
    seed's sentence-only interval would have called it significant."""
    sys = {0: chrf_statistics(_mix(25), REFS), 1: chrf_statistics(_mix(8), REFS), 2: chrf_statistics(_mix(22), REFS)}
    ref = {0: chrf_statistics(_mix(10), REFS), 1: chrf_statistics(_mix(20), REFS), 2: chrf_statistics(_mix(12), REFS)}
    both = seed_bootstrap(sys, ref, n_samples=600)
    assert both.interval == "seeds+sentences" and len(both.per_seed) == 3
    assert both.per_seed[0] > 0 > both.per_seed[1]
    assert both.low < 0 < both.high, "seed-to-seed variation must show in the interval"
    only0 = seed_bootstrap({0: sys[0]}, {0: ref[0]}, n_samples=600)
    assert only0.low > 0, "one seed alone looks significant: that is the trap"
    assert both.delta == pytest.approx(np.mean(both.per_seed), abs=1e-3)


def test_noise_floor_and_reading():
    assert noise_floor({0: 40.0}) is None
    floor = noise_floor({0: 40.0, 1: 43.5, 2: 41.0})
    assert floor["max_abs"] == pytest.approx(3.5) and len(floor["pairs"]) == 3
    assert floor["sd"] == pytest.approx(np.std([40, 43.5, 41], ddof=1), abs=1e-4)
    assert reading({"delta": 2.0, "low": 0.5, "high": 3.5}, floor) == "within noise"   # interval excludes 0, but < floor
    assert reading({"delta": 5.0, "low": 2.0, "high": 8.0}, floor) == "better"
    assert reading({"delta": -5.0, "low": -8.0, "high": -2.0}, floor) == "worse"
    assert reading({"delta": 5.0, "low": -1.0, "high": 8.0}, floor) == "within noise"
    assert reading({"delta": 2.0, "low": 0.5, "high": 3.5}, None) == "better"          # one seed: the interval decides


# ---------------------------------------------------------------- on a real run


@pytest.mark.slow
def test_gate_keeps_the_penalty_off_until_a_fit_is_accepted(tmp_path):
    """With the gate on, a decoupled arm whose probe never beats chance trains exactly like the baseline (a placebo
    control built into the method); once a fit is accepted the penalty applies from that step on."""
    from explorer.config import preset_config
    from explorer.experiment.run import run_experiment

    cfg = preset_config("tiny", gate=0.01, seeds=(0,), arms=("baseline", "decoupled", "random"), lam=1.0)
    exp = run_experiment(cfg, tmp_path / "gated", bar=False, represent=False)
    refits = exp.refits("decoupled.s0")
    accepted = [r["step"] for r in refits if r["accepted"]]
    first = accepted[0] if accepted else cfg.steps
    log = exp.train_log("decoupled.s0")
    assert all(r["penalty"] is None for r in log if r["step"] <= first)
    assert all(r["penalty"] is not None for r in log if r["step"] > first)
    assert [r["step"] for r in exp.refits("random.s0")] == accepted      # the matched control follows it
    if not accepted:
        a, b = (exp.load_checkpoint(m, cfg.steps) for m in ("decoupled.s0", "baseline.s0"))
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_decoupled_arm_lowers_its_energy_in_the_subspace_below_the_baseline(tmp_path):
    """The penalty does what it claims: at the penalised site, the decoupled model's states have a smaller share in
    the subspace it was trained against than the baseline's states of the same sentences, at the same step."""
    from explorer.config import preset_config
    from explorer.experiment.run import run_experiment
    from explorer.experiment.view import load_experiment

    cfg = preset_config("tiny", gate=0.0, seeds=(0,), arms=("baseline", "decoupled"), lam=1.0, steps=32,
                        ckpt_every=16, probe_every=8)
    exp = run_experiment(cfg, tmp_path / "effect", bar=False)
    v = load_experiment(exp.root)
    site = v.penalised_sites[0]
    sub = v.subspace("decoupled.s0", cfg.steps, site)
    assert sub is not None and sub.kind == "probe"
    share = {m: float(sub.energy_share(torch.from_numpy(v.representations(m, cfg.steps, site))).mean())
             for m in ("baseline.s0", "decoupled.s0")}
    assert share["decoupled.s0"] < 0.7 * share["baseline.s0"], share
    g = v.geometry("decoupled.s0", cfg.steps, site)
    assert g["energy_share_train"].notna().all()


def test_fine_tuning_makes_outputs_depend_on_the_target_dialect(tiny_experiment):
    """Target sensitivity (issue 13): the base starts every dialect tag from MSA's, so its MSA→dialect outputs are the
    same for every target dialect; after stage 2 each arm's outputs differ for a share of the sentences."""
    from explorer.experiment.view import load_experiment

    looks = load_experiment(tiny_experiment).looks_like()
    same = looks.groupby("model")["identical_across_targets"].mean()
    assert same["base"] == 1.0
    arms = same.drop(["base", "reference"], errors="ignore")
    assert len(arms) == 6 and (arms < 0.75).all()
    assert same.get("reference", 0.0) == 0.0      # references differ between dialects: the measure can say so


def test_the_msa_classifier_recognises_msa_among_eight_close_dialects():
    """MSA leakage is only as good as its classifier: with 8 FLORES dialects against MSA, naive Bayes with uniform
    priors recognised 21% of the MSA test sentences (59% balanced accuracy); the balanced logistic regression must
    recognise most of them and keep the dialects apart."""
    from explorer.data.sources import load_corpus
    from explorer.data.varieties import HR
    from explorer.evaluation.dialect_id import fit

    corpus = load_corpus("flores", dev=100, test=100, seed=0)
    m = fit(corpus.split("train"), corpus.split("test"), [HR, *corpus.dialects], msa_vs_dialect=True)
    assert m.classes == (HR, "dialect")
    assert m.test_accuracy > 0.7 and m.per_variety_accuracy[HR] > 0.6
    assert sum(m.per_variety_accuracy[d] > 0.8 for d in corpus.dialects) >= 6
    out = m.predict(["ذهبت إلى السوق أمس واشتريت بعض الخضروات.", "رحت السوق امبارح واشتريت شوية خضار."])
    assert [p.variety for p in out] == [HR, "dialect"]


def test_classify_scores_stored_outputs_again(tiny_experiment, tmp_path):
    """`python -m explorer classify DIR` rewrites what the outputs look like from the stored hypotheses."""
    import shutil

    from explorer.__main__ import main as cli_main
    from explorer.experiment.layout import Experiment
    from explorer.files import read_json, write_json

    folder = tmp_path / "exp"
    shutil.copytree(tiny_experiment, folder)
    exp = Experiment(folder)
    path = exp.scores_path("baseline.s0")
    before = read_json(path)["looks_like"]
    assert before["directions"]
    stale = read_json(path)
    for d in stale["looks_like"]["directions"].values():
        d["called_msa"], d["as_requested"] = 0.999, 0.001
    write_json(path, stale)
    from explorer.experiment.layout import RunLock

    with RunLock(exp):                                   # a run holds the folder: refused, nothing written
        assert cli_main(["classify", str(folder)]) == 2
    assert read_json(path)["looks_like"]["directions"] != before["directions"]
    assert cli_main(["classify", str(folder)]) == 0
    assert read_json(path)["looks_like"] == before
    assert read_json(exp.classifiers_path)["msa_vs_dialect"]["balanced_accuracy"] > 0.5
