"""The training loop shared by the base stage and the three arms, with online probe refits and resume.

Read top to bottom: ``train_loop`` runs ``steps`` optimiser steps over a fixed batch schedule;
a ``Decoupler`` (arms ``decoupled`` and ``random``) adds λ·mean‖Uᵀh‖ to the loss and, for
``decoupled``, refits the variational probe every ``probe_every`` steps on a fresh buffer
(DESIGN.md §2.3–2.5). Every ``ckpt_every`` steps the loop writes fp16 weights (for analysis) and a
resume state (fp32 weights, optimiser, step); a killed run restarted with the same command
continues from the last state and ends with the same numbers as an uninterrupted run, because
nothing depends on history except what the state holds (batches are a function of the step).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .corpus import ENG, HR
from .distributed import current as current_dist
from .examples import IGNORE, Encoder, Example, collate, phased_schedule
from .intervene import capture, penalty, project
from .probe import ProbeConfig, ProbeFitter, Subspace, principal_angles_deg, random_subspace
from .store import append_jsonl, load_tensors, read_json, read_jsonl, save_tensors, write_json, write_jsonl

ProgressFn = Callable[[dict], None]
MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids")  # batch keys a forward pass takes


# ---------------------------------------------------------------- weights <-> tensors


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


def save_checkpoint(path: Path, model: torch.nn.Module, *, step: int) -> None:
    """fp16 weights for analysis and evaluation (half the disk of fp32; resume uses the fp32 state)."""
    save_tensors(path / "weights.safetensors", weight_tensors(model, torch.float16), {"step": str(step)})


# ---------------------------------------------------------------- resume state


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for name, v in st.items():
            tensors[f"{idx}.{name}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return tensors, sd["param_groups"]


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": groups})


class ResumeState:
    """A folder holding everything needed to continue training, replaced atomically (new → swap → drop old)."""

    def __init__(self, root: Path):
        self.root = root
        self.new = root.with_name(root.name + ".new")
        self.old = root.with_name(root.name + ".old")

    def _complete(self, d: Path) -> bool:
        return (d / "state.json").exists()

    def location(self) -> Path | None:
        for d in (self.root, self.old):
            if d.exists() and self._complete(d):
                return d
        return None

    def save(self, model, opt, step: int, extra_tensors: dict[str, torch.Tensor], extra: dict) -> None:
        shutil.rmtree(self.new, ignore_errors=True)
        save_tensors(self.new / "model.safetensors", weight_tensors(model))
        opt_t, groups = _optimizer_tensors(opt)
        save_tensors(self.new / "optim.safetensors", opt_t)
        if extra_tensors:
            save_tensors(self.new / "extra.safetensors", extra_tensors)
        write_json(self.new / "state.json", {"step": step, "param_groups": groups, "extra": extra})
        if self.root.exists():
            shutil.rmtree(self.old, ignore_errors=True)
            self.root.rename(self.old)
        self.new.rename(self.root)
        shutil.rmtree(self.old, ignore_errors=True)

    def load(self, model, opt) -> tuple[int, dict[str, torch.Tensor], dict]:
        d = self.location()
        assert d is not None
        meta = read_json(d / "state.json")
        load_weights(model, load_tensors(d / "model.safetensors"))
        _load_optimizer(opt, load_tensors(d / "optim.safetensors"), meta["param_groups"])
        extra_t = load_tensors(d / "extra.safetensors") if (d / "extra.safetensors").exists() else {}
        return int(meta["step"]), extra_t, meta["extra"]

    def drop(self) -> None:
        for d in (self.root, self.new, self.old):
            shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- probe buffer


@torch.no_grad()
def collect_buffer(model, batches: list[dict], sites: list[str], codes: list[str], *, max_tokens: int,
                   autocast: contextlib.AbstractContextManager | None = None
                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor, np.ndarray]:
    """Detached token states at each site for Arabic-variety tokens, with HR flags and variety codes.

    English tokens (replay) are left out: the probe must separate MSA from the dialects, not
    Arabic from English."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    keep_codes = np.array(codes, dtype=object)
    arabic = torch.tensor([c != ENG for c in codes])
    states: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    labels: list[torch.Tensor] = []
    total = 0
    try:
        for b in batches:
            var = b["variety"]
            sel = var >= 0
            sel &= arabic[var.clamp_min(0)]
            with capture(model, sites, detach=True) as st, (autocast or contextlib.nullcontext()):
                model(**{k: b[k].to(device) for k in MODEL_INPUTS if k in b})
            for s in sites:
                states[s].append(st[s][sel.to(device)].float().cpu())
            labels.append(var[sel])
            total += int(sel.sum())
            if total >= max_tokens:
                break
    finally:
        model.train(was_training)
    lab = torch.cat(labels)[:max_tokens]
    var_codes = keep_codes[lab.numpy()]
    hr_index = codes.index(HR)
    return ({s: torch.cat(v)[:max_tokens] for s, v in states.items()}, lab == hr_index, var_codes)


