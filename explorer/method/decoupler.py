"""Online re-estimation of the HR subspace and the decoupling objective (docs/design.md §2.3-2.5).

A ``Decoupler`` serves a decoupled arm (``kind="probe"``) or the random control (``kind="random"``). It keeps
the current subspace per site and supplies the loss term λ·mean‖Uᵀh‖ (``penalty``) or, in ``project`` mode, the
hard projection. It never writes files: each refit is handed back as a ``Refit`` for the caller to store.

- A decoupled arm refits every ``probe_every`` steps on a fresh buffer of detached states (``collect_buffer``)
  with a ``ProbeFitter``. A **gate** decides whether the new estimate replaces U: its held-out accuracy (held out
  by sentence) must beat the majority rate at the one-sided binomial level ``gate`` and its variational code must
  be shorter than the uniform code (compression > 1). Before the first accepted fit there is no U and no penalty.
- The random control is **matched** to a decoupled arm: it draws a new random subspace exactly when that arm
  accepted a new U (``redraws``: step -> site -> rank), of the same rank, one independent draw per site seeded
  from (seed, step, site), and applies no penalty before the first one. Without a decoupled arm to follow it
  redraws every ``probe_every`` steps.
"""

from __future__ import annotations

import contextlib
import math
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import torch

from ..data.examples import IGNORE, MODEL_INPUTS
from ..data.varieties import ENG, HR
from .hooks import capture, project
from .probe import ProbeConfig, ProbeFitter, ProbeReport
from .subspace import Subspace, principal_angles_deg, random_subspace

PENALTY_FORMS = ("norm", "normalised", "centred")


