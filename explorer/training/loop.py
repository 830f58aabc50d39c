"""The training loop shared by the base stage and the three arms, with online probe refits and resume.

Read top to bottom: ``train_loop`` runs ``steps`` optimiser steps over a fixed batch schedule;
a ``Decoupler`` (arms ``decoupled`` and ``random``) adds λ·mean‖Uᵀh‖ to the loss and, for
``decoupled``, refits the variational probe every ``probe_every`` steps on a fresh buffer
(docs/design.md §2.3–2.5). Every ``ckpt_every`` steps the loop hands fp16 weights (for analysis) and a
resume state (fp32 weights, optimiser, step) to its ``Sink``; a killed run restarted with the same
command continues from the last state and ends with the same numbers as an uninterrupted run,
because nothing depends on history except what the state holds (batches are a function of the step).

The loop writes no file itself: logs, checkpoints, refits and the resume state go to the ``Sink``
(``experiment.stagefolder.StageFolder``), which stores them where ``experiment.layout`` says.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ..data.examples import IGNORE, MODEL_INPUTS, Encoder, Example, collate, jitter_rows, phased_schedule
from ..method.decoupler import Decoupler, Refit
from ..model.weights import weight_tensors
from .distributed import current as current_dist
from .resume import ResumeState

ProgressFn = Callable[[dict], None]


class Sink(Protocol):
    """Where the loop hands what it produces (implemented by ``experiment.stagefolder.StageFolder``)."""

    @property
    def resume(self) -> ResumeState: ...

    def begin(self, resume_step: int | None) -> None:
        """Before the first step: ``None`` = a fresh start (drop anything a previous attempt left), else resuming
        at ``resume_step`` (drop log lines and refits from that step on: they will be redone)."""

    def log(self, record: dict) -> None: ...

    def checkpoint(self, step: int, tensors: dict[str, torch.Tensor]) -> None: ...

    def refit(self, refit: Refit) -> dict:
        """Store one refit; returns its record with the index it was given."""



# ---------------------------------------------------------------- the translation loss


# Architectures whose logits are exactly lm_head(final hidden state): for these the loss is computed
# on the target positions only (the prompt's logits are never needed), which saves the vocabulary
# projection and softmax over the source half of every sequence. Any other model uses its own loss.
_PLAIN_HEAD_TYPES = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma3_text", "olmo", "olmo2", "phi3"}


def plain_head(model) -> bool:
    cfg = model.config
    if getattr(cfg, "model_type", None) not in _PLAIN_HEAD_TYPES:
        return False
    if any(getattr(cfg, k, None) not in (None, 1, 1.0) for k in ("final_logit_softcapping", "logit_scale",
                                                                   "logits_scaling")):
        return False
    return hasattr(model, "get_decoder") and model.get_output_embeddings() is not None


def lm_loss(model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled (target) positions, as ``model(**inputs).loss``."""
    if not plain_head(model):
        return model(**inputs).loss.float()
    hidden = model.get_decoder()(**{k: v for k, v in inputs.items() if k != "labels"}).last_hidden_state
    target = inputs["labels"][:, 1:]
    keep = target != IGNORE
    logits = model.get_output_embeddings()(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), target[keep])



# ---------------------------------------------------------------- the loop


@dataclass(frozen=True)
class LoopSpec:
    """One stage's training settings, derived from ``RunConfig`` (``config.derive``): the stage gives its name,
    steps, lr and whether it keeps checkpoints; the rest are the run's."""

    name: str                         # "base" or an arm name (labels progress and logs)
    steps: int
    lr: float
    warmup: int
    weight_decay: float
    grad_clip: float
    batch_size: int
    ckpt_every: int
    seed: int
    bf16: bool
    save_checkpoints: bool = True
    warm_indices: tuple[int, ...] = ()   # examples that alone make up the first warm_steps batches
    warm_steps: int = 0
    jitter: int = 0                      # aligned models: move each row's target side by up to ± this (stage 1)


def lr_at(step: int, spec: LoopSpec) -> float:
    """Linear warm-up, then cosine decay to 10% (a pure function of the step: nothing to resume)."""
    if step < spec.warmup:
        return spec.lr * (step + 1) / spec.warmup
    t = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return spec.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def autocast_for(model, enabled: bool):
    device = next(model.parameters()).device
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def make_optimizer(model, spec: LoopSpec) -> torch.optim.Optimizer:
    """AdamW, fused where this torch build has a fused kernel for the device (4× faster steps on CPU)."""
    kw = {"lr": spec.lr, "weight_decay": spec.weight_decay, "betas": (0.9, 0.98)}
    try:
        return torch.optim.AdamW(model.parameters(), fused=True, **kw)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(model.parameters(), **kw)