# ---------------------------------------------------------------- the decoupler


@dataclass
class DecoupleSettings:
    arm: str                 # "decoupled" or "random"
    sites: list[str]
    lam: float
    rank: int
    probe_every: int
    probe_tokens: int
    probe_steps: int
    squared: bool
    penalty_tokens: str      # "all" | "non_hr"
    mode: str                # "penalty" | "project"
    seed: int


class Decoupler:
    """Keeps the current subspace per site, refits it online and supplies the loss term or projection."""

    def __init__(self, s: DecoupleSettings, dim: int, codes: list[str], arm_dir: Path,
                 probe_batches: Callable[[int], list[dict]]):
        self.s = s
        self.dim = dim
        self.codes = codes
        self.arm_dir = arm_dir
        self.probe_batches = probe_batches
        self.fitters = {site: ProbeFitter(dim, ProbeConfig(rank=s.rank, steps=s.probe_steps, seed=s.seed))
                        for site in s.sites}
        self.current: dict[str, Subspace] = {}
        self.first: dict[str, Subspace] = {}
        self.last_report: dict | None = None

    @property
    def refits_path(self) -> Path:
        return self.arm_dir / "refits.jsonl"

    def due(self, step: int) -> bool:
        if not self.current:
            return True
        return self.s.arm == "decoupled" and step % self.s.probe_every == 0

    def refit(self, model, step: int, autocast) -> dict:
        """Estimate U at every site from a fresh buffer (or draw the random control once)."""
        t0 = time.perf_counter()
        dist = current_dist()
        if not dist.is_main:                       # rank 0 fits; every rank gets its U (distributed.py)
            for site in self.s.sites:
                kind = "random" if self.s.arm == "random" else "probe"
                sub = Subspace(basis=dist.broadcast_matrix(None), site=site, step=step, kind=kind)
                self.current[site] = sub
                self.first.setdefault(site, sub)
            return {"index": -1, "step": step, "arm": self.s.arm, "seconds": 0.0, "sites": {}}
        if self.s.arm == "random":
            subs = {site: random_subspace(self.dim, self.s.rank, site=site, step=step, seed=self.s.seed + 7919)
                    for site in self.s.sites}
            reports = {site: None for site in self.s.sites}
        else:
            h, is_hr, var = collect_buffer(model, self.probe_batches(step), self.s.sites, self.codes,
                                           max_tokens=self.s.probe_tokens, autocast=autocast)
            subs, reports = {}, {}
            for site in self.s.sites:
                subs[site], rep = self.fitters[site].fit(h[site], is_hr, var, site=site, step=step)
                reports[site] = rep.to_dict()
        index = len(read_jsonl(self.refits_path))
        record = {"index": index, "step": step, "arm": self.s.arm, "seconds": 0.0, "sites": {}}
        tensors = {}
        for site, sub in subs.items():
            prev = self.current.get(site)
            first = self.first.get(site, sub)
            record["sites"][site] = {
                "rank": sub.rank,
                "angle_prev_deg": None if prev is None else float(principal_angles_deg(prev, sub).max()),
                "angle_first_deg": float(principal_angles_deg(first, sub).max()),
                "probe": reports[site],
            }
            tensors[f"{site}.basis"] = sub.basis
            if dist.active:
                dist.broadcast_matrix(sub.basis)
            self.current[site] = sub
            self.first.setdefault(site, sub)
        record["seconds"] = round(time.perf_counter() - t0, 3)
        save_tensors(self.arm_dir / "refits" / f"refit-{index:04d}.safetensors", tensors,
                     {"step": str(step), "arm": self.s.arm})
        append_jsonl(self.refits_path, record)
        self.last_report = record
        return record

    def context(self, model):
        """The training-time hook: a hard projection in ``project`` mode, else state capture."""
        if self.s.mode == "project":
            return project(model, self.current, alpha=1.0)
        return capture(model, self.s.sites)

    def loss_term(self, states, batch) -> torch.Tensor:
        var = batch["variety"]
        if self.s.penalty_tokens == "non_hr":
            non_hr = torch.tensor([c not in (HR, ENG) for c in self.codes])
            mask = (var >= 0) & non_hr[var.clamp_min(0)]
        else:
            mask = batch["attention_mask"].bool()
        return penalty(states, {s: self.current[s] for s in self.s.sites}, mask.to(states[self.s.sites[0]].device),
                       squared=self.s.squared)

    # resume support: the current and first subspaces plus each fitter's warm-start state
    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        t = {}
        for site in self.s.sites:
            if site in self.current:
                t[f"current.{site}"] = self.current[site].basis
                t[f"first.{site}"] = self.first[site].basis
            for k, v in self.fitters[site].state_dict().items():
                t[f"fitter.{site}.{k}"] = v
        meta = {site: {"step": self.current[site].step, "first_step": self.first[site].step,
                       "kind": self.current[site].kind} for site in self.current}
        return t, meta

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict, resume_step: int) -> None:
        for site in self.s.sites:
            if f"current.{site}" in tensors:
                m = meta[site]
                self.current[site] = Subspace(tensors[f"current.{site}"], site=site, step=m["step"], kind=m["kind"])
                self.first[site] = Subspace(tensors[f"first.{site}"], site=site, step=m["first_step"],
                                            kind=m["kind"])
            prefix = f"fitter.{site}."
            fs = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            self.fitters[site].load_state_dict(fs)
        # refits recorded after the resume point will be redone
        if current_dist().is_main:
            kept = [r for r in read_jsonl(self.refits_path) if r["step"] < resume_step]
            write_jsonl(self.refits_path, kept)


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


