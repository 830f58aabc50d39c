"""Representation geometry: how close each dialect sits to the standard variety, and how subspaces move.

Everything here is numpy on plain arrays (docs/design.md §2.8): pooled sentence vectors of shape (n, d) with paired
rows where a function says so, subspace bases of shape (d, k). Distances and CKA are computed in float64; the 2-D
layouts (PCA, UMAP) are returned as float32 plot coordinates.

Undefined quantities (the cosine of a zero vector, the CKA of a constant matrix) come back as NaN rather than as an
error, so that one degenerate variety does not blank a whole table; malformed inputs (wrong shapes, non-finite
values) raise ValueError naming the argument.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..method.subspace import energy_share, principal_angles_deg

__all__ = [
    "UmapParams",
    "centroid_cosine",
    "centroid_l2",
    "energy_share",
    "geometry_table",
    "linear_cka",
    "mean_energy_share",
    "paired_cosine",
    "pca_2d",
    "principal_angles_deg",
    "umap_2d",
]


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    """`x` as a finite float64 (n, d) array, or a ValueError that says which argument is wrong."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (rows = items, columns = features); got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(
            f"{name} contains NaN or infinite values; check the representations that produced it"
        )
    return arr


def _cosine(u: np.ndarray, v: np.ndarray) -> float:
    """Cosine of two vectors; NaN when either has zero norm (the angle is undefined)."""
    denom = float(np.linalg.norm(u) * np.linalg.norm(v))
    if denom == 0.0:
        return float("nan")
    return float(np.clip(u @ v / denom, -1.0, 1.0))


def _same_width(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{names[0]} has {a.shape[1]} features per row but {names[1]} has {b.shape[1]}; "
            "both must come from the same site (same hidden size)"
        )


# ---------------------------------------------------------------------------------------------------------------
# CKA


def _cka_feature(xc: np.ndarray, yc: np.ndarray) -> float:
    """Feature-space form on centred X, Y: ||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F)."""
    num = np.linalg.norm(yc.T @ xc) ** 2  # (d2, d1)
    den = np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    return float(num / den) if den > 0 else float("nan")


def _cka_gram(xc: np.ndarray, yc: np.ndarray) -> float:
    """Gram form: with K = XXᵀ, L = YYᵀ (n, n), ||YᵀX||²_F = <K, L>_F and ||XᵀX||_F = ||K||_F."""
    k = xc @ xc.T  # (n, n)
    lg = yc @ yc.T  # (n, n)
    num = np.vdot(k, lg)
    den = np.linalg.norm(k) * np.linalg.norm(lg)
    return float(num / den) if den > 0 else float("nan")


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centred kernel alignment between two representations of the same n items.

    Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited" (ICML), eq. for linear CKA:
    with X (n × d1) and Y (n × d2) column-centred and row i of both describing the same item,

        CKA(X, Y) = ||YᵀX||²_F / (||XᵀX||_F · ||YᵀY||_F)   ∈ [0, 1].

    It is invariant to orthogonal transforms and isotropic scaling of either side, not to arbitrary invertible
    linear maps. The identical Gram form <XXᵀ, YYᵀ>_F / (||XXᵀ||_F ||YYᵀ||_F) costs O(n²(d1+d2)) instead of
    O(n(d1² + d1·d2 + d2²)); the cheaper of the two is used (Gram when there are few items, wide vectors). Computed
    in float64. Returns NaN when either side is constant across rows (zero after centring; includes n = 1).
    """
    xm = _as_matrix(x, "x")
    ym = _as_matrix(y, "y")
    if xm.shape[0] != ym.shape[0]:
        raise ValueError(
            f"linear_cka needs paired rows: x has {xm.shape[0]} rows, y has {ym.shape[0]}; "
            "pass the same items (sentences) in the same order for both"
        )
    n, d1 = xm.shape
    d2 = ym.shape[1]
    xc = xm - xm.mean(axis=0)
    yc = ym - ym.mean(axis=0)
    if n * (d1 + d2) < d1 * d1 + d1 * d2 + d2 * d2:
        return _cka_gram(xc, yc)
    return _cka_feature(xc, yc)


# ---------------------------------------------------------------------------------------------------------------
# Distances between sets of sentence vectors


def centroid_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine between the centroids (row means) of two sets of vectors, a (n_a, d) and b (n_b, d).

    docs/design.md §2.8 "centroid cosine of each dialect to MSA". NaN when a centroid is the zero vector.
    """
    am = _as_matrix(a, "a")
    bm = _as_matrix(b, "b")
    _same_width(am, bm, ("a", "b"))
    return _cosine(am.mean(axis=0), bm.mean(axis=0))


