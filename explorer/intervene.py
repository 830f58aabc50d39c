"""Forward hooks on decoder-layer outputs, only ever inside context managers that remove them.

Three uses (DESIGN.md §2.4, §2.6):
- ``capture``: keep each site's output (with its graph, for the decoupling penalty; or detached);
- ``project``: replace h by h − α·P·h at each site (training ``project`` mode and the
  inference-time "decoupling switch");
- ``penalty``: the decoupling term λ-free, mean over selected tokens of ‖Uᵀh‖ (or its square).

With no hook (the toggle off: ``nullcontext()``) the model is untouched, so outputs are
bit-identical to the plain model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from .model import find_decoder_layers, parse_site


def _site_modules(model: nn.Module, sites: Sequence[str]) -> dict[str, nn.Module]:
    layers = find_decoder_layers(model)
    out = {}
    for s in sites:
        i = parse_site(s)
        if not 0 <= i < len(layers):
            raise ValueError(f"site {s} does not exist: the model has {len(layers)} decoder layers "
                             f"(layer.00 to layer.{len(layers) - 1:02d})")
        out[s] = layers[i]
    return out


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

    with _hooks(_site_modules(model, sites), make):
        yield store


@contextmanager
def project(model: nn.Module, subspaces: Mapping[str, object], alpha: float = 1.0) -> Iterator[None]:
    """h ← h − α·U Uᵀ h at each site (``subspaces``: site -> Subspace). α = 0 changes nothing."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"projection strength alpha must be in [0, 1], got {alpha}")

    def make(site):
        sub = subspaces[site]

        def hook(_mod, _inp, output):
            h = _main(output)
            return _replace(output, sub.project_out(h, alpha))
        return hook

    with _hooks(_site_modules(model, list(subspaces)), make):
        yield


def penalty(states: Mapping[str, torch.Tensor], subspaces: Mapping[str, object], token_mask: torch.Tensor,
            *, squared: bool = False) -> torch.Tensor:
    """Mean over selected tokens of ‖Uᵀh‖₂ (or ‖Uᵀh‖²), averaged over sites (DESIGN.md §2.4).

    states: site -> (B, T, d); token_mask: (B, T) bool, the tokens that count."""
    terms = []
    m = token_mask.to(torch.float32)
    denom = m.sum().clamp_min(1.0)
    for site, sub in subspaces.items():
        h = states[site]
        c = sub.coords(h).float()                       # (B, T, k)
        sq = (c * c).sum(-1)                             # (B, T)
        per_tok = sq if squared else torch.sqrt(sq + 1e-12)
        terms.append((per_tok * m).sum() / denom)
    return torch.stack(terms).mean()


def count_hooks(model: nn.Module) -> int:
    """Forward hooks currently registered anywhere in the model (tests check this returns to 0)."""
    return sum(len(m._forward_hooks) for m in model.modules())
