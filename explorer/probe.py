"""Variational (MDL) probe for the high-resource variety and the frozen subspace it yields (DESIGN.md §2.1-2.2).

The probe is a linear classifier HR-vs-rest with a group Normal-Jeffreys (log-uniform) prior over input dimensions
(Louizos et al. 2017, "Bayesian Compression for Deep Learning"), used as a *variational code* in the sense of
Voita & Titov 2020, "Information-Theoretic Probing with Minimum Description Length": the training loss
KL(q||p) + sum_i -ln p(y_i|h_i) is a code length for the labels given the states. The KL of the scale variables uses
the approximation of Molchanov et al. 2017 ("Variational Dropout Sparsifies Deep Neural Networks"). Its posterior-mean
weights, pruned dimensions masked, give the direction(s) of the HR subspace; rank > 1 repeats the probe in the
orthogonal complement of the directions found so far (INLP, Ravfogel et al. 2020, "Null It Out").

``ProbeFitter`` is mutable (it keeps its round-1 probe for a warm start at the next refit); what it hands out, a
``Subspace``, is frozen, so a refit never changes a subspace a hook or a plot already holds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Molchanov et al. 2017, eq. 14: -KL(q(z)||p(z)) ~= k1*sigmoid(k2 + k3*log_alpha) - 0.5*log1p(1/alpha) - k1.
K1, K2, K3 = 0.63576, 1.87320, 1.48695
LN2 = math.log(2.0)
_EPS = 1e-8


# ----------------------------------------------------------------------------------------------------------------
# Subspace: the frozen result
# ----------------------------------------------------------------------------------------------------------------


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
    kind: str = "probe"  # "probe" | "random"

    def __post_init__(self) -> None:
        b = torch.as_tensor(self.basis)
        if b.ndim != 2 or b.shape[1] < 1 or b.shape[1] > b.shape[0]:
            raise ValueError(f"Subspace basis must have shape (d, k) with 1 <= k <= d; got {tuple(b.shape)}")
        if not b.is_floating_point():
            raise ValueError(f"Subspace basis must be a floating-point tensor; got {b.dtype}")
        if self.kind not in ("probe", "random"):
            raise ValueError(f"Subspace kind must be 'probe' or 'random'; got {self.kind!r}")
        b = b.detach().clone().contiguous()
        tol = max(1e-4, 20.0 * torch.finfo(b.dtype).eps)
        err = _orthonormality_error(b)
        if err > tol:
            raise ValueError(
                f"Subspace basis for site {self.site!r} is not orthonormal (max |U^T U - I| = {err:.2e} > {tol:.0e});"
                " orthonormalise it first (e.g. torch.linalg.qr)"
            )
        object.__setattr__(self, "basis", b)

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
        """h - alpha * U U^T h (DESIGN.md §2.6); differentiable, same shape/dtype/device as h.

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
        """(..., d) -> (...): ||U^T h|| / ||h||, the share of each state's norm inside the subspace (DESIGN.md §2.8)."""
        inside = torch.linalg.vector_norm(self.coords(h), dim=-1)
        total = torch.linalg.vector_norm(h, dim=-1)
        return inside / total.clamp_min(torch.finfo(h.dtype).tiny ** 0.5)

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


def _seeded_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from several integers (independent streams per key tuple; global RNG untouched)."""
    state = np.random.SeedSequence([int(k) % (2**63) for k in keys]).generate_state(1, dtype=np.uint64)[0]
    g = torch.Generator(device="cpu")
    g.manual_seed(int(state) & ((1 << 63) - 1))
    return g


def _qr_basis(m: Tensor) -> Tensor:
    """Orthonormal basis of the columns of m (d, r), column order kept and signs fixed so diag(R) > 0."""
    q, r = torch.linalg.qr(m.to(torch.float64))
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return q * signs


def random_subspace(dim: int, rank: int, *, site: str, step: int = 0, seed: int = 0) -> Subspace:
    """A uniformly random (Haar) rank-k subspace: QR of a seeded Gaussian (d, k) matrix; the paper's control arm."""
    if not 1 <= rank <= dim:
        raise ValueError(f"random_subspace needs 1 <= rank <= dim; got rank={rank}, dim={dim}")
    g = _seeded_generator(seed, 0x5EED)
    gauss = torch.randn(dim, rank, generator=g, dtype=torch.float64)
    return Subspace(basis=_qr_basis(gauss).to(torch.float32), site=site, step=step, kind="random")