def train_loop(model, tok, encoder: Encoder, examples: list[Example], spec: LoopSpec, sink: Sink, *,
               decoupler: Decoupler | None = None, progress: ProgressFn | None = None,
               stop_after: int | None = None) -> dict:
    """Train ``model`` in place for ``spec.steps`` steps (resuming if ``sink.resume`` holds a state). Returns a
    summary.

    ``stop_after`` ends the process-level loop early after that many steps in this call (used by the
    resume test to simulate a kill at a known point)."""
    device = next(model.parameters()).device
    dist = current_dist()
    encoded = encoder.encode_all(examples)
    schedule = phased_schedule([len(e[0]) for e in encoded], batch_size=spec.batch_size, steps=spec.steps,
                               seed=spec.seed, warm_indices=list(spec.warm_indices), warm_steps=spec.warm_steps)
    opt = make_optimizer(model, spec)
    state = sink.resume
    start = 0
    tokens, elapsed_before = 0, 0.0       # totals over the whole stage, resumed parts included
    if state.location() is not None:
        start, extra_t, extra = state.load(model, opt)
        tokens, elapsed_before = int(extra.get("tokens", 0)), float(extra.get("elapsed", 0.0))
        if decoupler is not None:
            decoupler.restore(extra_t, extra.get("decoupler", {}))
        if dist.is_main:
            sink.begin(start)
    elif dist.is_main:
        sink.begin(None)
    dist.barrier()
    net, opt = dist.prepare(model, opt)   # DDP under a launcher; else (model, opt) unchanged
    autocast = autocast_for(model, spec.bf16)
    model.train()
    t_start = time.perf_counter()
    step = start
    done_here = 0
    last_loss = float("nan")
    while step < spec.steps:
        if decoupler is not None and decoupler.due(step):
            refit = decoupler.refit(model, step, autocast)
            if refit is not None:
                rec = sink.refit(refit)
                if progress:
                    progress({"event": "refit", "stage": spec.name, "step": step, "refit": rec})
        for g in opt.param_groups:
            g["lr"] = lr_at(step, spec)
        rows = [encoded[i] for i in schedule[step]]
        if spec.jitter and encoder.aligned:   # drawn per step from the seed: a resumed run draws the same offsets
            rows = jitter_rows(rows, encoder.target_position, spec.jitter,
                               np.random.default_rng([spec.seed, 77, step]))
        batch = collate(dist.shard(rows), tok.pad_token_id)
        inputs = {k: batch[k].to(device) for k in (*MODEL_INPUTS, "labels") if k in batch}
        hook = decoupler.context(model) if decoupler is not None else contextlib.nullcontext({})
        with hook as states, autocast:
            # under DDP the forward must go through the wrapper (its hooks average the gradients)
            loss_mt = net(**inputs).loss.float() if dist.active else lm_loss(model, inputs)
        term = decoupler.loss_term(states, batch) if decoupler is not None else None
        loss = loss_mt if term is None else loss_mt + term.weighted
        opt.zero_grad(set_to_none=True)
        dist.backward(loss)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        opt.step()
        step += 1
        done_here += 1
        tokens += sum(len(encoded[i][0]) for i in schedule[step - 1])   # the global batch
        last_loss = loss_mt.item()  # a sync point: once per step is fine on CPU
        rec = {"step": step, "loss": round(last_loss, 5), "lr": lr_at(step - 1, spec), "grad_norm": round(float(gnorm), 4),
               "penalty": None if term is None else round(term.value.item(), 5),
               "elapsed": round(elapsed_before + time.perf_counter() - t_start, 3)}
        if dist.is_main:
            sink.log(rec)
        if (step % spec.ckpt_every == 0 or step == spec.steps) and dist.is_main:
            if spec.save_checkpoints:
                sink.checkpoint(step, weight_tensors(model, torch.float16))
            extra_t, extra = {}, {"tokens": tokens, "elapsed": elapsed_before + time.perf_counter() - t_start}
            if decoupler is not None:
                extra_t, meta = decoupler.state()
                extra["decoupler"] = meta
            state.save(model, opt, step, extra_t, extra)
        if progress:
            elapsed = time.perf_counter() - t_start
            rate = done_here / elapsed if elapsed > 0 else 0.0
            progress({"event": "step", "stage": spec.name, "step": step, "total": spec.steps, "loss": last_loss,
                      "penalty": rec["penalty"], "tokens_per_s": tokens / (elapsed_before + elapsed)
                      if elapsed_before + elapsed > 0 else 0.0,
                      "eta_s": (spec.steps - step) / rate if rate > 0 else None,
                      "probe_accuracy": _probe_acc(decoupler)})
        if stop_after is not None and done_here >= stop_after and step < spec.steps:
            raise KeyboardInterrupt(f"stopped after {done_here} steps (test hook)")
    wall = time.perf_counter() - t_start
    return {"steps": spec.steps, "resumed_from": start, "wall_s": round(wall, 2),
            "train_s": round(elapsed_before + wall, 2), "tokens": tokens, "final_loss": last_loss}


def _probe_acc(decoupler: Decoupler | None) -> float | None:
    if decoupler is None or not decoupler.last_report:
        return None
    for site in decoupler.last_report["sites"].values():
        if site["probe"]:
            return site["probe"]["accuracy"]
    return None
