"""The variational linear layer of the MDL probe (Louizos et al. 2017; Voita & Titov 2020).

A linear classifier with a group Normal-Jeffreys (log-uniform) prior over input dimensions, trained with the local
reparameterisation trick; its KL term uses the approximation of Molchanov et al. 2017 ("Variational Dropout
Sparsifies Deep Neural Networks"). ``probe.ProbeFitter`` trains it and turns its weights into a ``Subspace``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Molchanov et al. 2017, eq. 14: -KL(q(z)||p(z)) ~= k1*sigmoid(k2 + k3*log_alpha) - 0.5*log1p(1/alpha) - k1.
K1, K2, K3 = 0.63576, 1.87320, 1.48695


LN2 = math.log(2.0)


_EPS = 1e-8


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
        """KL(q || p) in nats (docs/design.md §2.1).

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
