"""Which weights a model name means in an experiment: the base (stage 1 or the user's model) and each arm's
checkpoints laid over it."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import RunConfig, derive
from ..model.adapt import Adaptation, adapt, weights_dtype
from ..model.loading import load_model, resolve_model
from ..model.sites import ModelLoadError
from ..model.weights import load_weights
from ..training.distributed import current as current_dist
from .layout import Experiment


def pick_device() -> torch.device:
    dist = current_dist()
    if dist.active:
        return dist.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def base_model_path(exp: Experiment, cfg: RunConfig) -> Path:
    if cfg.model and cfg.base_steps == 0:
        # MERGE-NOTE(issue 11): a folder, or a hub name's cached snapshot; a model absent from this machine (an
        # experiment copied from a GPU machine) stays a path, so views still open and loading it says what is missing
        try:
            return resolve_model(cfg.model)
        except ModelLoadError:
            return Path(cfg.model).expanduser()
    return exp.base_model_dir


def load_base(exp: Experiment, cfg: RunConfig, device=None, *, training: bool = True):
    """The base model, prepared as the run says: dtype for the device, prompt style, LoRA adapters, activation
    checkpointing (``model.adapt``). ``training=False`` for evaluation and the app (bf16 on CUDA)."""
    # MERGE-NOTE(issue 11): dtype/prompt style/LoRA/checkpointing are decided here, once, for every stage and the app
    device = torch.device(device or pick_device())
    a = derive(Adaptation, cfg)
    model, tok = load_model(base_model_path(exp, cfg), dtype=weights_dtype(device, a, training=training),
                            prompt_style=cfg.prompt_style)
    return adapt(model, a, training=training).to(device), tok


def load_arm(exp: Experiment, cfg: RunConfig, arm: str, step: int | None = None, device=None):
    """The model of an arm at a checkpoint (default: the last one), and its tokenizer."""
    model, tok = load_base(exp, cfg, device, training=False)   # MERGE-NOTE(issue 11): inference dtype
    if arm == "base":
        return model, tok
    steps = exp.checkpoints(arm)
    if not steps:
        raise FileNotFoundError(f"arm {arm!r} has no checkpoints in {exp.root}; run the experiment first")
    step = steps[-1] if step is None else step
    if step not in steps:
        raise ValueError(f"arm {arm!r} has no checkpoint at step {step}; it has {steps}")
    load_weights(model, exp.load_checkpoint(arm, step))
    return model, tok
