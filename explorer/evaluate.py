"""Decoding, chrF++ and the paired bootstrap between arms (DESIGN.md §2.7).

chrF++ is sacrebleu's ``CHRF(word_order=2)`` (character n-grams up to 6, word n-grams up to 2,
β = 2; Popović 2017). The bootstrap resamples test sentences with sacrebleu's own resampler and
seed (``SACREBLEU_SEED``, default 12345), so two systems scored on the same references get the
same resamples: the arm-vs-baseline Δ of each resample gives the 95% percentile interval.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sacrebleu.metrics import CHRF

from .examples import Encoder, Example


def chrf_metric() -> CHRF:
    return CHRF(word_order=2)


def chrf_signature() -> str:
    """sacrebleu's signature string (it needs one scoring call to know the number of references)."""
    m = chrf_metric()
    m.corpus_score(["a"], [["a"]])
    return str(m.get_signature())


def corpus_chrf(hyps: Sequence[str], refs: Sequence[str]) -> float:
    return float(chrf_metric().corpus_score(list(hyps), [list(refs)]).score)


def sentence_chrf(hyp: str, ref: str) -> float:
    return float(chrf_metric().sentence_score(hyp, [ref]).score)


def _resampled_scores(hyps: Sequence[str], refs: Sequence[str], n: int) -> np.ndarray:
    from sacrebleu.significance import _bootstrap_resample  # sacrebleu's resampler, seeded by SACREBLEU_SEED

    metric = chrf_metric()
    stats = metric._extract_corpus_statistics(list(hyps), [list(refs)])
    _, scores = _bootstrap_resample(stats, metric, n_samples=n)
    return np.array([s.score for s in scores], dtype=np.float64)


@dataclass(frozen=True)
class Delta:
    delta: float          # chrF++(system) − chrF++(baseline) on the full test set
    low: float            # 2.5th percentile of the bootstrap Δ
    high: float           # 97.5th percentile
    p_value: float        # two-sided, (count + 1) / (n + 1)
    n_samples: int

    def to_dict(self) -> dict:
        return {"delta": self.delta, "low": self.low, "high": self.high, "p_value": self.p_value,
                "n_samples": self.n_samples}


def paired_bootstrap(system: Sequence[str], baseline: Sequence[str], refs: Sequence[str], *,
                     n_samples: int = 1000) -> Delta:
    """Paired bootstrap of the chrF++ difference (Koehn 2004), using sacrebleu's resampler."""
    if not (len(system) == len(baseline) == len(refs)):
        raise ValueError("system, baseline and references must have the same length")
    real = corpus_chrf(system, refs) - corpus_chrf(baseline, refs)
    d = _resampled_scores(system, refs, n_samples) - _resampled_scores(baseline, refs, n_samples)
    centred = d - d.mean()
    p = (np.sum(np.abs(centred) >= abs(real)) + 1) / (n_samples + 1)
    lo, hi = np.percentile(d, [2.5, 97.5])
    return Delta(round(real, 4), round(float(lo), 4), round(float(hi), 4), round(float(p), 4), n_samples)


# ---------------------------------------------------------------- decoding


@torch.no_grad()
def translate(model, tok, encoder: Encoder, items: Sequence[tuple[str, str, str]], *, max_new_tokens: int,
              num_beams: int = 1, batch_size: int = 32, intervention: Callable[[], contextlib.AbstractContextManager]
              | None = None, on_batch: Callable[[int], None] | None = None) -> list[str]:
    """Greedy (or beam) translations of ``(src, tgt, text)`` items, in order.

    Prompts are sorted by length and left-padded per batch; ``intervention`` returns a fresh
    context (e.g. the inference-time projection) entered around each batch's decoding. A model
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
        ids = torch.full((len(idx), T), tok.pad_token_id, dtype=torch.long)
        att = torch.zeros((len(idx), T), dtype=torch.long)
        pos = torch.zeros((len(idx), T), dtype=torch.long)
        for r, i in enumerate(idx):
            p = prompts[i]
            ids[r, T - len(p):] = torch.tensor(p)
            att[r, T - len(p):] = 1
            if positions is not None:
                pos[r, T - len(p):] = torch.tensor(positions[i])
        ctx = intervention() if intervention is not None else contextlib.nullcontext()
        with ctx:
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


def _cache_argument(model) -> str:
    """The name of the KV-cache argument and output: ``cache`` from transformers 5.2x on, ``past_key_values``
    before (the device image carries an older 5.x)."""
    import inspect
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


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
    cache_arg = _cache_argument(model)
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


def score_hypotheses(records: list[dict]) -> dict[str, dict]:
    """chrF++ per direction from hypothesis records ({direction, hyp, ref, ...})."""
    by_dir: dict[str, tuple[list[str], list[str]]] = {}
    for r in records:
        h, rf = by_dir.setdefault(r["direction"], ([], []))
        h.append(r["hyp"])
        rf.append(r["ref"])
    return {d: {"chrf": round(corpus_chrf(h, rf), 4), "n": len(h)} for d, (h, rf) in sorted(by_dir.items())}


def eval_items(examples: Sequence[Example]) -> list[tuple[str, str, str]]:
    return [(e.src, e.tgt, e.src_text) for e in examples]