@torch.no_grad()
def collect_buffer(model, batches: list[dict], sites: list[str], codes: list[str], *, max_tokens: int,
                   seed: int = 0, autocast: contextlib.AbstractContextManager | None = None
                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor, np.ndarray, torch.Tensor]:
    """Detached token states at each site for Arabic-variety tokens, with HR flags, variety codes and sentence ids.

    Only the *source* side of each example counts (the tokens the model reads, those without an LM label): in a
    translation example the two varieties also differ in role (read vs written, and their positions), and a probe
    given both sides learns the role as much as the variety — held out by sentence, such a probe can fall far
    below chance. Every batch is read (no early stop, so no length bias from the batches' order), then
    ``max_tokens`` tokens are drawn uniformly (seeded) from all of them. States stay on the model's device (the
    probe is fitted there). English tokens (replay) are left out: the probe must separate MSA from the dialects,
    not Arabic from English.
    Returns ({site: (N, d) float32}, is_hr (N,) bool, variety codes (N,), sentence group ids (N,))."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    keep_codes = np.array(codes, dtype=object)
    arabic = torch.tensor([c != ENG for c in codes])
    states: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    labels: list[torch.Tensor] = []
    groups: list[torch.Tensor] = []
    try:
        for b in batches:
            var = b["variety"]
            sel = (var >= 0) & arabic[var.clamp_min(0)] & (b["labels"] == IGNORE)   # the source side
            with capture(model, sites, detach=True) as st, (autocast or contextlib.nullcontext()):
                model(**{k: b[k].to(device) for k in MODEL_INPUTS if k in b})
            for s in sites:
                states[s].append(st[s][sel.to(device)].float())
            labels.append(var[sel])
            group = b.get("group", torch.arange(len(var)))
            groups.append(group[:, None].expand_as(var)[sel])
    finally:
        model.train(was_training)
    lab = torch.cat(labels)
    grp = torch.cat(groups)
    pick = torch.arange(len(lab))
    if len(lab) > max_tokens:
        g = torch.Generator().manual_seed(seed)
        pick = torch.sort(torch.randperm(len(lab), generator=g)[:max_tokens]).values
    lab, grp = lab[pick], grp[pick]
    hr_index = codes.index(HR)
    h = {s: torch.cat(v)[pick.to(device)] for s, v in states.items()}
    return h, lab == hr_index, keep_codes[lab.numpy()], grp


def gate_threshold(chance: float, n: int, level: float) -> float:
    """The held-out accuracy a probe must exceed to beat the majority rate ``chance`` at the one-sided ``level``
    (normal approximation of the binomial, n held-out tokens); ``level`` 0 accepts everything."""
    if level <= 0 or n <= 0:
        return -math.inf
    z = NormalDist().inv_cdf(1.0 - level)
    return chance + z * math.sqrt(chance * (1.0 - chance) / n)


@dataclass(frozen=True)
class DecoupleSettings:
    """What a ``Decoupler`` needs, derived from ``RunConfig`` (``config.derive``) plus the arm it serves."""

    arm: str                   # e.g. "decoupled", "decoupled-lam0.1", "random"
    kind: str                  # "probe" (fitted) or "random" (the control): decided once, recorded in every refit
    sites: tuple[str, ...]
    lam: float
    rank: int
    probe_every: int
    probe_tokens: int
    probe_steps: int
    squared: bool
    penalty_tokens: str        # "all" | "non_hr"
    penalty_form: str          # "norm" | "normalised" | "centred"
    mode: str                  # "penalty" | "project"
    gate: float                # significance level of the gate (0 = accept every fit)
    seed: int
    redraws: Mapping[int, Mapping[str, int]] | None = field(default=None, compare=False)  # random: step -> site -> rank


@dataclass(frozen=True)
class Refit:
    """One refit as the caller stores it: a JSON-ready record (step, arm, kind, seconds, per-site rank, angles, the
    gate's decision and the probe report) and the basis tensors (``"<site>.basis"``, (d, k))."""

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


def _site_seed(seed: int, step: int, site: str) -> tuple[int, int, int]:
    return seed, step, zlib.crc32(site.encode())


class Decoupler:
    """Keeps the current subspace per site, refits it online and supplies the loss term or projection.

    ``dist`` (``training.distributed.current()`` under a launcher) makes rank 0 fit and broadcast U, so every
    rank penalises the same subspace; alone, it is not needed."""

    def __init__(self, s: DecoupleSettings, dim: int, codes: list[str], probe_batches: Callable[[int], list[dict]],
                 dist=None):
        if s.penalty_form not in PENALTY_FORMS:
            raise ValueError(f"penalty_form must be one of {PENALTY_FORMS}; got {s.penalty_form!r}")
        self.s = s
        self.dim = dim
        self.codes = codes
        self.probe_batches = probe_batches
        self.dist = dist or _Alone()
        self.fitters = {site: ProbeFitter(dim, ProbeConfig(rank=s.rank, steps=s.probe_steps, seed=s.seed))
                        for site in s.sites}
        self.current: dict[str, Subspace] = {}     # the accepted subspace per site (empty: no penalty yet)
        self.first: dict[str, Subspace] = {}
        self.last_report: dict | None = None

    @property
    def active(self) -> bool:
        """Whether a subspace is in force (before the first accepted fit the arm trains like the baseline)."""
        return bool(self.current)

    def due(self, step: int) -> bool:
        if self.s.kind == "random" and self.s.redraws is not None:
            return step in self.s.redraws
        return step % self.s.probe_every == 0

    def refit(self, model, step: int, autocast) -> Refit | None:
        """Estimate U at every site from a fresh buffer (or draw the random control). Returns what to store, or None
        on a rank other than 0 (it receives rank 0's decision and U, and stores nothing)."""
        t0 = time.perf_counter()
        dist = self.dist
        if not dist.is_main:                       # rank 0 fits; every rank gets its decision and U
            for site in self.s.sites:
                basis = dist.broadcast_matrix(None)
                if basis.numel():                  # an empty matrix: the gate kept the previous U
                    sub = Subspace(basis=basis, site=site, step=step, kind=self.s.kind)
                    self.current[site] = sub
                    self.first.setdefault(site, sub)
            return None
        reports: dict[str, ProbeReport | None] = {}
        if self.s.kind == "random":
            ranks = (self.s.redraws or {}).get(step, {})
            subs = {site: random_subspace(self.dim, int(ranks.get(site, self.s.rank)), site=site, step=step,
                                          seed=_site_seed(self.s.seed, step, site))
                    for site in self.s.sites}
            reports = {site: None for site in self.s.sites}
        else:
            h, is_hr, var, groups = collect_buffer(model, self.probe_batches(step), list(self.s.sites), self.codes,
                                                   max_tokens=self.s.probe_tokens, seed=self.s.seed * 1_000_003 + step,
                                                   autocast=autocast)
            subs = {}
            for site in self.s.sites:
                subs[site], reports[site] = self.fitters[site].fit(h[site], is_hr, var, site=site, step=step,
                                                                   groups=groups)
        record = {"step": step, "arm": self.s.arm, "kind": self.s.kind, "seconds": 0.0, "sites": {}}
        tensors = {}
        for site, sub in subs.items():
            rep = reports[site]
            gate = self._gate(rep)
            prev = self.current.get(site)
            first = self.first.get(site, sub)
            record["sites"][site] = {
                "rank": sub.rank,
                "angle_prev_deg": None if prev is None else float(principal_angles_deg(prev, sub).max()),
                "angle_first_deg": float(principal_angles_deg(first, sub).max()),
                "gate": gate,
                "probe": None if rep is None else rep.to_dict(),
            }
            tensors[f"{site}.basis"] = sub.basis
            if gate["accepted"]:
                self.current[site] = sub
                self.first.setdefault(site, sub)
            if dist.active:
                dist.broadcast_matrix(sub.basis if gate["accepted"] else torch.zeros(0, 0))
        record["accepted"] = all(v["gate"]["accepted"] for v in record["sites"].values())
        record["seconds"] = round(time.perf_counter() - t0, 3)
        self.last_report = record
        return Refit(record, tensors)

    def _gate(self, rep: ProbeReport | None) -> dict:
        """The gate's decision on one fit (a random draw is always accepted: it follows the decoupled arm's)."""
        if rep is None:
            return {"accepted": True, "reason": "random draw"}
        threshold = gate_threshold(rep.chance_rate, rep.n_heldout, self.s.gate)
        above = rep.accuracy > threshold
        compresses = rep.compression > 1.0
        accepted = above and compresses if self.s.gate > 0 else True
        reason = ("accepted" if accepted else
                  "held-out accuracy not above chance" if not above else "code no shorter than the uniform code")
        return {"accepted": accepted, "reason": reason, "accuracy": rep.accuracy, "chance": rep.chance_rate,
                "threshold": None if math.isinf(threshold) else threshold, "compression": rep.compression,
                "n_heldout": rep.n_heldout, "level": self.s.gate}

    def context(self, model):
        """The training-time hook: a hard projection in ``project`` mode (once a U is in force), else state capture."""
        if self.s.mode == "project":
            return project(model, self.current, alpha=1.0) if self.current else contextlib.nullcontext({})
        return capture(model, self.s.sites)

    def loss_term(self, states, batch) -> PenaltyTerm | None:
        """λ·penalty over the selected tokens (docs/design.md §2.4), or None in ``project`` mode or before a U is in
        force (the arm then trains exactly like the baseline)."""
        if self.s.mode != "penalty" or not self.current:
            return None
        var = batch["variety"]
        if self.s.penalty_tokens == "non_hr":
            non_hr = torch.tensor([c not in (HR, ENG) for c in self.codes])
            mask = (var >= 0) & non_hr[var.clamp_min(0)]
        else:
            mask = batch["attention_mask"].bool()
        value = penalty(states, {s: self.current[s] for s in self.s.sites if s in self.current},
                        mask.to(states[self.s.sites[0]].device), squared=self.s.squared, form=self.s.penalty_form)
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
            *, squared: bool = False, form: str = "norm") -> torch.Tensor:
    """Mean over selected tokens of a size of Uᵀh, averaged over sites (docs/design.md §2.4). ``form``:

    - ``norm``: ‖Uᵀh‖₂, the paper's penalty;
    - ``normalised``: ‖Uᵀh‖₂ / ‖h‖₂, blind to the stream's overall scale (a shrinking h, which the next RMSNorm
      undoes, cannot lower it);
    - ``centred``: ‖Uᵀ(h − h̄)‖₂ with h̄ the mean over the selected tokens of the batch: the spread along U, i.e. the
      information that separates varieties, rather than a shared offset the model can remove without forgetting it.

    ``squared`` squares the per-token value. states: site -> (B, T, d); token_mask: (B, T) bool."""
    terms = []
    m = token_mask.to(torch.float32)
    denom = m.sum().clamp_min(1.0)
    for site, sub in subspaces.items():
        h = states[site]
        c = sub.coords(h).float()                        # (B, T, k)
        if form == "centred":
            mean = (c * m[..., None]).sum((0, 1)) / denom
            c = c - mean
        sq = (c * c).sum(-1)                             # (B, T)
        if form == "normalised":
            sq = sq / (h.float().pow(2).sum(-1) + 1e-12)
        per_tok = sq if squared else torch.sqrt(sq + 1e-12)
        terms.append((per_tok * m).sum() / denom)
    return torch.stack(terms).mean()
