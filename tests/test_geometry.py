"""The mathematics of explorer.geometry: CKA, principal angles, energy share, distances, layouts, the per-layer table."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from scipy.linalg import subspace_angles
from scipy.stats import ortho_group

from explorer.analysis.geometry import (
    UmapParams,
    _cka_feature,
    _cka_gram,
    centroid_cosine,
    centroid_l2,
    geometry_table,
    linear_cka,
    mean_energy_share,
    paired_cosine,
    pca_2d,
    umap_2d,
)
from explorer.method.subspace import energy_share, principal_angles_deg


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Independent reference: CKA through HSIC with the centring matrix H (Kornblith et al. 2019, eq. 3-4)."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k = x @ x.T
    lg = y @ y.T
    khkh = np.trace(k @ h @ k @ h)
    lhlh = np.trace(lg @ h @ lg @ h)
    return float(np.trace(k @ h @ lg @ h) / math.sqrt(khkh * lhlh))


# ---------------------------------------------------------------------------------------------------------------
# CKA

# (n, d1, d2): the first two take the feature-space path, the last two the Gram path
CKA_SHAPES = [(200, 8, 5), (120, 16, 16), (10, 40, 30), (6, 64, 3)]


@pytest.mark.parametrize("shape", CKA_SHAPES)
def test_cka_with_itself_is_one(rng, shape):
    n, d1, _ = shape
    x = rng.normal(size=(n, d1))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("shape", CKA_SHAPES)
def test_cka_equals_hsic_formula(rng, shape):
    n, d1, d2 = shape
    x = rng.normal(size=(n, d1)) + 3.0  # off-centre on purpose: centring is part of the definition
    y = x[:, :1] * rng.normal(size=(1, d2)) + rng.normal(size=(n, d2))  # related to x, not trivially
    assert linear_cka(x, y) == pytest.approx(hsic_cka(x, y), rel=1e-10)
    assert linear_cka(y, x) == pytest.approx(linear_cka(x, y), rel=1e-12)  # symmetric


def test_cka_feature_and_gram_forms_agree(rng):
    for n, d1, d2 in [(50, 7, 9), (9, 30, 12)]:
        x = rng.normal(size=(n, d1))
        y = rng.normal(size=(n, d2)) + x[:, :1]
        xc, yc = x - x.mean(0), y - y.mean(0)
        assert _cka_feature(xc, yc) == pytest.approx(_cka_gram(xc, yc), rel=1e-12)


@pytest.mark.parametrize("shape", CKA_SHAPES)
def test_cka_invariant_to_orthogonal_maps_scaling_and_translation(rng, shape):
    n, d1, d2 = shape
    x = rng.normal(size=(n, d1))
    y = np.tanh(x @ rng.normal(size=(d1, d2))) + 0.5 * rng.normal(size=(n, d2))
    ref = linear_cka(x, y)
    qx = ortho_group.rvs(d1, random_state=1)
    qy = ortho_group.rvs(d2, random_state=2) if d2 > 1 else np.array([[-1.0]])
    assert linear_cka(x @ qx, y) == pytest.approx(ref, rel=1e-10)
    assert linear_cka(x, y @ qy) == pytest.approx(ref, rel=1e-10)
    assert linear_cka(7.5 * x, 0.01 * y) == pytest.approx(ref, rel=1e-10)
    assert linear_cka(x + 100.0, y - 3.0) == pytest.approx(ref, rel=1e-8)


def test_cka_not_invariant_to_anisotropic_scaling(rng):
    # guards against a test suite that would pass for any constant: CKA must see non-orthogonal maps
    x = rng.normal(size=(300, 6))
    y = x + 0.3 * rng.normal(size=(300, 6))
    stretched = x * np.array([20.0, 1, 1, 1, 1, 1])
    assert abs(linear_cka(stretched, y) - linear_cka(x, y)) > 0.1


def test_cka_of_independent_matrices_is_small(rng):
    x = rng.normal(size=(4000, 10))
    y = rng.normal(size=(4000, 12))
    assert linear_cka(x, y) < 0.02  # E ≈ sqrt(d1 d2) / n


def test_cka_errors_and_degenerate_cases(rng):
    with pytest.raises(ValueError, match="paired rows"):
        linear_cka(rng.normal(size=(5, 3)), rng.normal(size=(6, 3)))
    with pytest.raises(ValueError, match="2-D"):
        linear_cka(np.ones(5), np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        linear_cka(np.full((4, 2), np.nan), np.ones((4, 2)))
    assert math.isnan(linear_cka(np.ones((8, 3)), rng.normal(size=(8, 3))))  # constant: undefined


# ---------------------------------------------------------------------------------------------------------------
# Principal angles


@pytest.mark.parametrize("d,ka,kb", [(20, 3, 3), (20, 2, 5), (50, 5, 1), (8, 4, 4), (64, 10, 7)])
def test_principal_angles_agree_with_scipy(rng, d, ka, kb):
    a = rng.normal(size=(d, ka))
    b = rng.normal(size=(d, kb)) + 0.5 * np.pad(a, ((0, 0), (0, max(0, kb - ka))))[:, :kb]
    ours = principal_angles_deg(a, b)
    theirs = np.degrees(subspace_angles(a, b))[::-1]  # scipy: descending radians
    assert ours.shape == (min(ka, kb),)
    assert np.all(np.diff(ours) >= 0)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_principal_angles_of_subspace_with_itself_and_basis_change(rng):
    a = rng.normal(size=(30, 4))
    np.testing.assert_allclose(principal_angles_deg(a, a), 0.0, atol=1e-5)
    # a different basis of the same subspace
    np.testing.assert_allclose(principal_angles_deg(a, a @ rng.normal(size=(4, 4))), 0.0, atol=1e-5)


def test_principal_angles_orthogonal_and_known_angle():
    eye = np.eye(6)
    np.testing.assert_allclose(principal_angles_deg(eye[:, :2], eye[:, 2:5]), [90.0, 90.0], atol=1e-12)
    t = math.radians(30.0)
    line = math.cos(t) * eye[:, 0] + math.sin(t) * eye[:, 1]
    np.testing.assert_allclose(principal_angles_deg(eye[:, 0], line), [30.0], atol=1e-10)
    # span(e0, e2) against span(e0, e1): one shared direction, one at 90°
    np.testing.assert_allclose(principal_angles_deg(eye[:, [0, 2]], eye[:, :2]), [0.0, 90.0], atol=1e-6)


def test_principal_angles_reject_bad_bases(rng):
    a = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="linearly dependent"):
        principal_angles_deg(np.column_stack([a, a[:, 0]]), a)
    with pytest.raises(ValueError, match="different spaces"):
        principal_angles_deg(a, rng.normal(size=(11, 2)))


# ---------------------------------------------------------------------------------------------------------------
# Energy share


def test_energy_share_inside_orthogonal_and_random(rng):
    d, k = 16, 3
    u = np.linalg.qr(rng.normal(size=(d, k)))[0]  # (d, k) orthonormal
    inside = rng.normal(size=(5, k)) @ u.T
    np.testing.assert_allclose(energy_share(inside, u), 1.0, atol=1e-12)
    outside = rng.normal(size=(5, d))
    outside -= outside @ u @ u.T
    np.testing.assert_allclose(energy_share(outside, u), 0.0, atol=1e-12)

    h = rng.normal(size=(40, d))
    direct = np.array([np.linalg.norm(u @ u.T @ v) / np.linalg.norm(v) for v in h])
    np.testing.assert_allclose(energy_share(h, u), direct, rtol=1e-12)
    assert mean_energy_share(h, u) == pytest.approx(direct.mean(), rel=1e-12)
    assert energy_share(h[0], u).shape == ()  # a single vector works too


def test_energy_share_rejects_non_orthonormal_basis(rng):
    with pytest.raises(ValueError, match="orthonormal"):
        energy_share(rng.normal(size=(3, 8)), 2.0 * np.eye(8)[:, :2])
    with pytest.raises(ValueError, match="features"):
        energy_share(rng.normal(size=(3, 7)), np.eye(8)[:, :2])


# ---------------------------------------------------------------------------------------------------------------
# Centroid and paired distances


def test_centroid_distances_by_hand():
    a = np.array([[1.0, 0.0], [1.0, 2.0]])  # centroid (1, 1)
    b = np.array([[2.0, 0.0], [0.0, 0.0], [1.0, 0.0]])  # centroid (1, 0); sizes may differ
    assert centroid_cosine(a, b) == pytest.approx(1 / math.sqrt(2))
    assert centroid_l2(a, b) == pytest.approx(1.0)
    assert centroid_cosine(a, -a) == pytest.approx(-1.0)
    assert centroid_l2(a, a) == 0.0
    with pytest.raises(ValueError, match="same site"):
        centroid_cosine(a, np.ones((2, 3)))


def test_paired_cosine_by_hand():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]])
    b = np.array([[5.0, 0.0], [1.0, 1.0], [-3.0, -4.0]])
    assert paired_cosine(a, b) == pytest.approx((1.0 + 1 / math.sqrt(2) - 1.0) / 3)
    # pairing matters: the same rows shuffled give a different value, unlike the centroid cosine
    assert paired_cosine(a, b[[2, 0, 1]]) != pytest.approx(paired_cosine(a, b))
    with pytest.raises(ValueError, match="same shape"):
        paired_cosine(a, b[:2])


# ---------------------------------------------------------------------------------------------------------------
# Layouts


def test_pca_2d_shape_determinism_and_variance(rng):
    x = rng.normal(size=(60, 9)) * np.arange(1, 10)  # distinct variances: components well defined
    p = pca_2d(x)
    assert p.shape == (60, 2) and p.dtype == np.float32
    np.testing.assert_array_equal(p, pca_2d(x))
    perm = rng.permutation(60)
    np.testing.assert_allclose(pca_2d(x[perm]), p[perm], rtol=1e-5, atol=1e-5)  # sign does not hinge on order
    top = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False)))[::-1][:2]
    np.testing.assert_allclose(p.astype(np.float64).var(axis=0, ddof=1), top, rtol=1e-5)
    assert abs(np.corrcoef(p.T)[0, 1]) < 1e-5  # uncorrelated scores


def test_pca_2d_tiny_inputs():
    assert pca_2d(np.ones((1, 5))).tolist() == [[0.0, 0.0]]
    two = pca_2d(np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]))
    np.testing.assert_allclose(np.abs(two), [[1.0, 0.0], [1.0, 0.0]])


def test_umap_params():
    p = UmapParams()
    assert p.to_dict() == {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "random_state": 0}
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.n_neighbors = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match="n_neighbors"):
        UmapParams(n_neighbors=1)


def test_umap_2d_deterministic_and_separates_clusters(rng):
    # two clusters pointing in different directions (the metric is cosine), 100 points each
    d = 32
    centres = np.zeros((2, d))
    centres[0, 0] = centres[1, 1] = 10.0
    labels = np.repeat([0, 1], 100)
    x = centres[labels] + rng.normal(size=(200, d))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no warning leaks to the user (e.g. about n_jobs)
        first = umap_2d(x, UmapParams(random_state=7))
    second = umap_2d(x, UmapParams(random_state=7))
    assert first.shape == (200, 2) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    # nearest-centroid in the layout recovers the clusters
    means = np.stack([first[labels == c].mean(0) for c in (0, 1)])
    pred = np.linalg.norm(first[:, None, :] - means[None], axis=-1).argmin(1)
    assert (pred == labels).mean() == 1.0


def test_umap_2d_small_n(rng):
    x3 = rng.normal(size=(3, 8))
    np.testing.assert_array_equal(umap_2d(x3), pca_2d(x3))  # too few points for a neighbour graph
    x6 = rng.normal(size=(6, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # n_neighbors lowered by us, so umap does not warn
        out = umap_2d(x6)  # n_neighbors=15 > n
    assert out.shape == (6, 2) and np.isfinite(out).all()


# ---------------------------------------------------------------------------------------------------------------
# Per-layer table


def test_geometry_table_by_hand(rng):
    n, d = 12, 4
    msa = rng.normal(size=(n, d)) + np.array([1.0, 0.0, 0.0, 0.0])
    shift = np.array([0.0, 3.0, 0.0, 4.0])
    reps = {"arz": msa.copy(), "arb": msa, "apc": msa + shift}  # HR need not come first
    basis = np.eye(d)[:, :1]  # the first axis

    rows = geometry_table(reps, hr="arb", basis=basis)
    keys = {"variety", "centroid_cosine", "centroid_l2", "paired_cosine", "cka", "energy_share_mean"}
    assert [r["variety"] for r in rows] == ["arb", "arz", "apc"]
    assert all(set(r) == keys for r in rows)

    hr_row, same, shifted = rows
    assert (
        hr_row["centroid_cosine"] is hr_row["centroid_l2"] is hr_row["paired_cosine"] is hr_row["cka"] is None
    )
    assert hr_row["energy_share_mean"] == pytest.approx(
        np.mean(np.abs(msa[:, 0]) / np.linalg.norm(msa, axis=1))
    )

    assert same["centroid_cosine"] == pytest.approx(1.0)
    assert same["centroid_l2"] == pytest.approx(0.0)
    assert same["paired_cosine"] == pytest.approx(1.0)
    assert same["cka"] == pytest.approx(1.0)
    assert same["energy_share_mean"] == pytest.approx(hr_row["energy_share_mean"])

    assert shifted["centroid_l2"] == pytest.approx(5.0)  # |(0, 3, 0, 4)|
    assert shifted["cka"] == pytest.approx(1.0)  # a translation: CKA centres it away
    assert shifted["centroid_cosine"] == pytest.approx(centroid_cosine(msa + shift, msa))
    assert shifted["paired_cosine"] == pytest.approx(paired_cosine(msa + shift, msa))
    assert shifted["paired_cosine"] < 1.0
    assert all(isinstance(v, float) for r in rows[1:] for k, v in r.items() if k != "variety")

    plain = geometry_table(reps, hr="arb")
    assert [r["variety"] for r in plain] == ["arz", "apc"]
    assert all(r["energy_share_mean"] is None for r in plain)


def test_geometry_table_errors(rng):
    x = rng.normal(size=(5, 3))
    with pytest.raises(ValueError, match="'arb' is not among"):
        geometry_table({"arz": x})
    with pytest.raises(ValueError, match="parallel rows"):
        geometry_table({"arb": x, "arz": x[:4]})
