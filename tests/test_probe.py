"""The mathematics of explorer.probe: projections, principal angles, the variational code, INLP rounds."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles

from explorer.method.online_code import online_code_length
from explorer.method.probe import ProbeConfig, ProbeFitter
from explorer.method.subspace import Subspace, principal_angles_deg, random_subspace
from explorer.method.variational import K1, K2, K3, VariationalLinear

# ---------------------------------------------------------------------------------------------- planted problems


def planted(n: int, d: int, strength: float, *, informative: int = 4, seed: int = 0):
    """HR tokens shifted by +strength*u, the rest by -strength*u, u spread evenly over the first dims (N(0, I) noise).

    The Bayes-optimal linear direction is u; only ``informative`` input dims carry signal.
    """
    g = torch.Generator().manual_seed(seed)
    u = torch.zeros(d)
    u[:informative] = torch.where(torch.rand(informative, generator=g) < 0.5, -1.0, 1.0)
    u /= u.norm()
    y = torch.rand(n, generator=g) < 0.5
    h = torch.randn(n, d, generator=g) + strength * (2 * y.float() - 1)[:, None] * u
    return h, y, u


def varieties_for(y: torch.Tensor) -> np.ndarray:
    return np.where(y.numpy(), "msa", "arz")


@pytest.fixture(scope="module")
def three_varieties():
    """MSA at +2u; a 'far' dialect at -2u and a 'near' one at +0.4u: the direction is u, 'near' is harder."""
    g = torch.Generator().manual_seed(3)
    d, n = 32, 8000
    u = torch.zeros(d)
    u[:4] = torch.tensor([1.0, -1.0, 1.0, 1.0]) / 2
    var = np.array(["msa", "far", "near", "msa"] * (n // 4))
    shift = torch.from_numpy(np.select([var == "msa", var == "far"], [2.0, -2.0], 0.4)).float()
    h = torch.randn(n, d, generator=g) + shift[:, None] * u
    is_hr = torch.from_numpy(var == "msa")
    fitter = ProbeFitter(d)
    sub, report = fitter.fit(h, is_hr, var, site="layer.02", step=500)
    return {"h": h, "is_hr": is_hr, "var": var, "u": u, "fitter": fitter, "sub": sub, "report": report}


# --------------------------------------------------------------------------------------------------- Subspace


def test_projection_is_idempotent_and_leaves_nothing_in_u():
    sub = random_subspace(16, 3, site="layer.01", seed=1)
    h = torch.randn(50, 16, dtype=torch.float64)
    once = sub.project_out(h)
    assert torch.allclose(sub.project_out(once), once, atol=1e-6)
    assert torch.allclose(sub.coords(once), torch.zeros(50, 3, dtype=torch.float64), atol=1e-6)
    # the part removed lies in span(U): h - P h is orthogonal to what was removed
    assert torch.allclose(((h - once) * once).sum(-1), torch.zeros(50, dtype=torch.float64), atol=1e-5)


def test_alpha_zero_is_identity_bit_for_bit_and_alpha_scales_the_coordinates():
    sub = random_subspace(16, 2, site="layer.01", seed=2)
    h = torch.randn(4, 7, 16)  # any leading shape
    assert torch.equal(sub.project_out(h, alpha=0.0), h)
    half = sub.project_out(h, alpha=0.5)
    assert half.shape == h.shape and half.dtype == h.dtype
    assert torch.allclose(sub.coords(half), 0.5 * sub.coords(h), atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        sub.project_out(h, alpha=1.5)


def test_projection_is_differentiable_with_the_projector_as_jacobian():
    sub = random_subspace(8, 2, site="layer.01", seed=3)
    h = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    sub.project_out(h, alpha=0.7).sum().backward()
    u = sub.basis.double()
    want = torch.ones(5, 8, dtype=torch.float64) @ (torch.eye(8, dtype=torch.float64) - 0.7 * u @ u.T)
    assert torch.allclose(h.grad, want, atol=1e-6)


def test_energy_share_is_one_inside_and_zero_orthogonal():
    sub = random_subspace(12, 3, site="layer.01", seed=4)
    inside = torch.randn(6, 3, dtype=torch.float64) @ sub.basis.double().T
    outside = sub.project_out(torch.randn(6, 12, dtype=torch.float64))
    assert torch.allclose(sub.energy_share(inside), torch.ones(6, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(sub.energy_share(outside), torch.zeros(6, dtype=torch.float64), atol=1e-6)
    zero = sub.energy_share(torch.zeros(2, 12))
    assert torch.isfinite(zero).all() and (zero == 0).all()


def test_subspace_is_frozen_and_owns_its_basis():
    q, _ = torch.linalg.qr(torch.randn(10, 2))
    sub = Subspace(q, site="layer.03", step=7)
    q.zero_()  # the caller's tensor changes; the subspace does not
    assert float(sub.basis.norm()) > 1.0 and sub.rank == 2 and sub.dim == 10
    with pytest.raises(dataclasses.FrozenInstanceError):
        sub.step = 8  # type: ignore[misc]
    moved = sub.to(dtype=torch.float64)
    assert moved.basis.dtype == torch.float64 and sub.basis.dtype == torch.float32 and moved is not sub
    with pytest.raises(ValueError, match="not orthonormal"):
        Subspace(2 * torch.eye(4)[:, :2], site="layer.03", step=0)
    with pytest.raises(ValueError, match="does not match"):
        sub.coords(torch.randn(3, 11))


def test_subspace_round_trips_through_safetensors():
    from safetensors.torch import load, save

    sub = random_subspace(24, 3, site="layer.05", step=200, seed=5)
    back = Subspace.from_tensors(load(save(sub.to_tensors())), site="layer.05", step=200, kind="random")
    assert torch.equal(back.basis, sub.basis)
    assert (back.site, back.step, back.kind, back.rank) == ("layer.05", 200, "random", 3)


def test_random_subspace_is_orthonormal_and_seeded():
    a = random_subspace(64, 5, site="layer.01", seed=11)
    assert a.kind == "random" and a.basis.shape == (64, 5) and a.basis.dtype == torch.float32
    assert torch.allclose(a.basis.T @ a.basis, torch.eye(5), atol=1e-6)
    assert torch.equal(a.basis, random_subspace(64, 5, site="layer.01", seed=11).basis)
    assert principal_angles_deg(a, random_subspace(64, 5, site="layer.01", seed=12)).max() > 45.0
    state = torch.get_rng_state()
    random_subspace(8, 2, site="x")
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize(("ka", "kb", "eps"), [(1, 1, 0.0), (2, 3, 0.0), (4, 2, 0.0), (3, 3, 1e-5)])
def test_principal_angles_agree_with_scipy(ka, kb, eps):
    g = torch.Generator().manual_seed(ka * 10 + kb)
    a = torch.randn(20, ka, generator=g, dtype=torch.float64)
    b = a + eps * torch.randn(20, ka, generator=g, dtype=torch.float64) if eps else torch.randn(
        20, kb, generator=g, dtype=torch.float64)
    want = np.sort(np.degrees(subspace_angles(a.numpy(), b.numpy())))
    got = principal_angles_deg(a, b)
    assert np.all(np.diff(got) >= 0)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_principal_angles_limits():
    e = torch.eye(6)
    assert np.allclose(principal_angles_deg(e[:, :2], e[:, [1, 0]]), 0.0, atol=1e-6)
    assert np.allclose(principal_angles_deg(e[:, :2], e[:, 2:4]), 90.0)
    sub = Subspace(e[:, :1], site="s", step=0)
    rot = torch.tensor([math.cos(0.3), math.sin(0.3), 0, 0, 0, 0])
    assert np.isclose(principal_angles_deg(sub, rot)[0], math.degrees(0.3))


# ------------------------------------------------------------------------------------------ VariationalLinear


def _z_kl(log_alpha: np.ndarray) -> np.ndarray:
    """Molchanov et al. 2017's approximation, written independently: -(k1 s(k2 + k3 a) - 0.5 log1p(e^-a) - k1)."""
    return -(K1 / (1 + np.exp(-(K2 + K3 * log_alpha))) - 0.5 * np.log1p(np.exp(-log_alpha)) - K1)


