"""Greedy (or beam) decoding of many prompts, batched, optionally under the decoupling projection."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..data.examples import Encoder, pad
from ..method.hooks import Projection


@torch.no_grad()
def translate(model, tok, encoder: Encoder, items: Sequence[tuple[str, str, str]], *, max_new_tokens: int,
              num_beams: int = 1, batch_size: int = 32, projection: Projection | None = None,
              on_batch: Callable[[int], None] | None = None) -> list[str]:
    """Greedy (or beam) translations of ``(src, tgt, text)`` items, in order.

    Prompts are sorted by length and left-padded per batch; ``projection`` (the inference-time decoupling
    switch) is applied around each batch's decoding. A model
    trained with aligned positions is decoded by ``greedy_decode`` (``generate`` would renumber
    the positions); any other model by ``generate``."""
    if encoder.aligned and num_beams > 1:
        raise ValueError("beam search is not available for the built-in model (it is trained with aligned "
                         "target positions, which generate() would renumber); use --num-beams 1")
    model.eval()
    device = next(model.parameters()).device
    prompts = [encoder.prompt(s, t, x)[0] for s, t, x in items]
    positions = [encoder.prompt_positions(p, t) for p, (_, t, _) in zip(prompts, items)] if encoder.aligned else None
    order = np.argsort([len(p) for p in prompts], kind="stable")
    out: list[str] = [""] * len(items)
    for b0 in range(0, len(order), batch_size):
        idx = order[b0:b0 + batch_size]
        T = max(len(prompts[i]) for i in idx)
        ids = pad([prompts[i] for i in idx], tok.pad_token_id, side="left")
        att = pad([[1] * len(prompts[i]) for i in idx], 0, side="left")
        pos = pad([positions[i] for i in idx], 0, side="left") if positions is not None else None
        with projection.context(model) if projection is not None else contextlib.nullcontext():
            if positions is not None:
                limits = torch.tensor([output_limit(len(prompts[i]), max_new_tokens) for i in idx])
                new = greedy_decode(model, ids.to(device), att.to(device), pos.to(device),
                                    max_new_tokens=max_new_tokens, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
                                    row_limits=limits)
            else:
                gen = model.generate(input_ids=ids.to(device), attention_mask=att.to(device),
                                     max_new_tokens=max_new_tokens, do_sample=False, num_beams=num_beams,
                                     eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
                new = gen[:, T:]
        new = new.cpu()
        for r, i in enumerate(idx):
            out[i] = tok.decode(new[r], skip_special_tokens=True).strip()
        if on_batch:
            on_batch(len(idx))
    return out


def output_limit(prompt_len: int, max_new_tokens: int) -> int:
    """New tokens allowed for a prompt: twice its length plus 8, at most ``max_new_tokens``.

    A translation between these varieties is never that much longer than its source, while a small model
    that falls into a loop ("the the the ...") would otherwise run to ``max_new_tokens`` and hold up its
    whole batch."""
    return min(max_new_tokens, 2 * prompt_len + 8)


@torch.no_grad()
def greedy_decode(model, ids: torch.Tensor, att: torch.Tensor, pos: torch.Tensor, *, max_new_tokens: int,
                  eos_id: int, pad_id: int, row_limits: torch.Tensor | None = None) -> torch.Tensor:
    """Greedy decoding with a KV cache and explicit position ids (left-padded prompts).

    Each new token's position is its row's last position + 1. Rows that have produced ``eos_id``
    (or ``row_limits[r]`` tokens) are padded with ``pad_id`` until every row is done. Returns the
    new tokens, (B, ≤ max_new_tokens)."""
    B = ids.shape[0]
    limits = row_limits.to(ids.device) if row_limits is not None else torch.full((B,), max_new_tokens,
                                                                                  device=ids.device)
    cache_arg = "cache"     # the KV cache's argument and output name in transformers 5.2x
    out = model(input_ids=ids, attention_mask=att, position_ids=pos, use_cache=True, logits_to_keep=1)
    past = out[cache_arg]
    nxt = out.logits[:, -1].argmax(-1)
    cur = pos[:, -1]
    done = torch.zeros(B, dtype=torch.bool, device=ids.device)
    steps: list[torch.Tensor] = []
    for _ in range(max_new_tokens):
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        steps.append(nxt)
        done |= (nxt == eos_id) | (limits <= len(steps))
        if bool(done.all()) or len(steps) == max_new_tokens:
            break
        att = torch.cat([att, torch.ones((B, 1), dtype=att.dtype, device=att.device)], dim=1)
        cur = cur + 1
        out = model(input_ids=nxt[:, None], attention_mask=att, position_ids=cur[:, None], use_cache=True,
                    **{cache_arg: past})
        past = out[cache_arg]
        nxt = out.logits[:, -1].argmax(-1)
    if not steps:
        return ids.new_zeros((B, 0))
    return torch.stack(steps, dim=1)