def centroid_l2(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between the centroids (row means) of a (n_a, d) and b (n_b, d). docs/design.md §2.8."""
    am = _as_matrix(a, "a")
    bm = _as_matrix(b, "b")
    _same_width(am, bm, ("a", "b"))
    return float(np.linalg.norm(am.mean(axis=0) - bm.mean(axis=0)))


def paired_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over i of cos(a_i, b_i) for paired rows (row i of both = the same sentence in two varieties).

    docs/design.md §2.8 "paired cosine". NaN if any row has zero norm.
    """
    am = _as_matrix(a, "a")
    bm = _as_matrix(b, "b")
    if am.shape != bm.shape:
        raise ValueError(
            f"paired_cosine needs a and b of the same shape (row i of each = the same sentence); "
            f"got {am.shape} and {bm.shape}"
        )
    if am.shape[0] == 0:
        raise ValueError("paired_cosine needs at least one row")
    norms = np.linalg.norm(am, axis=1) * np.linalg.norm(bm, axis=1)  # (n,)
    dots = np.einsum("nd,nd->n", am, bm)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.nan)
    return float(np.mean(np.clip(cos, -1.0, 1.0)))


# ---------------------------------------------------------------------------------------------------------------
# Subspaces


def mean_energy_share(h: np.ndarray, basis: np.ndarray) -> float:
    """Mean of ``energy_share`` (||Uᵀh||/||h||, ``method.subspace``) over the rows of h (n, d): one number per variety
    for tables and heatmaps."""
    return float(np.mean(energy_share(h, basis)))


# ---------------------------------------------------------------------------------------------------------------
# 2-D layouts