def test_kl_matches_the_formula_is_positive_and_falls_with_log_alpha():
    layer = VariationalLinear(5, 3)
    with torch.no_grad():  # weights and bias at the prior: their Gaussian KL is exactly 0
        layer.weight_mu.zero_()
        layer.weight_logvar.zero_()
        layer.bias_mu.zero_()
        layer.bias_logvar.zero_()
        layer.z_mu.fill_(1.0)
    values = []
    for a in np.linspace(-8, 8, 17):
        with torch.no_grad():
            layer.z_logvar.fill_(float(a))  # log alpha = a since mu_z = 1
        values.append(float(layer.kl().detach()))
        assert values[-1] == pytest.approx(5 * _z_kl(np.array(a)), rel=1e-4)
    assert all(v > 0 for v in values)
    assert all(b < a for a, b in itertools.pairwise(values))
    with torch.no_grad():
        layer.z_logvar.fill_(20.0)
    assert float(layer.kl().detach()) < 1e-3  # a dimension switched off costs nothing
    with torch.no_grad():  # moving the weights away from the prior only adds KL
        layer.weight_mu.normal_()
        layer.bias_logvar.fill_(-3.0)
    assert float(layer.kl().detach()) > 5 * _z_kl(np.array(20.0)) + 1.0


def test_preactivation_moments_match_monte_carlo_of_the_hierarchical_model():
    g = torch.Generator().manual_seed(0)
    layer = VariationalLinear(4, 3, generator=g)
    with torch.no_grad():
        layer.z_mu.copy_(torch.tensor([1.0, 0.5, -0.8, 1.2]))
        layer.z_logvar.copy_(torch.tensor([-1.0, -2.0, -0.5, -3.0]))
        layer.weight_mu.copy_(torch.randn(3, 4, generator=g))
        layer.weight_logvar.copy_(torch.full((3, 4), -1.5))
        layer.bias_logvar.fill_(-2.0)
    x = torch.tensor([[0.7, -1.3, 0.4, 2.0]], dtype=torch.float64)
    layer = layer.double()
    mean, cov = layer.preactivation_moments(x)
    s = 400_000  # z_j ~ N(mu_z, s_z^2); W_cj | z_j ~ N(z_j mu_W, z_j^2 s_W^2); b ~ N(mu_b, s_b^2)
    z = layer.z_mu + layer.z_logvar.mul(0.5).exp() * torch.randn(s, 4, generator=g, dtype=torch.float64)
    w = z[:, None, :] * (layer.weight_mu + layer.weight_logvar.mul(0.5).exp() * torch.randn(
        s, 3, 4, generator=g, dtype=torch.float64))
    b = layer.bias_mu + layer.bias_logvar.mul(0.5).exp() * torch.randn(s, 3, generator=g, dtype=torch.float64)
    out = (w @ x[0]) + b  # (S, 3)
    mc_cov = torch.cov(out.T)
    assert torch.allclose(mean[0].detach(), out.mean(0), atol=0.02)
    assert torch.allclose(cov[0].detach(), mc_cov, rtol=0.03, atol=0.02)


