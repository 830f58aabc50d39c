"""Variational (MDL) probe for the high-resource variety and the frozen subspace it yields (docs/design.md §2.1-2.2).

The probe is a linear classifier HR-vs-rest with a group Normal-Jeffreys (log-uniform) prior over input dimensions
(Louizos et al. 2017, "Bayesian Compression for Deep Learning"), used as a *variational code* in the sense of
Voita & Titov 2020, "Information-Theoretic Probing with Minimum Description Length": the training loss
KL(q||p) + sum_i -ln p(y_i|h_i) is a code length for the labels given the states (``variational``). Its
posterior-mean weights, pruned dimensions masked, give the direction(s) of the HR subspace; rank > 1 repeats the
probe in the orthogonal complement of the directions found so far (INLP, Ravfogel et al. 2020, "Null It Out").

``ProbeFitter`` is mutable (it keeps its round-1 probe for a warm start at the next refit); what it hands out, a
``Subspace``, is frozen, so a refit never changes a subspace a hook or a plot already holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .holdout import Split, balanced_indices, group_split, stratified_split
from .subspace import Subspace, qr_basis, seeded_generator
from .variational import LN2, VariationalLinear


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
        groups: Tensor | None = None,
    ) -> tuple[Subspace, ProbeReport]:
        """Fit the probe on a buffer of detached states and return the subspace and its metrics.

        h: (N, d) states of any float dtype, on any device (the fit runs where the states are); is_hr: (N,) bool;
        varieties: (N,) variety code per token; groups: (N,) an id per token of the sentence it comes from. With
        ``groups`` the held-out part is held out by *sentence* (no sentence has tokens on both sides, so held-out
        accuracy is not inflated by near-duplicate tokens); without it, by token.
        Round 1 is always kept (even at chance: the subspace then is just uninformative); a later round at chance
        (held-out accuracy <= majority rate + chance_margin) is fitted, not kept, and ends the rounds.
        Deterministic given config.seed, ``step`` and the inputs (and torch's thread count, which changes float
        summation order); torch's global RNG is never touched.
        """
        cfg = self.config
        with torch.inference_mode(False), torch.no_grad():
            x, y, var = self._check_inputs(h, is_hr, varieties, site)
            g = seeded_generator(cfg.seed, step)
            if groups is not None:
                keep, split = group_split(y, torch.as_tensor(groups).reshape(-1).cpu(), cfg.holdout, g, site,
                                           balance=cfg.balance)
                x, y, var = x[keep], y[keep], var[keep.numpy()]
            else:
                keep = balanced_indices(y, g) if cfg.balance else torch.arange(len(y))
                x, y, var = x[keep], y[keep], var[keep.numpy()]
                split = stratified_split(y, cfg.holdout, g, site)

            warm = self._round1 is not None
            first = self._fit_round(x, y, split, g, warm_from=self._round1)
            self._round1 = first.probe
            rounds = [first]
            directions = qr_basis(first.direction[:, None])  # (d, 1)
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
                directions = qr_basis(torch.cat([directions, w[:, None]], dim=1))

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
        x = torch.as_tensor(h).detach().to(torch.float32)   # stays on its device: the fit runs where the model runs
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
        split: Split,
        g: torch.Generator,
        *,
        warm_from: VariationalLinear | None,
    ) -> _RoundResult:
        cfg = self.config
        y = y.to(x.device)
        x_tr, y_tr = x[split.train], y[split.train]
        mean = x_tr.mean(0)
        std = x_tr.std(0)
        std = std.clamp_min(1e-3 * float(std.pow(2).mean().sqrt()) + 1e-12)  # constant coords stay ~0, not blow up
        xs_tr = (x_tr - mean) / std
        xs_ho = (x[split.heldout] - mean) / std

        probe = VariationalLinear(self.dim, self.NUM_CLASSES, generator=g).to(x.device)
        if warm_from is not None:
            probe.load_state_dict({k: v.to(x.device) for k, v in warm_from.state_dict().items()})
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
        split: Split,
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
    total = torch.zeros(len(y), dtype=torch.float64, device=x.device)  # float64: per-variety sums add up
    for _ in range(samples):
        total += probe.sampled_nll(x, y, generator=g, x_sq=x_sq).double()
    return total / samples


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
