"""Which weights a model name means in an experiment: the base (stage 1, the shipped base or the user's model) and
each arm's checkpoints laid over it."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from ..config import RunConfig, derive
from ..data.varieties import HR
from ..files import read_json
from ..model.adapt import Adaptation, adapt, weights_dtype
from ..model.loading import load_model, resolve_model
from ..model.shipped import SHIPPED_BASE, verify
from ..model.errors import ModelLoadError
from ..model.small import init_variety_tags
from ..model.weights import load_weights
from ..training.distributed import current as current_dist
from ..training.precision import Precision, resolved
from .layout import Experiment


def pick_device() -> torch.device:
    dist = current_dist()
    if dist.active:
        return dist.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run_precision(exp: Experiment, cfg: RunConfig, device: torch.device | None = None) -> Precision:
    """The precision this experiment trains in: the one its manifest recorded for this ``--bf16`` setting and device
    type (a resumed run keeps it), else resolved now (``training.precision``); the caller records it."""
    device = torch.device(device or pick_device())
    rec = exp.manifest().get("precision") if exp.exists() else None
    if rec and rec.get("setting") == cfg.bf16 and rec.get("device") == device.type:
        return Precision(**rec)
    return resolved(cfg.bf16, device.type)


def uses_shipped_base(cfg: RunConfig) -> bool:
    """A run of the built-in model with no stage 1 starts from the base that ships with the project."""
    return not cfg.model and cfg.base_steps == 0


def base_model_path(exp: Experiment, cfg: RunConfig) -> Path:
    """Where the model every arm starts from lives: the user's model (a folder, or a hub name's cached snapshot),
    the shipped base, or this run's stage 1."""
    if cfg.model and cfg.base_steps == 0:
        # a model absent from this machine (an experiment copied from a GPU machine) stays a path, so views still
        # open and loading it says what is missing
        try:
            return resolve_model(cfg.model)
        except ModelLoadError:
            return Path(cfg.model).expanduser()
    if uses_shipped_base(cfg):
        return SHIPPED_BASE
    return exp.base_model_dir


@functools.lru_cache(maxsize=4)
def _verified(folder: Path, stamp: tuple) -> dict:
    return verify(folder)


def verified_shipped_base() -> dict:
    """The shipped base's card, its files checked against their checksums (once per process while they are
    unchanged)."""
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(SHIPPED_BASE.glob("*"))) \
        if SHIPPED_BASE.exists() else ()
    return _verified(SHIPPED_BASE, stamp)


def load_base(exp: Experiment, cfg: RunConfig, device=None, *, training: bool = True):
    """The model every arm starts from, and its tokenizer, prepared as the run says, once for every stage and the
    app: dtype for the device, prompt style, under ``tag_init`` each dialect tag started from the MSA tag
    (``model.small.init_variety_tags``), then LoRA adapters and activation checkpointing (``model.adapt``).
    ``training=False`` for evaluation and the app (bf16 on CUDA)."""
    device = torch.device(device or pick_device())
    if uses_shipped_base(cfg):
        verified_shipped_base()
    a = derive(Adaptation, cfg, bf16=device.type == "cuda" and run_precision(exp, cfg, device).bf16)
    model, tok = load_model(base_model_path(exp, cfg), dtype=weights_dtype(device, a, training=training),
                            prompt_style=cfg.prompt_style)
    if cfg.tag_init and exp.format >= 2 and exp.data_info_path.exists():
        init_variety_tags(model, tok, read_json(exp.data_info_path)["dialects"], like=HR)
    return adapt(model, a, training=training).to(device), tok


def load_arm(exp: Experiment, cfg: RunConfig, model: str, step: int | None = None, device=None):
    """The weights of ``model`` ("base" or "<arm>.s<seed>") at a checkpoint (default: its last), and the tokenizer.

    Like with like: arm checkpoints are stored in fp16, so the base is rounded through fp16 too before it is
    evaluated or analysed; every model is then compared at the same precision."""
    net, tok = load_base(exp, cfg, device, training=False)
    if model == "base":
        with torch.no_grad():
            for p in net.parameters():       # as an fp16 checkpoint would store them (LoRA adapters included)
                p.copy_(p.to(torch.float16))
        return net, tok
    steps = exp.checkpoints(model)
    if not steps:
        raise FileNotFoundError(f"{model} has no checkpoints in {exp.root}; run the experiment first")
    step = steps[-1] if step is None else step
    if step not in steps:
        raise ValueError(f"{model} has no checkpoint at step {step}; it has {steps}")
    load_weights(net, exp.load_checkpoint(model, step))
    return net, tok
