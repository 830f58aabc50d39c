"""The frozen result of a probe fit: an orthonormal basis U of the estimated HR subspace at one site.

``Subspace`` is what hooks, plots and caches hold; refitting never changes one someone else holds. Also here,
once for the whole project: random subspaces (the paper's control), principal angles between subspaces, and
the energy share ‖Uᵀh‖/‖h‖ of hidden states inside a subspace (docs/design.md §2.2, §2.8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def _orthonormality_error(basis: Tensor) -> float:
    b = basis.detach().to(torch.float64)
    return float((b.T @ b - torch.eye(b.shape[1], dtype=torch.float64, device=b.device)).abs().max())


@dataclass(frozen=True, eq=False)
class Subspace:
    """Frozen orthonormal basis U (d, k) of the estimated HR subspace at one site.

    The canonical form (what the fitter, ``random_subspace`` and ``from_tensors`` make) is float32 on the CPU;
    ``to()`` makes a copy for another device or dtype so a forward hook does not convert U on every call.
    The basis is cloned on construction, so the caller's tensor can change without touching the subspace.
    """

    basis: Tensor  # (d, k), orthonormal columns
    site: str  # e.g. "layer.02"
    step: int  # optimiser step at which it was estimated
    kind: str = "probe"  # "probe" (fitted in training) | "random" (the control) | "posthoc" (fitted after training)

    def __post_init__(self) -> None:
        b = torch.as_tensor(self.basis)
        if b.ndim != 2 or b.shape[1] < 1 or b.shape[1] > b.shape[0]:
            raise ValueError(f"Subspace basis must have shape (d, k) with 1 <= k <= d; got {tuple(b.shape)}")
        if not b.is_floating_point():
            raise ValueError(f"Subspace basis must be a floating-point tensor; got {b.dtype}")
        if self.kind not in ("probe", "random", "posthoc"):
            raise ValueError(f"Subspace kind must be 'probe', 'random' or 'posthoc'; got {self.kind!r}")
        b = b.detach().clone().contiguous()
        tol = max(1e-4, 20.0 * torch.finfo(b.dtype).eps)
        err = _orthonormality_error(b)
        if err > tol:
            raise ValueError(
                f"Subspace basis for site {self.site!r} is not orthonormal (max |U^T U - I| = {err:.2e} > {tol:.0e});"
                " orthonormalise it first (e.g. torch.linalg.qr)"
            )
        object.__setattr__(self, "basis", b)

    def __repr__(self) -> str:
        return f"Subspace(site={self.site!r}, step={self.step}, kind={self.kind!r}, dim={self.dim}, rank={self.rank})"

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])

    @property
    def dim(self) -> int:
        return int(self.basis.shape[0])

    def _basis_like(self, h: Tensor) -> Tensor:
        if h.shape[-1] != self.dim:
            raise ValueError(f"hidden size {h.shape[-1]} does not match subspace dim {self.dim} at {self.site!r}")
        u = self.basis
        if u.device != h.device or u.dtype != h.dtype:
            u = u.to(device=h.device, dtype=h.dtype)
        return u

    def coords(self, h: Tensor) -> Tensor:
        """(..., d) -> (..., k): coordinates U^T h of the states in the subspace, in h's dtype and device."""
        return h @ self._basis_like(h)

    def project_out(self, h: Tensor, alpha: float = 1.0) -> Tensor:
        """h - alpha * U U^T h (docs/design.md §2.6); differentiable, same shape/dtype/device as h.

        alpha = 1 removes the subspace (an idempotent orthogonal projection), alpha = 0 returns ``h`` itself, so the
        "decoupling off" path is bit-identical to the plain model.
        """
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
        if alpha == 0.0:
            return h
        u = self._basis_like(h)
        removed = (h @ u) @ u.T
        return h - removed if alpha == 1.0 else h - alpha * removed

    def energy_share(self, h: Tensor) -> Tensor:
        """(..., d) -> (...): ||U^T h|| / ||h||, the share of each state's norm inside the subspace (docs/design.md §2.8)."""
        if h.shape[-1] != self.dim:
            raise ValueError(f"hidden size {h.shape[-1]} does not match subspace dim {self.dim} at {self.site!r}")
        return energy_share(h, self)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Subspace:
        """A new Subspace with the basis on ``device`` / in ``dtype`` (self is never changed)."""
        b = self.basis.to(device=device, dtype=dtype)
        return Subspace(basis=b, site=self.site, step=self.step, kind=self.kind)

    def to_tensors(self) -> dict[str, Tensor]:
        """Tensors for safetensors (site, step and kind go into the file's metadata or key by the caller)."""
        return {"basis": self.basis.detach().to("cpu", torch.float32).contiguous()}

    @classmethod
    def from_tensors(cls, d: dict[str, Tensor], *, site: str, step: int, kind: str = "probe") -> Subspace:
        if "basis" not in d:
            raise ValueError(f"subspace tensors for site {site!r} have no 'basis' entry (keys: {sorted(d)})")
        return cls(basis=d["basis"].to("cpu", torch.float32), site=site, step=step, kind=kind)


