"""Which weights a model name means in an experiment: the base (stage 1 or the user's model) and each arm's
checkpoints laid over it."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import RunConfig
from ..model.loading import load_model
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
        return Path(cfg.model).expanduser().resolve()
    return exp.base_model_dir


def load_base(exp: Experiment, cfg: RunConfig, device=None):
    model, tok = load_model(base_model_path(exp, cfg))
    return model.to(device or pick_device()), tok


def load_arm(exp: Experiment, cfg: RunConfig, arm: str, step: int | None = None, device=None):
    """The model of an arm at a checkpoint (default: the last one), and its tokenizer."""
    model, tok = load_base(exp, cfg, device)
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
