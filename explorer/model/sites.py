"""Sites: the residual-stream output of each decoder layer, named ``layer.NN`` everywhere, found generically."""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

from .errors import ModelLoadError


_SITE_RE = re.compile(r"^layer\.(\d+)$")


def site_name(layer: int) -> str:
    return f"layer.{layer:02d}"


def parse_site(site: str) -> int:
    m = _SITE_RE.match(site)
    if not m:
        raise ValueError(f"site {site!r} is not of the form 'layer.NN' (e.g. 'layer.02')")
    return int(m.group(1))


def n_layers(model: nn.Module) -> int:
    return len(find_decoder_layers(model))


def all_sites(model: nn.Module) -> tuple[str, ...]:
    return tuple(site_name(i) for i in range(n_layers(model)))


def default_sites(model: nn.Module) -> tuple[str, ...]:
    """The middle decoder layer: far enough from the embeddings to be shared across varieties."""
    return (site_name(n_layers(model) // 2),)


def find_decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The ModuleList of decoder blocks, found generically (Llama/Gemma/Qwen ``model.layers``,
    GPT-2 ``transformer.h``, ...): the longest ModuleList whose length is the config's layer count."""
    cfg = getattr(model, "config", None)
    want = None
    if cfg is not None:
        text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        want = getattr(text_cfg, "num_hidden_layers", None) or getattr(text_cfg, "n_layer", None)
    candidates = [m for _, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if want is not None:
        exact = [m for m in candidates if len(m) == want]
        if exact:
            return exact[0]
    if not candidates:
        raise ModelLoadError(f"could not find the decoder layers of {type(model).__name__}")
    return max(candidates, key=len)


def hidden_size(model: nn.Module) -> int:
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(getattr(cfg, "hidden_size", None) or cfg.n_embd)


def site_modules(model: nn.Module, sites: Sequence[str]) -> dict[str, nn.Module]:
    layers = find_decoder_layers(model)
    out = {}
    for s in sites:
        i = parse_site(s)
        if not 0 <= i < len(layers):
            raise ValueError(f"site {s} does not exist: the model has {len(layers)} decoder layers "
                             f"(layer.00 to layer.{len(layers) - 1:02d})")
        out[s] = layers[i]
    return out
