"""Translate one text with one model, with the inference-time decoupling switch (docs/design.md §2.6).

The switch is a ``method.hooks.Projection``: h ← h − α·P·h at the chosen site(s). Off (α = 0, or no subspace)
attaches no hook, so the output is bit-identical to the plain model. Inputs a user types are checked first and
every problem is a ``ValueError`` whose message says what to change (the page shows it as a warning, never a
traceback).

A loaded model is shared by every browser session of the app, and a forward hook on it would be seen by any
other session decoding at the same moment; ``ModelHandle`` therefore carries a lock held for the whole
decode, so one session's projection never leaks into another's output.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.examples import Encoder
from ..data.varieties import ENG, variety
from ..method.hooks import Projection, capture
from ..model.prompts import encoder_for
from .decoding import translate
from .dialect_id import arabic_share

MAX_CHARS = 1000


LONG_FACTOR = 4   # the small model places 4 x max_len + 16 positions; beyond that it cannot read at all


@dataclass(frozen=True, eq=False)
class ModelHandle:
    """A loaded (model, tokenizer) pair, never mutated; ``lock`` serialises decoding (hooks are per model)."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    step: int
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass(frozen=True)
class Translation:
    text: str
    model: str
    step: int
    alpha: float                      # the projection strength actually applied (0 when off)
    sites: tuple[str, ...]            # where it was applied
    msa_share: float | None           # mean ‖Uᵀh‖/‖h‖ of the source tokens at the first site, as the next layer sees it
    seconds: float
    source_tokens: int = 0            # tokens in the source text
    read_tokens: int = 0              # tokens the model read (the encoder keeps the first ``max_len``)

    @property
    def truncated(self) -> bool:
        return self.read_tokens < self.source_tokens


def check_input(text: str, src: str, tgt: str, *, tokenizer, max_len: int) -> tuple[str, int]:
    """The cleaned text and its token count, or ValueError with a message a user can act on.

    Like the evaluation, a text over ``max_len`` tokens is read up to ``max_len`` (the caller says so); one
    over ``LONG_FACTOR`` times that is refused, since most of it would be silently ignored."""
    for code in (src, tgt):
        variety(code)  # unknown codes get the varieties table's message
    if src == tgt:
        raise ValueError(f"Source and target are both {variety(src).name}; pick two different varieties.")
    text = (text or "").strip()
    if not text:
        raise ValueError("The text is empty: type a sentence, or pick one from the test set.")
    if len(text) > MAX_CHARS:
        raise ValueError(f"The text is {len(text)} characters long; the models translate one sentence at a time "
                         f"(at most {MAX_CHARS} characters). Shorten it or split it into sentences.")
    share = arabic_share(text)
    if src != ENG and share < 0.5:
        raise ValueError(f"The source variety is {variety(src).name}, but the text is not in Arabic script "
                         f"({share:.0%} of its letters are Arabic). Type Arabic text, or choose English as the "
                         "source if the corpus has it.")
    if src == ENG and share > 0.5:
        raise ValueError("The source variety is English, but the text is in Arabic script; choose the Arabic "
                         "variety it is written in as the source.")
    n = len(tokenizer(" " + text, add_special_tokens=False)["input_ids"])
    if n > LONG_FACTOR * max_len:
        raise ValueError(f"The text is {n} tokens long, but the models were trained on sentences of at most "
                         f"{max_len} tokens and would read only the first {max_len}. Shorten it, or translate "
                         "it one sentence at a time.")
    return text, n


@torch.no_grad()
def _msa_share(handle: ModelHandle, enc: Encoder, src: str, tgt: str, text: str, projection: Projection
               ) -> float | None:
    """Mean energy share inside the MSA subspace of the source tokens at the first site, under the projection.

    Forward hooks run in registration order, so ``capture`` (entered after the projection) sees the states the
    next layer receives: with α = 1 the share is ~0."""
    if not projection.subspaces:
        return None
    site, sub = next(iter(projection.subspaces.items()))
    ids, lab = enc.prompt(src, tgt, text)
    device = next(handle.model.parameters()).device
    kw = {"position_ids": torch.tensor([enc.prompt_positions(ids, tgt)], device=device)} if enc.aligned else {}
    with projection.context(handle.model), capture(handle.model, [site], detach=True) as states:
        handle.model(input_ids=torch.tensor([ids], device=device), **kw)
    h = states[site][0].float()                                   # (T, d)
    mask = torch.tensor(np.asarray(lab) >= 0, device=h.device)
    return float(sub.energy_share(h[mask]).mean()) if mask.any() else None


def translate_text(handle: ModelHandle, codes: list[str], text: str, src: str, tgt: str, *, max_len: int,
                   max_new_tokens: int, projection: Projection | None = None) -> Translation:
    """Greedy translation of one checked text with ``handle``'s model, under ``projection`` (off by default).

    ``codes``: the experiment's variety codes (the encoder's label order). The projection's subspaces also give
    the MSA-share readout, whether the switch is on or off."""
    projection = projection or Projection()
    tok = handle.tokenizer
    text, n_tokens = check_input(text, src, tgt, tokenizer=tok, max_len=max_len)
    enc = encoder_for(handle.model, tok, list(codes), max_len)
    t0 = time.perf_counter()
    with handle.lock:
        out = translate(handle.model, tok, enc, [(src, tgt, text)], max_new_tokens=max_new_tokens, batch_size=1,
                        projection=projection)[0]
        share = _msa_share(handle, enc, src, tgt, text, projection)
    return Translation(out, handle.name, handle.step, projection.applied_alpha, projection.sites, share,
                       round(time.perf_counter() - t0, 3), n_tokens, min(n_tokens, max_len))
