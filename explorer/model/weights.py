"""Model weights as flat tensor dicts: what checkpoints and resume states store, and how they are laid back.

A checkpoint describes itself (like a nanoGPT checkpoint): its safetensors metadata names the format, what it is
(``kind``: base or arm, which arm), its step, the config fingerprint and the code version that wrote it, so one
file can be understood without its neighbours.

A model with LoRA adapters (``model.adapt``) is stored as its adapter tensors only: the base they are laid over is
the run's base model, which is never changed, so the adapters are all that is needed to rebuild the arm.
"""

from __future__ import annotations

import torch


def adapter_keys(model: torch.nn.Module) -> list[str] | None:
    """The state-dict keys of a LoRA-wrapped model's adapters (None for a plain model: every weight counts)."""
    if getattr(model, "peft_config", None) is None:
        return None
    return [k for k in model.state_dict() if ".lora_" in k]


def weight_tensors(model: torch.nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """State dict without tied duplicates (safetensors refuses shared storage); only the adapters of a LoRA model."""
    keep = adapter_keys(model)
    seen: dict[int, str] = {}
    out = {}
    for k, v in model.state_dict().items():
        if keep is not None and k not in keep:
            continue
        ptr = v.data_ptr()
        if ptr in seen:
            continue
        seen[ptr] = k
        out[k] = v.detach().to(dtype) if dtype is not None else v.detach().clone()
    return out


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Lay ``tensors`` (``weight_tensors`` of the same architecture) over ``model``; ValueError if they do not fit."""
    ref = model.state_dict()
    keep = adapter_keys(model)
    if keep is not None:
        _check_adapters(set(keep), set(tensors))
    elif any(".lora_" in k for k in tensors):
        raise ValueError("checkpoint does not fit the model: it holds LoRA adapters, but the model was loaded "
                         "without them (--lora-rank must be what the experiment was trained with)")
    cast = {k: v.to(ref[k].dtype) for k, v in tensors.items() if k in ref}
    unexpected = [k for k in tensors if k not in ref]
    missing = model.load_state_dict(cast, strict=False).missing_keys
    if keep is not None:           # a LoRA model's base weights are the base's, never in the checkpoint
        missing = [k for k in missing if k in keep]
    # keys dropped as tied duplicates must share storage with a loaded key
    ptrs = {ref[k].data_ptr() for k in cast}
    really_missing = [k for k in missing if ref[k].data_ptr() not in ptrs]
    if unexpected or really_missing:
        raise ValueError(f"checkpoint does not fit the model: missing {really_missing[:5]}, "
                         f"unexpected {unexpected[:5]}")


def _check_adapters(expected: set[str], given: set[str]) -> None:
    if not any(".lora_" in k for k in given):
        raise ValueError("checkpoint does not fit the model: it holds full weights, but the model was loaded with "
                         "LoRA adapters and expects adapter tensors only (--lora-rank must be what the experiment "
                         "was trained with)")
    if expected != given:
        raise ValueError(f"checkpoint does not fit the model's LoRA adapters: missing {sorted(expected - given)[:5]}, "
                         f"unexpected {sorted(given - expected)[:5]} (same --lora-rank and --lora-targets?)")
