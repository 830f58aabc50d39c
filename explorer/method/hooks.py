"""Forward hooks on decoder-layer outputs, only ever inside context managers that remove them.

Two uses (docs/design.md §2.4, §2.6):
- ``capture``: keep each site's output (with its graph, for the decoupling penalty; or detached);
- ``project``: replace h by h − α·P·h at each site (training ``project`` mode and the
  inference-time "decoupling switch", ``Projection``).

With no hook (the switch off: ``nullcontext()``) the model is untouched, so outputs are
bit-identical to the plain model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from ..model.sites import site_modules
from .subspace import Subspace


def _main(output):
    """The hidden-state tensor of a decoder layer's output (a tensor, or a tuple whose first item it is)."""
    return output[0] if isinstance(output, tuple) else output


def _replace(output, h):
    return (h,) + tuple(output[1:]) if isinstance(output, tuple) else h


@contextmanager
def _hooks(modules: Mapping[str, nn.Module], make_hook) -> Iterator[None]:
    handles = []
    try:
        for site, mod in modules.items():
            handles.append(mod.register_forward_hook(make_hook(site)))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def capture(model: nn.Module, sites: Sequence[str], *, detach: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Yield a dict that each forward pass fills with ``site -> (B, T, d)`` hidden states.

    A second forward pass overwrites the first (generation steps are not accumulated)."""
    store: dict[str, torch.Tensor] = {}

    def make(site):
        def hook(_mod, _inp, output):
            h = _main(output)
            store[site] = h.detach() if detach else h
        return hook

    with _hooks(site_modules(model, sites), make):
        yield store


@contextmanager
def project(model: nn.Module, subspaces: Mapping[str, Subspace], alpha: float = 1.0) -> Iterator[None]:
    """h ← h − α·U Uᵀ h at each site (``subspaces``: site -> Subspace). α = 0 changes nothing."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"projection strength alpha must be in [0, 1], got {alpha}")

    def make(site):
        sub = subspaces[site]

        def hook(_mod, _inp, output):
            h = _main(output)
            return _replace(output, sub.project_out(h, alpha))
        return hook

    with _hooks(site_modules(model, list(subspaces)), make):
        yield


def count_hooks(model: nn.Module) -> int:
    """Forward hooks currently registered anywhere in the model (tests check this returns to 0)."""
    return sum(len(m._forward_hooks) for m in model.modules())


@dataclass(frozen=True)
class Projection:
    """The inference-time decoupling switch (docs/design.md §2.6): h ← h − α·U Uᵀ h with each site's subspace.

    "Off" is decided here and nowhere else: with α = 0 or no subspace, ``context`` is ``nullcontext()`` and no
    hook touches the model, so its outputs are bit-identical to the plain model's."""

    subspaces: Mapping[str, Subspace] = field(default_factory=dict)
    alpha: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"projection strength alpha must be in [0, 1], got {self.alpha}")

    @property
    def active(self) -> bool:
        return self.alpha > 0.0 and bool(self.subspaces)

    @property
    def applied_alpha(self) -> float:
        """The strength actually applied: α when active, else 0."""
        return self.alpha if self.active else 0.0

    @property
    def sites(self) -> tuple[str, ...]:
        """Where it acts (empty when off)."""
        return tuple(self.subspaces) if self.active else ()

    def context(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """A fresh context that applies the projection to ``model`` (``nullcontext()`` when off)."""
        return project(model, self.subspaces, self.alpha) if self.active else contextlib.nullcontext()
