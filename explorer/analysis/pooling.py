"""Mean-pooled sentence representations per site (docs/design.md §2.8).

A sentence's representation at a site is the mean, over the sentence's own tokens, of that decoder layer's
residual-stream output when the model reads ``bos + text`` and nothing else. No variety tag is fed: the tag would
tell the model which variety it reads, and the point of the geometry is to see what the model makes of the text
itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.examples import pad
from ..method.hooks import capture
from ..model.sites import hidden_size

BATCH_SIZE = 64


def encode_texts(tok, texts: Sequence[str], max_len: int) -> list[list[int]]:
    """Token ids of each text as training encodes a segment (``" " + text``, at most ``max_len`` tokens)."""
    return [tok(" " + t.strip(), add_special_tokens=False)["input_ids"][:max_len] for t in texts]


@dataclass(frozen=True)
class Pooled:
    """What one pass over the analysis set gives: pooled sentence vectors, and a sample of token states (for the
    post-hoc probe) with the analysis row each sampled token comes from."""

    sentences: dict[str, np.ndarray]     # site -> (n, d) float32
    tokens: dict[str, np.ndarray]        # site -> (m, d) float32
    token_rows: np.ndarray               # (m,) analysis row of each sampled token


@torch.no_grad()
def pool_representations(model, tok, texts: Sequence[str], sites: Sequence[str], *, max_len: int,
                         batch_size: int = BATCH_SIZE, autocast=None,
                         encoded: Sequence[Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """site -> (n, d) float32: the mean over each text's tokens (bos excluded) of the site's output
    (``pool_and_sample`` without the token sample)."""
    return pool_and_sample(model, tok, texts, sites, max_len=max_len, batch_size=batch_size, autocast=autocast,
                           encoded=encoded).sentences


@torch.no_grad()
def pool_and_sample(model, tok, texts: Sequence[str], sites: Sequence[str], *, max_len: int,
                    batch_size: int = BATCH_SIZE, autocast=None, encoded: Sequence[Sequence[int]] | None = None,
                    tokens_per_text: int = 0, seed: int = 0,
                    heads: Sequence[Sequence[int]] | None = None) -> Pooled:
    """Pooled vectors of every text at every site, and up to ``tokens_per_text`` token states per text (drawn
    uniformly, seeded) for a token-level probe.

    Each text is encoded as training encodes a segment (``" " + text``, at most ``max_len`` tokens) after the bos
    token, with no variety tag; or, with ``heads``, after its own head (e.g. ``[bos, <arz>]``, what a translation
    prompt puts before its source: ``Encoder.prefix``), the pooled vector and the token states then covering the
    text's tokens only. Batches are right-padded and sorted by length; causal attention means padding
    never reaches the real tokens, and the attention mask keeps it out of the mean. Only the decoder body runs
    (``model.base_model``): the LM head's logits, (B, T, vocab), would cost more than all the layers of a small
    model and are not needed. ``encoded`` (from ``encode_texts``) saves re-tokenising the same texts per model."""
    device = next(model.parameters()).device
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    enc = list(encoded) if encoded is not None else encode_texts(tok, texts, max_len)
    order = sorted(range(len(enc)), key=lambda i: len(enc[i]))
    d = hidden_size(model)
    out = {s: np.zeros((len(enc), d), dtype=np.float32) for s in sites}
    rng = np.random.default_rng(seed)
    picks = {i: np.sort(rng.permutation(len(enc[i]))[:tokens_per_text]) + len(bos) for i in range(len(enc))}
    tokens: dict[str, list[np.ndarray]] = {s: [] for s in sites}
    rows: list[np.ndarray] = []
    body = getattr(model, "base_model", model)
    was_training = model.training
    model.eval()
    head = [list(h) for h in heads] if heads is not None else [bos] * len(enc)
    if heads is not None:   # token positions after each text's own head
        picks = {i: p - len(bos) + len(head[i]) for i, p in picks.items()}
    try:
        for b0 in range(0, len(order), batch_size):
            idx = order[b0:b0 + batch_size]
            ids = pad([head[i] + enc[i] for i in idx], pad_id)
            att = pad([[1] * (len(head[i]) + len(enc[i])) for i in idx], 0)
            text = pad([[0.0] * len(head[i]) + [1.0] * len(enc[i]) for i in idx], 0.0, dtype=torch.float32)
            with capture(model, sites, detach=True) as states, (autocast or contextlib.nullcontext()):
                body(input_ids=ids.to(device), attention_mask=att.to(device), use_cache=False)
            m = text.to(device)[..., None]                     # (B, T, 1)
            count = m.sum(1).clamp_min(1.0)                    # (B, 1)
            r_idx = np.concatenate([np.full(len(picks[i]), r) for r, i in enumerate(idx)]) if tokens_per_text else None
            t_idx = np.concatenate([picks[i] for i in idx]) if tokens_per_text else None
            for s in sites:
                h = states[s].float()                          # (B, T, d)
                out[s][idx] = ((h * m).sum(1) / count).cpu().numpy()
                if tokens_per_text:
                    tokens[s].append(h[torch.as_tensor(r_idx), torch.as_tensor(t_idx)].cpu().numpy())
            if tokens_per_text:
                rows.append(np.asarray(idx)[r_idx])
    finally:
        model.train(was_training)
    empty = np.zeros((0, d), dtype=np.float32)
    return Pooled(out, {s: np.concatenate(v) if v else empty for s, v in tokens.items()},
                  np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64))