def test_binary_nll_shortcut_has_the_same_expectation_as_the_full_forward():
    g = torch.Generator().manual_seed(1)
    layer = VariationalLinear(6, 2, generator=g).double()
    with torch.no_grad():
        layer.z_logvar.fill_(-1.0)
        layer.weight_logvar.fill_(-2.0)
    x = torch.randn(1, 6, generator=g, dtype=torch.float64).expand(100_000, 6)
    y = torch.ones(100_000, dtype=torch.long)
    short = layer.sampled_nll(x, y, generator=g).detach()
    full = torch.nn.functional.cross_entropy(layer(x, generator=g), y, reduction="none").detach()
    se = math.sqrt(float(short.var() + full.var()) / 100_000)
    assert abs(float(short.mean() - full.mean())) < 4 * se


# ------------------------------------------------------------------------------------------------ ProbeFitter


def test_probe_recovers_the_planted_direction(three_varieties):
    sub, rep, u = three_varieties["sub"], three_varieties["report"], three_varieties["u"]
    assert sub.kind == "probe" and sub.rank == 1 and (sub.site, sub.step) == ("layer.02", 500)
    assert principal_angles_deg(sub, u)[0] < 5.0
    assert float(sub.basis[:, 0] @ u) > 0  # U's first column points towards HR
    assert rep.accuracy > 0.8 and rep.rounds == 1 and rep.round_accuracy == (rep.accuracy,)
    assert 0.0 < rep.mi_lower_bound_bits <= 1.0 and rep.compression > 1.5


def test_noise_dimensions_are_pruned_and_signal_dimensions_kept(three_varieties):
    probe = three_varieties["fitter"]._round1
    log_alpha = probe.log_alpha.detach()
    assert (log_alpha[:4] <= 3.0).all()  # every informative dim kept
    assert (log_alpha[4:] > 3.0).float().mean() >= 0.8  # the MDL prior switches most noise dims off
    assert three_varieties["report"].kept_dims == int((log_alpha <= 3.0).sum())
    # pruned dims are zeroed in the direction
    assert (three_varieties["sub"].basis[log_alpha > 3.0, 0] == 0).all()