def principal_angles_deg(a: Subspace | Tensor, b: Subspace | Tensor) -> np.ndarray:
    """Principal angles between span(a) and span(b) in degrees, ascending (min(k_a, k_b) of them).

    cos(theta_i) = sigma_i(Q_a^T Q_b) for orthonormal bases (Bjorck & Golub 1973); small angles are taken from the
    sines, sigma_i(Q_b - Q_a Q_a^T Q_b), which are accurate where arccos is not (Knyazev & Argentati 2002) -- the
    same scheme as ``scipy.linalg.subspace_angles``. Plain tensors are orthonormalised first.
    """
    qa = _as_orthonormal(a)
    qb = _as_orthonormal(b)
    if qa.shape[0] != qb.shape[0]:
        raise ValueError(f"subspaces live in different spaces: dim {qa.shape[0]} vs {qb.shape[0]}")
    if qa.shape[1] < qb.shape[1]:
        qa, qb = qb, qa  # qa has the larger rank; there are k_b angles
    cross = qa.T @ qb
    cos = np.clip(np.linalg.svd(cross, compute_uv=False), 0.0, 1.0)  # descending
    sin = np.clip(np.linalg.svd(qb - qa @ cross, compute_uv=False), 0.0, 1.0)[::-1]  # ascending
    theta = np.where(cos**2 >= 0.5, np.arcsin(sin), np.arccos(cos))  # both in ascending-angle order
    return np.degrees(theta)


def _as_orthonormal(x: Subspace | Tensor) -> np.ndarray:
    if isinstance(x, Subspace):
        return x.basis.detach().to("cpu", torch.float64).numpy()
    m = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if m.ndim == 1:
        m = m[:, None]
    u, s, _ = torch.linalg.svd(m, full_matrices=False)
    if not bool((s > 0).any()):
        raise ValueError("principal angles need a basis with at least one nonzero column")
    return u[:, s > s.max() * 1e-10].numpy()  # drop numerically dependent columns


# ----------------------------------------------------------------------------------------------------------------
# The variational linear layer
# ----------------------------------------------------------------------------------------------------------------


