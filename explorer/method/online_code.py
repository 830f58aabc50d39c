"""Online (prequential) code length: an alternative to the variational code (Voita & Titov 2020, §3.2)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .subspace import seeded_generator
from .variational import LN2

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
        perm = torch.randperm(n, generator=seeded_generator(seed, 0x0C0DE))
        x, labels = x[perm], labels[perm]
        ends = sorted({min(n, max(1, round(f * n))) for f in blocks} | {n})
        bits = [ends[0] * math.log2(c)]
        for start, stop in itertools.pairwise(ends):
            model = fit_logistic(x[:start], labels[:start], c, max_iter)
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


def fit_logistic(x: Tensor, y: Tensor, c: int, max_iter: int) -> nn.Module:
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