def test_per_variety_code_lengths_add_up_and_rank_the_dialects(three_varieties):
    rep = three_varieties["report"]
    per = rep.per_variety
    assert set(per) == {"msa", "far", "near"}
    assert sum(v["n"] for v in per.values()) == rep.n_train
    assert sum(v["n_heldout"] for v in per.values()) == rep.n_heldout
    assert sum(v["code_length_bits"] for v in per.values()) == pytest.approx(rep.code_length_bits, rel=1e-9)
    assert per["far"]["accuracy"] > per["near"]["accuracy"] + 0.1
    assert per["far"]["compression"] > per["near"]["compression"]
    json.dumps(rep.to_dict(), allow_nan=False)


def test_code_length_falls_and_compression_rises_with_signal():
    reports = []
    for strength in (0.25, 0.75, 2.0):
        h, y, _ = planted(4000, 16, strength, seed=1)
        reports.append(ProbeFitter(16).fit(h, y, varieties_for(y), site="layer.01", step=0)[1])
    codes = [r.code_length_bits for r in reports]
    assert codes[0] > codes[1] > codes[2]
    assert reports[0].compression < reports[1].compression < reports[2].compression
    assert reports[0].mi_lower_bound_bits < reports[1].mi_lower_bound_bits < reports[2].mi_lower_bound_bits
    assert reports[0].compression < 1.1 < reports[2].compression  # barely compressible vs clearly compressible


def test_subspace_lives_in_raw_coordinates():
    # scale the coordinates very differently: the Bayes direction becomes D^-1 u, which the probe must report
    h, y, u = planted(8000, 8, 1.5, informative=4, seed=2)
    scale = torch.logspace(-1, 1, 8)
    sub, _ = ProbeFitter(8).fit(h * scale, y, varieties_for(y), site="layer.01", step=0)
    assert principal_angles_deg(sub, u / scale)[0] < 5.0
    assert principal_angles_deg(sub, u)[0] > 20.0  # neither u itself...
    assert principal_angles_deg(sub, u * scale)[0] > 45.0  # ...nor the (wrong) mapping w_s * s


def test_rank_k_rounds_find_the_planted_span_with_an_orthonormal_basis():
    # three informative axes with different noise levels: each INLP round still finds signal in the complement
    g = torch.Generator().manual_seed(4)
    d, n = 16, 8000
    y = torch.rand(n, generator=g) < 0.5
    sd = torch.ones(d)
    sd[:3] = torch.tensor([0.5, 1.0, 2.0])
    h = torch.randn(n, d, generator=g) * sd
    h[:, :3] += 1.5 * (2 * y.float() - 1)[:, None]
    sub, rep = ProbeFitter(d, ProbeConfig(rank=3)).fit(h, y, varieties_for(y), site="layer.01", step=0)
    assert rep.rounds == 3 and sub.rank == 3 and len(rep.round_accuracy) == 3
    assert torch.allclose(sub.basis.T @ sub.basis, torch.eye(3), atol=1e-5)
    assert principal_angles_deg(sub, torch.eye(d)[:, :3]).max() < 5.0
    assert min(rep.round_accuracy) > 0.6 and not rep.stopped_at_chance


def test_rounds_stop_at_chance_after_the_signal_is_removed():
    h, y, _ = planted(8000, 16, 1.5, seed=5)  # one planted direction
    sub, rep = ProbeFitter(16, ProbeConfig(rank=3, chance_margin=0.05)).fit(
        h, y, varieties_for(y), site="layer.01", step=0)
    assert rep.rounds == 1 and sub.rank == 1 and rep.stopped_at_chance and len(rep.round_accuracy) == 1


def test_pure_noise_labels_stop_after_the_first_round():
    h, _, _ = planted(6000, 16, 0.0, seed=6)
    y = torch.rand(6000, generator=torch.Generator().manual_seed(7)) < 0.5
    sub, rep = ProbeFitter(16, ProbeConfig(rank=3)).fit(h, y, varieties_for(y), site="layer.01", step=0)
    assert rep.rounds == 1 and sub.rank == 1 and rep.stopped_at_chance  # the first round is always kept
    assert abs(rep.accuracy - 0.5) < 0.05 and rep.chance_rate == pytest.approx(0.5, abs=0.01)
    assert rep.compression < 1.02 and rep.mi_lower_bound_bits < 0.01  # nothing to compress
    assert rep.kept_dims <= 8  # and the prior switches most dims off


