"""Model weights as flat tensor dicts: what checkpoints and resume states store, and how they are laid back.

A checkpoint describes itself (like a nanoGPT checkpoint): its safetensors metadata names the format, what it is
(``kind``: base or arm, which arm), its step, the config fingerprint and the code version that wrote it, so one
file can be understood without its neighbours.
"""

from __future__ import annotations

import torch


def weight_tensors(model: torch.nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """State dict without tied duplicates (safetensors refuses shared storage)."""
    seen: dict[int, str] = {}
    out = {}
    for k, v in model.state_dict().items():
        ptr = v.data_ptr()
        if ptr in seen:
            continue
        seen[ptr] = k
        out[k] = v.detach().to(dtype) if dtype is not None else v.detach().clone()
    return out


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    ref = model.state_dict()
    cast = {k: v.to(ref[k].dtype) for k, v in tensors.items() if k in ref}
    unexpected = [k for k in tensors if k not in ref]
    missing = model.load_state_dict(cast, strict=False).missing_keys
    # keys dropped as tied duplicates must share storage with a loaded key
    ptrs = {ref[k].data_ptr() for k in cast}
    really_missing = [k for k in missing if ref[k].data_ptr() not in ptrs]
    if unexpected or really_missing:
        raise ValueError(f"checkpoint does not fit the model: missing {really_missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
