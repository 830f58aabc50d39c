"""Fitting bigger models: LoRA adapters (``peft``), activation (gradient) checkpointing and the weights' dtype.

All three are decided where a model is loaded (``experiment.models.load_base``), so the training loop, the probe,
the evaluation and the app see one ordinary ``nn.Module``:

- **LoRA** (Hu et al. 2022, through ``peft``): the base weights are frozen and every linear layer of the decoder
  blocks gets a low-rank update B·A (rank ``lora_rank``, scale ``lora_alpha / lora_rank``; B starts at zero, so the
  wrapped model starts out equal to the base). The decoder layers' outputs, where the decoupling penalty and the
  probe act, are those of the *adapted* model: the penalty still acts on the full hidden states and the probe
  sees what training changed. The adapters are initialised from the run's seed, so every arm starts from the same
  model. Checkpoints and resume states then hold only the adapter tensors
  (``model.weights``), megabytes instead of gigabytes, laid over the same base when an arm is loaded.
- **Activation checkpointing**: each decoder layer's activations are recomputed in the backward pass instead of
  kept (non-reentrant ``torch.utils.checkpoint``, so the states a forward hook captures stay in the graph and the
  penalty's gradient is the same as without it; tested).
- **dtype**: float32 on the CPU. On CUDA with ``--bf16 true``: bf16 weights for inference and for a frozen LoRA
  base (half the memory); a model trained in full keeps float32 master weights (AdamW updates of ~1e-5·w vanish
  in bf16's 8-bit mantissa) and runs its forward under bf16 autocast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from .errors import ModelLoadError


@dataclass(frozen=True)
class Adaptation:
    """How a loaded model is prepared, derived from ``RunConfig`` (``config.derive``)."""

    lora_rank: int = 0                   # 0 = train every weight
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ()   # module names (e.g. q_proj,v_proj); empty = every linear layer
    grad_checkpointing: bool = False
    bf16: bool = True
    seed: int = 0                        # the adapters' initialisation (A is random, B zero): one for every arm

    @property
    def lora(self) -> bool:
        return self.lora_rank > 0


def weights_dtype(device: torch.device | str, a: Adaptation, *, training: bool) -> torch.dtype:
    """The dtype to load weights in (see the module docstring): float32 except bf16 on CUDA for inference or a
    frozen LoRA base."""
    if torch.device(device).type != "cuda" or not a.bf16:
        return torch.float32
    return torch.bfloat16 if (not training or a.lora) else torch.float32


def is_lora(model) -> bool:
    return isinstance(model, PeftModel)


def adapt(model, a: Adaptation, *, training: bool = True):
    """``model`` prepared as ``a`` says: wrapped with fresh LoRA adapters (returns the ``PeftModel``) and/or with
    activation checkpointing switched on (it only acts in training mode). Unchanged when ``a`` asks for nothing."""
    if a.grad_checkpointing and training:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise ModelLoadError(f"{type(model).__name__} does not support activation checkpointing; "
                                 "run without --grad-checkpointing")
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if not a.lora:
        return model
    targets = list(a.lora_targets) if a.lora_targets else "all-linear"
    cfg = LoraConfig(r=a.lora_rank, lora_alpha=a.lora_alpha, lora_dropout=a.lora_dropout, target_modules=targets,
                     bias="none", task_type="CAUSAL_LM")
    try:
        with torch.random.fork_rng():       # every arm (and every rank) starts from the same adapters
            torch.manual_seed(a.seed)
            wrapped = get_peft_model(model, cfg)
    except ValueError as e:     # e.g. a target module name the model does not have
        raise ModelLoadError(f"could not add LoRA adapters to {type(model).__name__}: {e}. Check --lora-targets "
                             "(module names such as q_proj,v_proj; empty = every linear layer).") from e
    return wrapped


def trainable_share(model) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total
