"""Online re-estimation of the HR subspace and the decoupling objective (DESIGN.md §2.3-2.5).

A ``Decoupler`` serves the arms ``decoupled`` and ``random``: it keeps the current subspace per site, refits it
every ``probe_every`` steps on a fresh buffer of detached states (``collect_buffer``) with a ``ProbeFitter`` (or
draws the random control), and supplies the loss term λ·mean‖Uᵀh‖ (``penalty``) or, in ``project`` mode, the
hard projection. It never writes files: each refit is handed back as a ``Refit`` for the caller to store.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..data.examples import MODEL_INPUTS
from ..data.varieties import ENG, HR
from .hooks import capture, project
from .probe import ProbeConfig, ProbeFitter
from .subspace import Subspace, principal_angles_deg, random_subspace


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


@dataclass(frozen=True)
class DecoupleSettings:
    """What a ``Decoupler`` needs, derived from ``RunConfig`` (``config.derive``) plus the arm it serves."""

    arm: str                   # "decoupled" or "random"
    kind: str                  # "probe" (fitted) or "random" (the control): decided once, recorded in every refit
    sites: tuple[str, ...]
    lam: float
    rank: int
    probe_every: int
    probe_tokens: int
    probe_steps: int
    squared: bool
    penalty_tokens: str        # "all" | "non_hr"
    mode: str                  # "penalty" | "project"
    seed: int


@dataclass(frozen=True)
class Refit:
    """One refit as the caller stores it: a JSON-ready record (step, arm, kind, seconds, per-site rank, angles
    and probe report) and the basis tensors (``"<site>.basis"``, (d, k))."""

    record: dict
    tensors: dict[str, torch.Tensor]


class PenaltyTerm(NamedTuple):
    weighted: torch.Tensor     # λ · penalty: what is added to the loss
    value: torch.Tensor        # the penalty itself, for the log


class _Alone:
    """Distribution stand-in for a single process (``training.distributed.Dist`` has the same interface)."""

    is_main = True
    active = False

    def broadcast_matrix(self, matrix: torch.Tensor | None) -> torch.Tensor:
        assert matrix is not None
        return matrix


class Decoupler:
    """Keeps the current subspace per site, refits it online and supplies the loss term or projection.

    ``dist`` (``training.distributed.current()`` under a launcher) makes rank 0 fit and broadcast U, so every
    rank penalises the same subspace; alone, it is not needed."""

    def __init__(self, s: DecoupleSettings, dim: int, codes: list[str], probe_batches: Callable[[int], list[dict]],
                 dist=None):
        self.s = s
        self.dim = dim
        self.codes = codes
        self.probe_batches = probe_batches
        self.dist = dist or _Alone()
        self.fitters = {site: ProbeFitter(dim, ProbeConfig(rank=s.rank, steps=s.probe_steps, seed=s.seed))
                        for site in s.sites}
        self.current: dict[str, Subspace] = {}
        self.first: dict[str, Subspace] = {}
        self.last_report: dict | None = None

    def due(self, step: int) -> bool:
        if not self.current:
            return True
        return self.s.kind == "probe" and step % self.s.probe_every == 0

    def refit(self, model, step: int, autocast) -> Refit | None:
        """Estimate U at every site from a fresh buffer (or draw the random control once). Returns what to store,
        or None on a rank other than 0 (it receives rank 0's U and stores nothing)."""
        t0 = time.perf_counter()
        dist = self.dist
        if not dist.is_main:                       # rank 0 fits; every rank gets its U (distributed.py)
            for site in self.s.sites:
                sub = Subspace(basis=dist.broadcast_matrix(None), site=site, step=step, kind=self.s.kind)
                self.current[site] = sub
                self.first.setdefault(site, sub)
            return None
        if self.s.kind == "random":
            subs = {site: random_subspace(self.dim, self.s.rank, site=site, step=step, seed=self.s.seed + 7919)
                    for site in self.s.sites}
            reports = {site: None for site in self.s.sites}
        else:
            h, is_hr, var = collect_buffer(model, self.probe_batches(step), list(self.s.sites), self.codes,
                                           max_tokens=self.s.probe_tokens, autocast=autocast)
            subs, reports = {}, {}
            for site in self.s.sites:
                subs[site], rep = self.fitters[site].fit(h[site], is_hr, var, site=site, step=step)
                reports[site] = rep.to_dict()
        record = {"step": step, "arm": self.s.arm, "kind": self.s.kind, "seconds": 0.0, "sites": {}}
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
        self.last_report = record
        return Refit(record, tensors)

    def context(self, model):
        """The training-time hook: a hard projection in ``project`` mode, else state capture."""
        if self.s.mode == "project":
            return project(model, self.current, alpha=1.0)
        return capture(model, self.s.sites)

    def loss_term(self, states, batch) -> PenaltyTerm | None:
        """λ·mean‖Uᵀh‖ over the selected tokens (DESIGN.md §2.4), or None in ``project`` mode (no loss term)."""
        if self.s.mode != "penalty":
            return None
        var = batch["variety"]
        if self.s.penalty_tokens == "non_hr":
            non_hr = torch.tensor([c not in (HR, ENG) for c in self.codes])
            mask = (var >= 0) & non_hr[var.clamp_min(0)]
        else:
            mask = batch["attention_mask"].bool()
        value = penalty(states, {s: self.current[s] for s in self.s.sites},
                        mask.to(states[self.s.sites[0]].device), squared=self.s.squared)
        return PenaltyTerm(self.s.lam * value, value)

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

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        for site in self.s.sites:
            if f"current.{site}" in tensors:
                m = meta[site]
                self.current[site] = Subspace(tensors[f"current.{site}"], site=site, step=m["step"], kind=m["kind"])
                self.first[site] = Subspace(tensors[f"first.{site}"], site=site, step=m["first_step"],
                                            kind=m["kind"])
            prefix = f"fitter.{site}."
            fs = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            self.fitters[site].load_state_dict(fs)


def penalty(states: Mapping[str, torch.Tensor], subspaces: Mapping[str, Subspace], token_mask: torch.Tensor,
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