@dataclass
class LoopSpec:
    name: str                         # "base" or an arm name (labels progress and logs)
    out_dir: Path                     # checkpoints/, state/, log.jsonl go here
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


def train_loop(model, tok, encoder: Encoder, examples: list[Example], spec: LoopSpec, *,
               decoupler: Decoupler | None = None, progress: ProgressFn | None = None,
               stop_after: int | None = None) -> dict:
    """Train ``model`` in place for ``spec.steps`` steps (resuming if a state exists). Returns a summary.

    ``stop_after`` ends the process-level loop early after that many steps in this call (used by the
    resume test to simulate a kill at a known point)."""
    device = next(model.parameters()).device
    dist = current_dist()
    encoded = encoder.encode_all(examples)
    schedule = phased_schedule([len(e[0]) for e in encoded], batch_size=spec.batch_size, steps=spec.steps,
                               seed=spec.seed, warm_indices=list(spec.warm_indices), warm_steps=spec.warm_steps)
    opt = make_optimizer(model, spec)
    state = ResumeState(spec.out_dir / "state")
    log_path = spec.out_dir / "log.jsonl"
    start = 0
    if state.location() is not None:
        start, extra_t, extra = state.load(model, opt)
        if decoupler is not None:
            decoupler.restore(extra_t, extra.get("decoupler", {}), start)
        if dist.is_main:
            write_jsonl(log_path, [r for r in read_jsonl(log_path) if r["step"] < start])
    elif dist.is_main:
        for stale in (log_path, spec.out_dir / "refits.jsonl"):
            stale.unlink(missing_ok=True)
        shutil.rmtree(spec.out_dir / "refits", ignore_errors=True)
        shutil.rmtree(spec.out_dir / "checkpoints", ignore_errors=True)
    dist.barrier()
    net, opt = dist.prepare(model, opt)   # DDP under a launcher; else (model, opt) unchanged
    autocast = autocast_for(model, spec.bf16)
    model.train()
    t_start = time.perf_counter()
    tokens = 0
    step = start
    done_here = 0
    last_loss = float("nan")
    while step < spec.steps:
        if decoupler is not None and decoupler.due(step):
            rec = decoupler.refit(model, step, autocast)
            if progress:
                progress({"event": "refit", "stage": spec.name, "step": step, "refit": rec})
        for g in opt.param_groups:
            g["lr"] = lr_at(step, spec)
        batch = collate([encoded[i] for i in dist.shard(schedule[step])], tok.pad_token_id)
        inputs = {k: batch[k].to(device) for k in (*MODEL_INPUTS, "labels") if k in batch}
        hook = decoupler.context(model) if decoupler is not None else contextlib.nullcontext({})
        with hook as states, autocast:
            # under DDP the forward must go through the wrapper (its hooks average the gradients)
            loss_mt = net(**inputs).loss.float() if dist.active else lm_loss(model, inputs)
        loss = loss_mt
        pen = None
        if decoupler is not None and decoupler.s.mode == "penalty":
            pen = decoupler.loss_term(states, batch)
            loss = loss_mt + decoupler.s.lam * pen
        opt.zero_grad(set_to_none=True)
        dist.backward(loss)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        opt.step()
        step += 1
        done_here += 1
        tokens += sum(len(encoded[i][0]) for i in schedule[step - 1])   # the global batch
        last_loss = loss_mt.item()  # a sync point: once per step is fine on CPU
        rec = {"step": step, "loss": round(last_loss, 5), "lr": lr_at(step - 1, spec), "grad_norm": round(float(gnorm), 4),
               "penalty": None if pen is None else round(pen.item(), 5),
               "elapsed": round(time.perf_counter() - t_start, 3)}
        if dist.is_main:
            append_jsonl(log_path, rec)
        if (step % spec.ckpt_every == 0 or step == spec.steps) and dist.is_main:
            if spec.save_checkpoints:
                save_checkpoint(spec.out_dir / "checkpoints" / f"step-{step:06d}", model, step=step)
            extra_t, extra = ({}, {})
            if decoupler is not None:
                extra_t, meta = decoupler.state()
                extra = {"decoupler": meta}
            state.save(model, opt, step, extra_t, extra)
        if progress:
            elapsed = time.perf_counter() - t_start
            rate = done_here / elapsed if elapsed > 0 else 0.0
            progress({"event": "step", "stage": spec.name, "step": step, "total": spec.steps, "loss": last_loss,
                      "penalty": rec["penalty"], "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
                      "eta_s": (spec.steps - step) / rate if rate > 0 else None,
                      "probe_accuracy": _probe_acc(decoupler)})
        if stop_after is not None and done_here >= stop_after and step < spec.steps:
            raise KeyboardInterrupt(f"stopped after {done_here} steps (test hook)")
    wall = time.perf_counter() - t_start
    return {"steps": spec.steps, "resumed_from": start, "wall_s": round(wall, 2), "tokens": tokens,
            "final_loss": last_loss}


def _probe_acc(decoupler: Decoupler | None) -> float | None:
    if decoupler is None or not decoupler.last_report:
        return None
    for site in decoupler.last_report["sites"].values():
        if site["probe"]:
            return site["probe"]["accuracy"]
    return None