class VariationalLinear(nn.Module):
    """Linear layer with a group Normal-Jeffreys (log-uniform) prior over input dims, local reparameterisation.

    Louizos et al. 2017, §3 and §5 ("group Normal-Jeffreys"): each input dimension j has a scale
    z_j ~ N(mu_z_j, sigma_z_j^2), and W_cj | z_j ~ N(z_j mu_W_cj, z_j^2 sigma_W_cj^2); the bias is Gaussian.
    In training the pre-activations are sampled by local reparameterisation: one draw per example from the Gaussian
    with their exact mean and covariance under q (see ``forward``). log alpha_j = log sigma_z_j^2 - log mu_z_j^2 is
    the dimension's dropout rate; a dimension is pruned when log alpha_j exceeds the threshold (3 in Louizos et al.
    and Voita & Titov 2020).
    """

    def __init__(self, in_features: int, out_features: int, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.z_mu = nn.Parameter(torch.empty(in_features))
        self.z_logvar = nn.Parameter(torch.empty(in_features))
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_logvar = nn.Parameter(torch.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(torch.empty(out_features))
        self.bias_logvar = nn.Parameter(torch.empty(out_features))
        self.reset_parameters(generator=generator)

    # Initial log-variances: small enough that the first steps see an almost deterministic classifier, large enough
    # that a fixed budget of a few hundred Adam steps can move an unused dimension past the pruning threshold.
    INIT_Z_LOGVAR = -6.0
    INIT_W_LOGVAR = -6.0

    @torch.no_grad()
    def reset_parameters(self, dims: Tensor | None = None, *, generator: torch.Generator | None = None) -> None:
        """(Re)initialise all parameters, or only those of the input dims selected by the bool mask ``dims``."""
        sel = torch.ones(self.in_features, dtype=torch.bool) if dims is None else dims.to(torch.bool).cpu()
        n = int(sel.sum())
        if n == 0:
            return
        dev = self.z_mu.device
        sel = sel.to(dev)
        self.z_mu[sel] = (1.0 + 0.01 * torch.randn(n, generator=generator)).to(dev)
        self.z_logvar[sel] = self.INIT_Z_LOGVAR
        std = 1.0 / math.sqrt(self.in_features)
        self.weight_mu[:, sel] = (std * torch.randn(self.out_features, n, generator=generator)).to(dev)
        self.weight_logvar[:, sel] = self.INIT_W_LOGVAR
        if dims is None:
            self.bias_mu.zero_()
            self.bias_logvar.fill_(self.INIT_W_LOGVAR)

    @property
    def log_alpha(self) -> Tensor:
        """(in_features,) log sigma_z^2 - log mu_z^2 (eps-safe); large = the dimension carries no information."""
        return (self.z_logvar - torch.log(self.z_mu.pow(2) + _EPS)).clamp(-20.0, 20.0)

    def kept_mask(self, threshold: float = 3.0) -> Tensor:
        """(in_features,) bool: dimensions with log alpha <= threshold."""
        return self.log_alpha.detach() <= threshold

    def kl(self) -> Tensor:
        """KL(q || p) in nats (DESIGN.md appendix).

        Scales: sum_j k1 - k1*sigmoid(k2 + k3*log alpha_j) + 0.5*softplus(-log alpha_j) (Molchanov et al. 2017),
        which is positive and decreasing in log alpha. Weights and bias given z: the Gaussian KL
        0.5*(-log sigma^2 + sigma^2 + mu^2 - 1) against N(0, 1) (N(0, z^2) for W, where z cancels; Louizos et al.).
        """
        la = self.log_alpha
        kl_z = (K1 - K1 * torch.sigmoid(K2 + K3 * la) + 0.5 * F.softplus(-la)).sum()
        kl_w = _gauss_kl(self.weight_mu, self.weight_logvar)
        kl_b = _gauss_kl(self.bias_mu, self.bias_logvar)
        return kl_z + kl_w + kl_b

    def posterior_mean_weight(self, threshold: float | None = 3.0) -> Tensor:
        """(out, in) E[W] = mu_W * mu_z, with pruned dims (log alpha > threshold) zeroed; None keeps all dims."""
        w = self.weight_mu * self.z_mu
        if threshold is not None:
            w = w * self.kept_mask(threshold).to(w.dtype)
        return w

    def preactivation_moments(self, x: Tensor, x_sq: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, in) -> mean (B, out) and covariance (B, out, out) of the pre-activations W x + b under q.

        Exact first and second moments with z and W integrated out: mean = x (mu_W mu_z)^T + mu_b and
        cov_cc' = sum_j x_j^2 [sigma_zj^2 mu_Wcj mu_Wc'j + [c=c'] (mu_zj^2 + sigma_zj^2) sigma_Wcj^2] + [c=c'] sigma_bc^2.
        The off-diagonal terms come from the scale z_j that all outputs share. ``x_sq`` = x**2 may be passed in
        when x is reused across steps: the data then only enter through two matmuls, forward and backward.
        """
        b, c = x.shape[0], self.out_features
        s2z = self.z_logvar.exp()
        w_mean = self.weight_mu * self.z_mu  # (C, in)
        outer = (self.weight_mu[:, None, :] * self.weight_mu[None, :, :]).reshape(c * c, -1) * s2z
        diag_w = self.weight_logvar.exp() * (self.z_mu.pow(2) + s2z)
        sq = F.linear(x.pow(2) if x_sq is None else x_sq, torch.cat([outer, diag_w]))  # (B, C*C + C)
        mean = F.linear(x, w_mean, self.bias_mu)
        diag = sq[:, c * c :] + self.bias_logvar.exp()  # > 0 through the bias variance
        return mean, sq[:, : c * c].reshape(b, c, c) + torch.diag_embed(diag)

    def forward(
        self,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        threshold: float = 3.0,
        x_sq: Tensor | None = None,
    ) -> Tensor:
        """(B, in) -> (B, out).

        Training: one sample of the pre-activations per example by local reparameterisation (Kingma et al. 2015;
        Louizos et al. 2017, §3): a Gaussian with the exact moments of ``preactivation_moments``. Louizos et al.
        sample z per example and then W x given z; integrating z out as well costs B*out instead of B*in normal
        draws (the refit runs inside training, and drawing (B, in) normals dominated its time), at the price of a
        Gaussian approximation of a sum over the input dims. ``generator`` None uses torch's global RNG.
        Eval: the posterior-mean classifier with pruned dimensions masked.
        """
        if not self.training:
            return F.linear(x, self.posterior_mean_weight(threshold), self.bias_mu)
        mean, cov = self.preactivation_moments(x, x_sq)
        eps = _randn_like(mean, generator).unsqueeze(-1)  # (B, C, 1)
        return mean + (torch.linalg.cholesky(cov) @ eps).squeeze(-1)

    def sampled_nll(
        self, x: Tensor, y: Tensor, *, generator: torch.Generator | None = None, x_sq: Tensor | None = None
    ) -> Tensor:
        """(B,) -ln p(y | x, theta) for one local-reparameterised sample per example (training-mode forward).

        With two classes the cross-entropy depends only on the logit difference D = l_1 - l_0, whose moments are
        E[D] = x . (mu_z * (mu_W1 - mu_W0)) + mu_b1 - mu_b0 and
        Var[D] = sum_j x_j^2 [sigma_zj^2 (mu_W1j - mu_W0j)^2 + (mu_zj^2 + sigma_zj^2)(sigma_W1j^2 + sigma_W0j^2)]
                 + sigma_b1^2 + sigma_b0^2,
        the same distribution as in ``forward`` in a third of the operations (this is the fitter's inner loop).
        """
        if self.out_features != 2:
            return F.cross_entropy(self(x, generator=generator, x_sq=x_sq), y, reduction="none")
        s2z = self.z_logvar.exp()
        dmu = self.weight_mu[1] - self.weight_mu[0]  # (in,)
        k = s2z * dmu.pow(2) + (self.z_mu.pow(2) + s2z) * self.weight_logvar.exp().sum(0)
        mean = x @ (self.z_mu * dmu) + (self.bias_mu[1] - self.bias_mu[0])
        var = (x.pow(2) if x_sq is None else x_sq) @ k + self.bias_logvar.exp().sum()
        margin = mean + var.sqrt() * _randn_like(mean, generator)
        return F.binary_cross_entropy_with_logits(margin, y.to(margin.dtype), reduction="none")


def _gauss_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    return 0.5 * (-logvar + logvar.exp() + mu.pow(2) - 1.0).sum()


def _randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)


# ----------------------------------------------------------------------------------------------------------------
# Fitter -> Subspace
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeConfig:
    """Settings of one probe fit. Defaults are sized to run inside training every few hundred steps."""

    rank: int = 1  # number of INLP-style rounds / directions
    steps: int = 300  # Adam steps per round (a fixed budget: the refit's cost does not depend on the data)
    lr: float = 1e-2
    # Log-variances must travel ~10 units to reach the pruned regime, means ~1; Adam moves every parameter by ~lr a
    # step whatever its gradient's scale, so within a fixed budget they get a larger step (10x gave the shortest
    # codes on planted problems, i.e. the best value of the objective within 300 steps).
    logvar_lr_scale: float = 10.0
    batch_size: int = 4096  # at most this many per step: each epoch's permutation cut into equal slices
    prune_log_alpha: float = 3.0  # dimension j pruned when log alpha_j > this
    chance_margin: float = 0.02  # stop adding rounds when held-out accuracy <= majority-class rate + margin
    holdout: float = 0.2  # fraction of the buffer held out to measure accuracy (stratified by label)
    seed: int = 0
    balance: bool = True  # subsample so HR and non-HR have equal counts
    code_samples: int = 8  # posterior samples averaged for the expected cross-entropy in the code length

    def validate(self) -> None:
        if self.rank < 1:
            raise ValueError(f"ProbeConfig.rank must be >= 1; got {self.rank}")
        if self.steps < 1 or self.batch_size < 1 or self.code_samples < 1:
            raise ValueError("ProbeConfig.steps, batch_size and code_samples must be >= 1")
        if self.lr <= 0 or self.logvar_lr_scale <= 0:
            raise ValueError("ProbeConfig.lr and logvar_lr_scale must be > 0")
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"ProbeConfig.holdout must be in (0, 1); got {self.holdout}")


@dataclass(frozen=True)
class ProbeReport:
    """Metrics of one fit (round 1 unless said otherwise). Code lengths follow Voita & Titov 2020, §3.

    Per-variety code length = that variety's sum of training cross-entropies / ln 2 + a share of the model's KL
    proportional to the variety's number of training tokens (the model cost is shared by all tokens that use it).
    """

    accuracy: float  # held-out accuracy of the first round (posterior-mean probe, pruned dims masked)
    code_length_bits: float  # (KL + sum CE) / ln 2 on the training part of the first round
    compression: float  # N * log2(C) / code length (uniform code over the variational code)
    mi_lower_bound_bits: float  # max(0, H(Y) - mean CE) in bits on held-out tokens: I(h;Y) >= H(Y) - CE
    n_train: int
    n_heldout: int
    kept_dims: int  # input dims of the round-1 probe not pruned
    rounds: int  # directions in U (<= rank; a round at chance after the first is fitted but not kept)
    round_accuracy: tuple[float, ...]  # held-out accuracy of each kept round
    per_variety: dict[str, dict[str, float]]  # variety -> {"n", "n_heldout", "accuracy", "code_length_bits", ...}
    chance_rate: float = 0.5  # majority-class rate of the held-out labels (round 1)
    stopped_at_chance: bool = False  # a round reached chance (the last fitted round, possibly the first)
    kl_bits: float = 0.0  # the model part of the code length
    warm_start: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes None, tuples become lists."""
        return {
            "accuracy": _json_float(self.accuracy),
            "code_length_bits": _json_float(self.code_length_bits),
            "compression": _json_float(self.compression),
            "mi_lower_bound_bits": _json_float(self.mi_lower_bound_bits),
            "n_train": self.n_train,
            "n_heldout": self.n_heldout,
            "kept_dims": self.kept_dims,
            "rounds": self.rounds,
            "round_accuracy": [_json_float(a) for a in self.round_accuracy],
            "per_variety": {v: {k: _json_float(x) for k, x in m.items()} for v, m in self.per_variety.items()},
            "chance_rate": _json_float(self.chance_rate),
            "stopped_at_chance": self.stopped_at_chance,
            "kl_bits": _json_float(self.kl_bits),
            "warm_start": self.warm_start,
        }


def _json_float(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


@dataclass
class _Split:
    """Indices of one fit's buffer (after balancing) into train and held-out parts, stratified by label."""

    train: Tensor
    heldout: Tensor


@dataclass
class _RoundResult:
    probe: VariationalLinear
    direction: Tensor  # (d,) float64, raw coordinates (HR minus rest logit gradient), not normalised
    accuracy: float
    chance: float
    ce_train: Tensor = field(repr=False)  # (n_train,) expected CE in nats under q
    ce_heldout_mean: Tensor = field(repr=False)  # (n_heldout,) CE in nats of the posterior-mean probe
    correct_heldout: Tensor = field(repr=False)  # (n_heldout,) bool


class ProbeFitter:
    """Mutable fitter -> frozen Subspace. One instance per site and run; keeps its probe between fits (warm start).

    Features are centred and scaled per coordinate (training-part statistics) before optimisation, because the
    N(0, 1) weight prior and the initialisation only make sense on unit-scale inputs. The subspace must live in the
    raw hidden-state coordinates, so the direction is mapped back: a logit w_s . (h - m) / s equals
    (w_s / s) . h + const, hence w_raw = w_s / s before orthonormalising.
    """

    NUM_CLASSES = 2  # HR vs rest; the direction is the logit difference W[1] - W[0]

    def __init__(self, dim: int, config: ProbeConfig = ProbeConfig()) -> None:
        config.validate()
        self.dim = dim
        self.config = config
        self._round1: VariationalLinear | None = None  # kept for the warm start
        self.last_report: ProbeReport | None = None

    def fit(
        self,
        h: Tensor,
        is_hr: Tensor,
        varieties: Sequence[str] | np.ndarray,
        *,
        site: str,
        step: int,
    ) -> tuple[Subspace, ProbeReport]:
        """Fit the probe on a buffer of detached states and return the subspace and its metrics.

        h: (N, d) states of any float dtype/device; is_hr: (N,) bool; varieties: (N,) variety code per token.
        Round 1 is always kept (even at chance: the subspace then is just uninformative); a later round at chance
        (held-out accuracy <= majority rate + chance_margin) is fitted, not kept, and ends the rounds.
        Deterministic given config.seed, ``step`` and the inputs (and torch's thread count, which changes float
        summation order); torch's global RNG is never touched.
        """
        cfg = self.config
        with torch.inference_mode(False), torch.no_grad():
            x, y, var = self._check_inputs(h, is_hr, varieties, site)
            g = _seeded_generator(cfg.seed, step)
            keep = _balanced_indices(y, g) if cfg.balance else torch.arange(len(y))
            x, y, var = x[keep], y[keep], var[keep.numpy()]
            split = _stratified_split(y, cfg.holdout, g, site)

            warm = self._round1 is not None
            first = self._fit_round(x, y, split, g, warm_from=self._round1)
            self._round1 = first.probe
            rounds = [first]
            directions = _qr_basis(first.direction[:, None])  # (d, 1)
            stopped = first.accuracy <= first.chance + cfg.chance_margin
            while not stopped and len(rounds) < cfg.rank:
                x_perp = x - (x.double() @ directions @ directions.T).float()  # INLP: project onto the complement
                r = self._fit_round(x_perp, y, split, g, warm_from=None)
                stopped = r.accuracy <= r.chance + cfg.chance_margin
                w = r.direction - directions @ (directions.T @ r.direction)  # only this part acts on x_perp
                if stopped or float(w.norm()) <= 1e-8 * float(r.direction.norm()) + 1e-30:
                    stopped = True
                    break
                rounds.append(r)
                directions = _qr_basis(torch.cat([directions, w[:, None]], dim=1))

            subspace = Subspace(basis=directions.to(torch.float32), site=site, step=step, kind="probe")
            report = self._report(first, rounds, split, y, var, stopped, warm)
        self.last_report = report
        return subspace, report

    def state_dict(self) -> dict[str, Tensor]:
        """The warm-start state (the round-1 probe's parameters), for resuming a run; empty before the first fit."""
        if self._round1 is None:
            return {}
        return {k: v.detach().clone().contiguous() for k, v in self._round1.state_dict().items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore what ``state_dict`` returned (an empty dict forgets the warm start)."""
        if not state:
            self._round1 = None
            return
        probe = VariationalLinear(self.dim, self.NUM_CLASSES)
        try:
            probe.load_state_dict({k: v.to("cpu", torch.float32) for k, v in state.items()})
        except RuntimeError as err:
            raise ValueError(
                f"probe warm-start state does not fit a probe on {self.dim}-dim states ({err}); "
                "it was saved by a different model or site: drop the fitter.* tensors to start cold"
            ) from None
        self._round1 = probe.eval()

    # --- steps of a fit -----------------------------------------------------------------------------------------

    def _check_inputs(
        self, h: Tensor, is_hr: Tensor, varieties: Sequence[str] | np.ndarray, site: str
    ) -> tuple[Tensor, Tensor, np.ndarray]:
        x = torch.as_tensor(h).detach().to("cpu", torch.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"probe at {site!r} expects states of shape (N, {self.dim}); got {tuple(x.shape)}")
        y = torch.as_tensor(is_hr).detach().to("cpu").reshape(-1).to(torch.long)
        var = np.asarray(varieties).astype(str).reshape(-1)
        if len(y) != len(x) or len(var) != len(x):
            raise ValueError(
                f"probe at {site!r}: {len(x)} states but {len(y)} labels and {len(var)} variety codes; "
                "the buffer must give one label and one variety per token"
            )
        if not torch.isfinite(x).all():
            raise ValueError(f"probe at {site!r}: the states contain NaN or inf; check the model's forward pass")
        return x, y, var

    def _fit_round(
        self,
        x: Tensor,
        y: Tensor,
        split: _Split,
        g: torch.Generator,
        *,
        warm_from: VariationalLinear | None,
    ) -> _RoundResult:
        cfg = self.config
        x_tr, y_tr = x[split.train], y[split.train]
        mean = x_tr.mean(0)
        std = x_tr.std(0)
        std = std.clamp_min(1e-3 * float(std.pow(2).mean().sqrt()) + 1e-12)  # constant coords stay ~0, not blow up
        xs_tr = (x_tr - mean) / std
        xs_ho = (x[split.heldout] - mean) / std

        probe = VariationalLinear(self.dim, self.NUM_CLASSES, generator=g)
        if warm_from is not None:
            probe.load_state_dict(warm_from.state_dict())
            # Revive the dims pruned last time: with mu_z ~ 0 and mu_W ~ 0 their gradient vanishes, so a dimension
            # that has become informative since the last refit could never come back otherwise.
            probe.reset_parameters(~warm_from.kept_mask(cfg.prune_log_alpha), generator=g)
        else:
            _lda_init(probe, xs_tr, y_tr)
        _train(probe, xs_tr, y_tr, cfg, g)

        probe.eval()
        w_eff = probe.posterior_mean_weight(cfg.prune_log_alpha)
        if not bool(w_eff.any()):  # everything pruned: fall back to the unmasked mean (the probe is at chance anyway)
            w_eff = probe.posterior_mean_weight(None)
        direction = (w_eff[1] - w_eff[0]).double() / std.double()

        logits_ho = probe(xs_ho, threshold=cfg.prune_log_alpha)
        y_ho = y[split.heldout]
        correct = logits_ho.argmax(-1) == y_ho
        p_ho = float(y_ho.float().mean())
        ce_train = _expected_ce(probe, xs_tr, y_tr, cfg.code_samples, g)
        return _RoundResult(
            probe=probe,
            direction=direction,
            accuracy=float(correct.float().mean()),
            chance=max(p_ho, 1.0 - p_ho),
            ce_train=ce_train,
            ce_heldout_mean=F.cross_entropy(logits_ho, y_ho, reduction="none"),
            correct_heldout=correct,
        )

    def _report(
        self,
        first: _RoundResult,
        rounds: list[_RoundResult],
        split: _Split,
        y: Tensor,
        var: np.ndarray,
        stopped: bool,
        warm: bool,
    ) -> ProbeReport:
        c = self.NUM_CLASSES
        kl = float(first.probe.kl())
        n_tr, n_ho = len(split.train), len(split.heldout)
        code = (kl + float(first.ce_train.sum())) / LN2
        y_ho = y[split.heldout].double()
        p = float(y_ho.mean())
        h_y = -sum(q * math.log2(q) for q in (p, 1.0 - p) if q > 0)
        mi = max(0.0, h_y - float(first.ce_heldout_mean.mean()) / LN2)

        var_tr, var_ho = var[split.train.numpy()], var[split.heldout.numpy()]
        per_variety: dict[str, dict[str, float]] = {}
        for v in sorted(set(var.tolist())):
            m_tr = torch.from_numpy(var_tr == v)
            m_ho = torch.from_numpy(var_ho == v)
            n_v = int(m_tr.sum())
            code_v = (float(first.ce_train[m_tr].sum()) + kl * n_v / n_tr) / LN2
            per_variety[v] = {
                "n": float(n_v),
                "n_heldout": float(m_ho.sum()),
                "accuracy": float(first.correct_heldout[m_ho].float().mean()) if bool(m_ho.any()) else float("nan"),
                "code_length_bits": code_v,
                "compression": n_v * math.log2(c) / code_v if n_v else float("nan"),
            }
        return ProbeReport(
            accuracy=first.accuracy,
            code_length_bits=code,
            compression=n_tr * math.log2(c) / code,
            mi_lower_bound_bits=mi,
            n_train=n_tr,
            n_heldout=n_ho,
            kept_dims=int(first.probe.kept_mask(self.config.prune_log_alpha).sum()),
            rounds=len(rounds),
            round_accuracy=tuple(r.accuracy for r in rounds),
            per_variety=per_variety,
            chance_rate=first.chance,
            stopped_at_chance=stopped,
            kl_bits=kl / LN2,
            warm_start=warm,
        )


def _train(probe: VariationalLinear, x: Tensor, y: Tensor, cfg: ProbeConfig, g: torch.Generator) -> None:
    """Fixed-budget Adam on mean CE + KL / N, i.e. the per-batch loss sum_B CE + (|B|/N) KL of Voita & Titov 2020
    (§3.1) divided by |B|. Minibatches partition a fresh permutation each epoch into equal slices of at most
    ``batch_size``; x**2 is computed once, so a step touches the (B, d) data only in matmuls."""
    n = len(y)
    n_batches = math.ceil(n / cfg.batch_size)
    b = math.ceil(n / n_batches)
    data = torch.cat([x, x.pow(2), y[:, None].to(x.dtype)], dim=1)  # (n, 2d + 1): one gather per epoch
    d = x.shape[1]
    probe.train()
    log_vars = [probe.z_logvar, probe.weight_logvar, probe.bias_logvar]
    means = [probe.z_mu, probe.weight_mu, probe.bias_mu]
    opt = torch.optim.Adam(
        [{"params": means, "lr": cfg.lr}, {"params": log_vars, "lr": cfg.lr * cfg.logvar_lr_scale}],
        lr=cfg.lr,
        fused=True,  # one kernel per group instead of ~10 per parameter: the step is overhead-bound
    )
    with torch.enable_grad():
        for step in range(cfg.steps):
            k = step % n_batches
            if k == 0 and n_batches > 1:
                data = data[torch.randperm(n, generator=g)]
            batch = data[k * b : (k + 1) * b]
            xb, xb_sq, yb = batch[:, :d], batch[:, d : 2 * d], batch[:, 2 * d].to(torch.long)
            loss = probe.sampled_nll(xb, yb, generator=g, x_sq=xb_sq).mean() + probe.kl() / n
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    probe.eval()


def _expected_ce(probe: VariationalLinear, x: Tensor, y: Tensor, samples: int, g: torch.Generator) -> Tensor:
    """(N,) Monte-Carlo estimate of E_q[-ln p(y|x, theta)] per example (the data part of the variational code)."""
    x_sq = x.pow(2)
    total = torch.zeros(len(y), dtype=torch.float64)  # float64: per-variety sums must add up to the total
    for _ in range(samples):
        total += probe.sampled_nll(x, y, generator=g, x_sq=x_sq).double()
    return total / samples


def _balanced_indices(y: Tensor, g: torch.Generator) -> Tensor:
    pos = torch.nonzero(y == 1).flatten()
    neg = torch.nonzero(y == 0).flatten()
    n = min(len(pos), len(neg))
    pos = pos[torch.randperm(len(pos), generator=g)[:n]]
    neg = neg[torch.randperm(len(neg), generator=g)[:n]]
    return torch.sort(torch.cat([pos, neg])).values


def _stratified_split(y: Tensor, holdout: float, g: torch.Generator, site: str) -> _Split:
    train, held = [], []
    for c in (0, 1):
        idx = torch.nonzero(y == c).flatten()
        name = "HR" if c else "non-HR"
        if len(idx) < 2:
            raise ValueError(
                f"probe at {site!r}: the buffer has {len(idx)} {name} token(s); it needs at least 2 of each class "
                "(check the variety labels and the buffer size)"
            )
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_ho = min(max(1, round(holdout * len(idx))), len(idx) - 1)
        held.append(idx[:n_ho])
        train.append(idx[n_ho:])
    return _Split(train=torch.sort(torch.cat(train)).values, heldout=torch.sort(torch.cat(held)).values)


@torch.no_grad()
def _lda_init(probe: VariationalLinear, x: Tensor, y: Tensor, ridge: float = 1e-2) -> None:
    """Cold start: set the probe's mean weights to the (ridge) LDA classifier w = S^-1 (m1 - m0), the Bayes-optimal
    linear rule for Gaussian classes with a shared covariance, so the fixed step budget goes to the variational part
    (noise levels and pruning) rather than to finding the direction. x is standardised, so ``ridge`` is relative."""
    xd = x.double()
    m1, m0 = xd[y == 1].mean(0), xd[y == 0].mean(0)
    resid = torch.where((y == 1)[:, None], xd - m1, xd - m0)
    cov = resid.T @ resid / len(y) + ridge * torch.eye(x.shape[1], dtype=torch.float64)
    w = torch.linalg.solve(cov, m1 - m0)
    p1 = float((y == 1).double().mean())
    b = -0.5 * float(w @ (m1 + m0)) + math.log(p1 / (1.0 - p1))
    # Two-class softmax: only the difference of the rows matters; split it symmetrically.
    probe.weight_mu[1] = (0.5 * w).to(probe.weight_mu.dtype)
    probe.weight_mu[0] = (-0.5 * w).to(probe.weight_mu.dtype)
    probe.bias_mu[1] = 0.5 * b
    probe.bias_mu[0] = -0.5 * b


# ----------------------------------------------------------------------------------------------------------------
# Online (prequential) code: an alternative estimate
# ----------------------------------------------------------------------------------------------------------------

ONLINE_BLOCKS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class OnlineCodeReport:
    """Prequential code length (Voita & Titov 2020, §3.2; after Rissanen 1984 and Blier & Ollivier 2018)."""

    code_length_bits: float  # t_1 log2 C + sum_i -log2 p_i(block i+1)
    uniform_bits: float  # N log2 C
    compression: float  # uniform_bits / code_length_bits
    block_ends: tuple[int, ...]  # t_1 < t_2 < ... = N
    block_bits: tuple[float, ...]  # bits spent on each block (the first one with the uniform code)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code_length_bits": self.code_length_bits,
            "uniform_bits": self.uniform_bits,
            "compression": self.compression,
            "block_ends": list(self.block_ends),
            "block_bits": list(self.block_bits),
        }


def online_code_length(
    h: Tensor,
    y: Tensor,
    *,
    blocks: Sequence[float] = ONLINE_BLOCKS,
    num_classes: int | None = None,
    max_iter: int = 100,
    seed: int = 0,
) -> OnlineCodeReport:
    """Prequential code of labels y (N,) given states h (N, d) with a plain multinomial logistic regression.

    The data are shuffled (``seed``); the first t_1 labels are sent with the uniform code, then for each block the
    model is trained on the first t_i examples and the next t_{i+1} - t_i labels are sent with its predictive
    distribution: L = t_1 log2 C + sum_i -log2 p_{theta_i}(y_{t_i+1 : t_{i+1}} | h). Each model is the MAP estimate
    under a N(0, 1) prior on the weights of standardised features (L-BFGS), which keeps the tiny first blocks from
    diverging to infinite confidence.
    """
    with torch.inference_mode(False), torch.no_grad():
        x = torch.as_tensor(h).detach().to("cpu", torch.float32)
        labels = torch.as_tensor(y).detach().to("cpu").reshape(-1).to(torch.long)
        n = len(labels)
        if x.ndim != 2 or len(x) != n or n < 2:
            raise ValueError(f"online code needs h (N, d) and y (N,) with N >= 2; got {tuple(x.shape)}, {n}")
        c = int(num_classes if num_classes is not None else int(labels.max()) + 1)
        if c < 2 or int(labels.min()) < 0 or int(labels.max()) >= c:
            raise ValueError(f"labels must lie in [0, {c}) with at least 2 classes")
        if any(not 0 < f <= 1 for f in blocks) or list(blocks) != sorted(blocks):
            raise ValueError(f"blocks must be increasing fractions in (0, 1]; got {tuple(blocks)}")
        perm = torch.randperm(n, generator=_seeded_generator(seed, 0x0C0DE))
        x, labels = x[perm], labels[perm]
        ends = sorted({min(n, max(1, round(f * n))) for f in blocks} | {n})
        bits = [ends[0] * math.log2(c)]
        for start, stop in itertools.pairwise(ends):
            model = _fit_logistic(x[:start], labels[:start], c, max_iter)
            bits.append(float(F.cross_entropy(model(x[start:stop]), labels[start:stop], reduction="sum")) / LN2)
        total = float(sum(bits))
        uniform = n * math.log2(c)
    return OnlineCodeReport(
        code_length_bits=total,
        uniform_bits=uniform,
        compression=uniform / total,
        block_ends=tuple(ends),
        block_bits=tuple(bits),
    )


def _fit_logistic(x: Tensor, y: Tensor, c: int, max_iter: int) -> nn.Module:
    """MAP multinomial logistic regression on standardised features; returns a module on raw features."""
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-6) if len(x) > 1 else torch.ones(x.shape[1])
    xs = (x - mean) / std
    lin = nn.Linear(x.shape[1], c)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(lin(xs), y, reduction="sum") + 0.5 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return nn.Sequential(_Standardise(mean, std), lin).eval()


class _Standardise(nn.Module):
    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std