def pca_2d(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """First two principal-component scores of x (n, d) as float32 (n, 2) plot coordinates.

    Plain PCA: SVD of the column-centred data, scores = X_c V[:, :2]. Signs are fixed so the loading entry of
    largest magnitude in each component is positive (as sklearn's `svd_flip` on V), so the plot does not mirror
    between runs. `seed` is accepted only so PCA and `umap_2d` can be swapped behind one call; the SVD is exact and
    deterministic, so it has no effect. Components that do not exist (n < 3 or d < 2) are zero columns.
    """
    del seed  # deterministic; kept for a call signature shared with umap_2d
    xm = _as_matrix(x, "x")
    n = xm.shape[0]
    out = np.zeros((n, 2), dtype=np.float64)
    if n == 0:
        return out.astype(np.float32)
    xc = xm - xm.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)  # vt (r, d), s descending
    r = min(2, vt.shape[0])
    vt = vt[:r]
    signs = np.sign(vt[np.arange(r), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    out[:, :r] = xc @ (vt * signs[:, None]).T
    # directions with (numerically) zero variance are arbitrary: report them as zeros, not noise
    tol = max(xm.shape) * np.finfo(np.float64).eps * (s[0] if s.size else 0.0)
    out[:, :r][:, s[:r] <= tol] = 0.0
    return out.astype(np.float32)


@dataclass(frozen=True)
class UmapParams:
    """UMAP settings for the embedding plots (McInnes, Healy & Melville 2018; umap-learn's defaults except metric).

    Cosine suits pooled hidden states, whose norms vary with sentence length and layer more than their direction.
    A fixed `random_state` makes the layout reproducible; umap-learn then runs single-threaded.
    """

    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.n_neighbors < 2:
            raise ValueError(f"UmapParams.n_neighbors must be >= 2; got {self.n_neighbors}")
        if not 0.0 <= self.min_dist <= 1.0:
            raise ValueError(
                f"UmapParams.min_dist must be in [0, 1] (umap's spread is 1); got {self.min_dist}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _exact_knn(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact k nearest neighbours (self included, first) under `metric`, or None for a metric not handled here.

    umap-learn computes the neighbours of a small data set (n < 4096) with sklearn's `pairwise_distances` calling
    umap's numba distance once per pair from Python: about 2 million calls, two thirds of a 2,000-point fit. One
    matrix product does the same work in milliseconds. Distances follow umap's definitions: cosine = 1 − cos
    (0 against a zero vector only when both are zero, else 1), euclidean = ‖a − b‖.
    """
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1)
        safe = np.where(norms > 0, norms, 1.0)
        xn = x / safe[:, None]
        dist = 1.0 - xn @ xn.T  # (n, n)
        zero = norms == 0
        if zero.any():
            dist[zero, :] = 1.0
            dist[:, zero] = 1.0
            dist[np.ix_(zero, zero)] = 0.0
    elif metric == "euclidean":
        sq = np.einsum("nd,nd->n", x, x)
        dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0))
    else:
        return None
    dist = np.maximum(dist, 0.0)
    np.fill_diagonal(dist, 0.0)
    idx = np.argpartition(dist, k - 1, axis=1)[:, :k]  # (n, k), unordered
    d_k = np.take_along_axis(dist, idx, axis=1)
    order = np.lexsort((idx, d_k), axis=1)  # by distance, ties by index: deterministic
    # the point itself comes first (distance 0), as in umap's own search
    idx = np.take_along_axis(idx, order, axis=1)
    d_k = np.take_along_axis(d_k, order, axis=1)
    return idx.astype(np.int64), d_k.astype(np.float32)


def umap_2d(x: np.ndarray, params: UmapParams = UmapParams()) -> np.ndarray:
    """UMAP layout of x (n, d) as float32 (n, 2), reproducible for a fixed `params.random_state`.

    Calls `umap.UMAP(n_components=2, **params.to_dict(), n_jobs=1)`: a seeded UMAP is single-threaded anyway, and
    asking for that explicitly keeps umap-learn from warning that it overrode n_jobs. For the cosine and euclidean
    metrics on fewer than 4,096 points the exact neighbour graph is computed here with numpy and handed to umap as
    `precomputed_knn` (see `_exact_knn`: the same neighbours umap's brute-force path finds, about 3x faster overall);
    the epochs and the rest of the algorithm are umap's own. Small inputs: when n <= n_neighbors, n_neighbors is
    lowered to n - 1 (what umap would do, with a warning); when n < 4 there is no meaningful neighbour graph and the
    result is `pca_2d(x)` instead. umap is imported here, not at module import, because its first import (numba
    compilation) takes seconds.
    """
    xm = _as_matrix(x, "x")
    n = xm.shape[0]
    if n < 4:
        return pca_2d(xm, seed=params.random_state)

    import umap  # slow first import; keep it off the module import path

    k = min(params.n_neighbors, n - 1)
    x32 = xm.astype(np.float32)
    knn = _exact_knn(xm, k, params.metric) if n < 4096 else None
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=k,
        min_dist=params.min_dist,
        metric=params.metric,
        random_state=params.random_state,
        n_jobs=1,
        precomputed_knn=(None, None, None) if knn is None else knn,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*n_jobs value .* overridden to 1.*")
        warnings.filterwarnings("ignore", message=r".*knn_search_index.*")  # we never call transform()
        emb = reducer.fit_transform(x32)
    return np.asarray(emb, dtype=np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Per-layer table


def geometry_table(
    reps: dict[str, np.ndarray], *, hr: str = "arb", basis: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """One record per variety comparing it with the high-resource variety `hr` at one site (docs/design.md §2.8).

    reps maps variety code → (n, d) sentence vectors with PARALLEL rows: row i is the same sentence in every
    variety. Every record has the keys variety, centroid_cosine, centroid_l2, paired_cosine, cka (each vs hr) and
    energy_share_mean (mean ||Uᵀh||/||h|| for that variety, or None when no basis U (d, k) is given). When a basis is
    given the first record is hr itself, carrying only its energy share (the other fields None); without a basis
    that row would be empty and is left out. The other varieties follow in the order of `reps`. Values are Python
    floats so the records go straight into a DataFrame or JSON.
    """
    if hr not in reps:
        raise ValueError(f"high-resource variety {hr!r} is not among the representations {sorted(reps)}")
    ref = _as_matrix(reps[hr], f"reps[{hr!r}]")
    mats: dict[str, np.ndarray] = {}
    for name, arr in reps.items():
        m = _as_matrix(arr, f"reps[{name!r}]")
        if m.shape != ref.shape:
            raise ValueError(
                f"reps[{name!r}] has shape {m.shape} but reps[{hr!r}] has {ref.shape}; geometry_table needs "
                "parallel rows (the same sentences, in the same order) of the same site for every variety"
            )
        mats[name] = m

    def energy(m: np.ndarray) -> float | None:
        return None if basis is None else mean_energy_share(m, basis)

    records: list[dict[str, Any]] = []
    if basis is not None:
        records.append(
            {
                "variety": hr,
                "centroid_cosine": None,
                "centroid_l2": None,
                "paired_cosine": None,
                "cka": None,
                "energy_share_mean": energy(ref),
            }
        )
    for name, m in mats.items():
        if name == hr:
            continue
        records.append(
            {
                "variety": name,
                "centroid_cosine": centroid_cosine(m, ref),
                "centroid_l2": centroid_l2(m, ref),
                "paired_cosine": paired_cosine(m, ref),
                "cka": linear_cka(m, ref),
                "energy_share_mean": energy(m),
            }
        )
    return records
