"""Mean-pooled sentence representations per site (DESIGN.md §2.8).

A sentence's representation at a site is the mean, over the sentence's own tokens, of that decoder layer's
residual-stream output when the model reads ``bos + text`` and nothing else. No variety tag is fed: the tag would
tell the model which variety it reads, and the point of the geometry is to see what the model makes of the text
itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from ..data.examples import pad
from ..method.hooks import capture
from ..model.sites import hidden_size

BATCH_SIZE = 64


def encode_texts(tok, texts: Sequence[str], max_len: int) -> list[list[int]]:
    """Token ids of each text as training encodes a segment (``" " + text``, at most ``max_len`` tokens)."""
    return [tok(" " + t.strip(), add_special_tokens=False)["input_ids"][:max_len] for t in texts]


@torch.no_grad()
def pool_representations(model, tok, texts: Sequence[str], sites: Sequence[str], *, max_len: int,
                         batch_size: int = BATCH_SIZE, autocast=None,
                         encoded: Sequence[Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """site -> (n, d) float32: the mean over each text's tokens (bos excluded) of the site's output.

    Each text is encoded as training encodes a segment (``" " + text``, at most ``max_len`` tokens) after the bos
    token, with no variety tag. Batches are right-padded and sorted by length; causal attention means padding
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
    body = getattr(model, "base_model", model)
    was_training = model.training
    model.eval()
    try:
        for b0 in range(0, len(order), batch_size):
            idx = order[b0:b0 + batch_size]
            ids = pad([bos + enc[i] for i in idx], pad_id)
            att = pad([[1] * (len(bos) + len(enc[i])) for i in idx], 0)
            text = pad([[0.0] * len(bos) + [1.0] * len(enc[i]) for i in idx], 0.0, dtype=torch.float32)
            with capture(model, sites, detach=True) as states, (autocast or contextlib.nullcontext()):
                body(input_ids=ids.to(device), attention_mask=att.to(device), use_cache=False)
            m = text.to(device)[..., None]                     # (B, T, 1)
            count = m.sum(1).clamp_min(1.0)                    # (B, 1)
            for s in sites:
                pooled = (states[s].float() * m).sum(1) / count  # (B, d)
                out[s][idx] = pooled.cpu().numpy()
    finally:
        model.train(was_training)
    return out