def test_fit_is_deterministic_and_leaves_global_rng_alone(three_varieties):
    t = three_varieties
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    sub, _ = ProbeFitter(32).fit(t["h"], t["is_hr"], t["var"], site="layer.02", step=500)
    assert torch.equal(torch_state, torch.get_rng_state())
    assert np.array_equal(np_state[1], np.random.get_state()[1])
    assert torch.equal(sub.basis, t["sub"].basis)  # same seed, step and inputs: same subspace


def test_warm_start_refit_resumes_and_never_mutates_an_old_subspace():
    h1, y1, u = planted(4000, 32, 2.0, seed=8)
    h2 = h1 + 0.1 * torch.randn(4000, 32, generator=torch.Generator().manual_seed(9))
    fitter = ProbeFitter(32)
    sub1, rep1 = fitter.fit(h1, y1, varieties_for(y1), site="layer.01", step=0)
    kept = sub1.basis.clone()
    state = fitter.state_dict()
    sub2, rep2 = fitter.fit(h2, y1, varieties_for(y1), site="layer.01", step=100)
    assert not rep1.warm_start and rep2.warm_start
    assert torch.equal(sub1.basis, kept) and sub1.step == 0  # the old subspace is untouched
    assert principal_angles_deg(sub2, u)[0] < 5.0
    # a resumed fitter (state saved between the fits) reproduces the refit exactly
    resumed = ProbeFitter(32)
    resumed.load_state_dict(state)
    sub3, _ = resumed.fit(h2, y1, varieties_for(y1), site="layer.01", step=100)
    assert torch.equal(sub3.basis, sub2.basis)
    with pytest.raises(ValueError, match="warm-start state"):
        ProbeFitter(16).load_state_dict(state)


def test_fit_works_under_no_grad_and_inference_mode_and_leaves_h_alone():
    h, y, _ = planted(600, 8, 2.0, seed=11)
    h.requires_grad_(True)
    before = h.detach().clone()
    with torch.no_grad():
        sub, rep = ProbeFitter(8, ProbeConfig(steps=60)).fit(h, y, varieties_for(y), site="layer.01", step=0)
    assert rep.accuracy > 0.8 and not sub.basis.requires_grad
    with torch.inference_mode():
        sub2, _ = ProbeFitter(8, ProbeConfig(steps=60)).fit(h.detach() * 1, y, varieties_for(y), site="layer.01", step=0)
    assert principal_angles_deg(sub, sub2)[0] < 1e-3
    assert h.grad is None and torch.equal(h.detach(), before)


def test_fit_rejects_bad_buffers_with_actionable_messages():
    fitter = ProbeFitter(8)
    h = torch.randn(100, 8)
    y = torch.arange(100) % 2 == 0
    with pytest.raises(ValueError, match=r"shape \(N, 8\)"):
        fitter.fit(torch.randn(100, 9), y, varieties_for(y), site="layer.01", step=0)
    with pytest.raises(ValueError, match="one label and one variety"):
        fitter.fit(h, y[:50], varieties_for(y), site="layer.01", step=0)
    with pytest.raises(ValueError, match="HR token"):
        fitter.fit(h, torch.zeros(100, dtype=torch.bool), ["arz"] * 100, site="layer.01", step=0)
    with pytest.raises(ValueError, match="rank"):
        ProbeFitter(8, ProbeConfig(rank=0))


# -------------------------------------------------------------------------------------------------- online code


def test_online_code_falls_with_signal_and_is_uniform_on_noise():
    codes = []
    for strength in (0.0, 0.5, 1.5):
        h, y, _ = planted(2000, 8, strength, seed=10)
        codes.append(online_code_length(h, y.long(), seed=0))
    assert codes[0].code_length_bits > codes[1].code_length_bits > codes[2].code_length_bits
    assert 0.9 < codes[0].compression < 1.02 < codes[2].compression
    assert codes[2].block_ends[-1] == 2000 and sum(codes[2].block_bits) == pytest.approx(codes[2].code_length_bits)
    assert codes[0].uniform_bits == pytest.approx(2000.0)
