"""Post-hoc probes: how much MSA information is still linearly in a trained model's states (docs/design.md §2.7).

The decoupling penalty drives ‖Uᵀh‖ down along the subspace it is given; that says nothing about whether the model
still separates MSA from the dialects along some other direction (or along U, after removing a shared offset). A
probe trained *from scratch* on the frozen model's states answers that: a plain logistic regression (MAP, L-BFGS,
``method.online_code.fit_logistic``) of MSA tokens against dialect tokens, classes balanced, evaluated on sentences
it never saw (held out by sentence). Its direction is also the model's own estimate of its MSA subspace, which the
inference-time switch uses for models that were not trained with one (``experiment.view.ExperimentView.projection``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..method.online_code import fit_logistic
from ..method.subspace import qr_basis

HOLDOUT = 0.3        # share of the sentences held out
MAX_ITER = 60        # L-BFGS iterations per fit (converged well before on a few thousand tokens)


@dataclass(frozen=True)
class PosthocProbe:
    """One site's post-hoc probe: its basis (d, k) in raw coordinates, held-out accuracy and what chance is."""

    basis: np.ndarray
    accuracy: float
    chance: float
    n_train: int
    n_heldout: int
    per_variety: dict[str, float]     # held-out accuracy on each variety's tokens

    def to_record(self) -> dict:
        return {"accuracy": round(self.accuracy, 4), "chance": round(self.chance, 4), "n_train": self.n_train,
                "n_heldout": self.n_heldout, "rank": int(self.basis.shape[1]),
                "per_variety": {v: round(a, 4) for v, a in self.per_variety.items()}}


def _balanced(idx: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    pos, neg = idx[y[idx]], idx[~y[idx]]
    n = min(len(pos), len(neg))
    return np.sort(np.concatenate([rng.permutation(pos)[:n], rng.permutation(neg)[:n]]))


def posthoc_probe(h: np.ndarray, varieties: np.ndarray, groups: np.ndarray, *, hr: str = "arb", rank: int = 1,
                  seed: int = 0) -> PosthocProbe:
    """Fit HR-vs-rest on token states ``h`` (N, d), held out by ``groups`` (sentence ids), classes balanced in each
    part. ``rank`` > 1 adds INLP rounds (Ravfogel et al. 2020): each refits in the complement of the directions
    found so far; the reported accuracy is the first round's."""
    rng = np.random.default_rng(seed)
    y = np.asarray(varieties) == hr
    ids = np.unique(groups)
    held = np.isin(groups, rng.permutation(ids)[: max(1, round(HOLDOUT * len(ids)))])
    train = _balanced(np.flatnonzero(~held), y, rng)
    test = _balanced(np.flatnonzero(held), y, rng)
    if len(train) < 4 or len(test) < 2:
        raise ValueError(f"post-hoc probe: too few tokens of both classes ({len(train)} train, {len(test)} held out)")
    x = torch.as_tensor(np.asarray(h, dtype=np.float32))
    labels = torch.as_tensor(y.astype(np.int64))
    directions = np.zeros((x.shape[1], 0))
    first = None
    for _ in range(rank):
        xr = x - torch.as_tensor((x.double().numpy() @ directions @ directions.T).astype(np.float32)) \
            if directions.shape[1] else x
        model = fit_logistic(xr[train], labels[train], 2, MAX_ITER)
        with torch.no_grad():
            correct = (model(xr[test]).argmax(-1) == labels[test]).numpy()
        if first is None:
            first = correct
        elif correct.mean() <= 0.5 + 0.02:      # this round is at chance: its direction is noise
            break
        std, lin = model[0].std.double(), model[1]
        w = ((lin.weight[1] - lin.weight[0]).detach().double() / std).numpy()   # raw coordinates (see ProbeFitter)
        w = w - directions @ (directions.T @ w)
        if np.linalg.norm(w) < 1e-12:
            break
        directions = qr_basis(torch.as_tensor(np.column_stack([directions, w]))).numpy()
    test_vars = np.asarray(varieties)[test]
    per = {str(v): float(first[test_vars == v].mean()) for v in np.unique(test_vars)}
    return PosthocProbe(directions, float(first.mean()), 0.5, len(train), len(test), per)