def seeded_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from several integers (independent streams per key tuple; global RNG untouched)."""
    state = np.random.SeedSequence([int(k) % (2**63) for k in keys]).generate_state(1, dtype=np.uint64)[0]
    g = torch.Generator(device="cpu")
    g.manual_seed(int(state) & ((1 << 63) - 1))
    return g


def qr_basis(m: Tensor) -> Tensor:
    """Orthonormal basis of the columns of m (d, r), column order kept and signs fixed so diag(R) > 0."""
    q, r = torch.linalg.qr(m.to(torch.float64))
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return q * signs


def random_subspace(dim: int, rank: int, *, site: str, step: int = 0, seed: int | tuple[int, ...] = 0) -> Subspace:
    """A uniformly random (Haar) rank-k subspace: QR of a seeded Gaussian (d, k) matrix; the paper's control arm.

    ``seed`` may be several integers (e.g. seed, step and a site hash: one independent draw per site and refit)."""
    if not 1 <= rank <= dim:
        raise ValueError(f"random_subspace needs 1 <= rank <= dim; got rank={rank}, dim={dim}")
    g = seeded_generator(*(seed if isinstance(seed, tuple) else (seed,)), 0x5EED)
    gauss = torch.randn(dim, rank, generator=g, dtype=torch.float64)
    return Subspace(basis=qr_basis(gauss).to(torch.float32), site=site, step=step, kind="random")


def principal_angles_deg(a: Subspace | Tensor | np.ndarray, b: Subspace | Tensor | np.ndarray) -> np.ndarray:
    """Principal angles between span(a) and span(b) in degrees, ascending (min(k_a, k_b) of them).

    The one implementation in the project (refit records, the Subspace page, the geometry tables). ``a`` and ``b``
    are Subspaces or (d, k) matrices (a 1-D vector is a rank-1 subspace) whose columns are orthonormalised first.
    cos(theta_i) = sigma_i(Q_a^T Q_b) for orthonormal bases (Bjorck & Golub 1973); small angles are taken from the
    sines, sigma_i(Q_b - Q_a Q_a^T Q_b), which are accurate where arccos is not (Knyazev & Argentati 2002) -- the
    same scheme as ``scipy.linalg.subspace_angles``, whose radians in descending order these equal, converted and
    reversed.
    """
    qa = _as_orthonormal(a, "a")
    qb = _as_orthonormal(b, "b")
    if qa.shape[0] != qb.shape[0]:
        raise ValueError(f"a and b live in different spaces: {qa.shape[0]} vs {qb.shape[0]} rows")
    if qa.shape[1] < qb.shape[1]:
        qa, qb = qb, qa  # qa has the larger rank; there are k_b angles
    cross = qa.T @ qb
    cos = np.clip(np.linalg.svd(cross, compute_uv=False), 0.0, 1.0)  # descending
    sin = np.clip(np.linalg.svd(qb - qa @ cross, compute_uv=False), 0.0, 1.0)[::-1]  # ascending
    theta = np.where(cos**2 >= 0.5, np.arcsin(sin), np.arccos(cos))  # both in ascending-angle order
    return np.degrees(theta)


def _as_orthonormal(x: Subspace | Tensor | np.ndarray, name: str) -> np.ndarray:
    """An orthonormal (d, k) float64 basis of the columns of ``x``; ValueError for a malformed or rank-deficient
    matrix (the columns must span a k-dimensional subspace)."""
    if isinstance(x, Subspace):
        return x.basis.detach().to("cpu", torch.float64).numpy()
    m = np.asarray(x.detach().to("cpu", torch.float64) if isinstance(x, Tensor) else x, dtype=np.float64)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2 or m.shape[1] == 0 or m.shape[1] > m.shape[0]:
        raise ValueError(f"{name} must have shape (d, k) with 1 <= k <= d columns spanning a subspace; got {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    q, r = np.linalg.qr(m)
    diag = np.abs(np.diag(r))
    d, k = m.shape
    if diag.max() == 0 or diag.min() <= max(d, k) * np.finfo(np.float64).eps * diag.max():
        raise ValueError(f"{name} has linearly dependent columns, so it does not span a {k}-dimensional subspace")
    return q


def energy_share(h: Tensor | np.ndarray, basis: Subspace | Tensor | np.ndarray) -> Tensor | np.ndarray:
    """(..., d) -> (...): ||U^T h|| / ||h||, the share of each state's norm inside span(U) (docs/design.md §2.8).

    The one implementation (``Subspace.energy_share`` and the geometry tables call it); it is the quantity the
    decoupling penalty drives down, normalised. Numpy in, numpy out (float64); a zero vector has share 0. A plain
    ``basis`` must have orthonormal columns (checked)."""
    as_numpy = isinstance(h, np.ndarray) or not isinstance(h, Tensor)
    x = torch.as_tensor(np.asarray(h, dtype=np.float64)) if as_numpy else h
    if isinstance(basis, Subspace):
        u = basis.basis
    else:
        u = torch.as_tensor(np.asarray(basis, dtype=np.float64) if not isinstance(basis, Tensor) else basis)
        if u.ndim == 1:
            u = u[:, None]
        err = _orthonormality_error(u) if u.ndim == 2 else float("inf")
        if err > 1e-4:
            raise ValueError(f"basis must have shape (d, k) with orthonormal columns (U^T U = I); max |U^T U - I| = "
                             f"{err:.2e}. Orthonormalise it first, e.g. torch.linalg.qr")
    if x.shape[-1] != u.shape[0]:
        raise ValueError(f"h has {x.shape[-1]} features but the basis has {u.shape[0]} rows; they must match")
    u = u.to(device=x.device, dtype=x.dtype)
    inside = torch.linalg.vector_norm(x @ u, dim=-1)
    total = torch.linalg.vector_norm(x, dim=-1)
    share = (inside / total.clamp_min(torch.finfo(x.dtype).tiny ** 0.5)).clamp(0.0, 1.0)
    return share.numpy() if as_numpy else share
