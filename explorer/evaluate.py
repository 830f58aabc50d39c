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
    context (e.g. the inference-time projection) entered around each ``generate`` call."""
    model.eval()
    device = next(model.parameters()).device
    prompts = [encoder.prompt(s, t, x)[0] for s, t, x in items]
    order = np.argsort([len(p) for p in prompts], kind="stable")
    out: list[str] = [""] * len(items)
    for b0 in range(0, len(order), batch_size):
        idx = order[b0:b0 + batch_size]
        T = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), T), tok.pad_token_id, dtype=torch.long)
        att = torch.zeros((len(idx), T), dtype=torch.long)
        for r, i in enumerate(idx):
            p = prompts[i]
            ids[r, T - len(p):] = torch.tensor(p)
            att[r, T - len(p):] = 1
        ctx = intervention() if intervention is not None else contextlib.nullcontext()
        with ctx:
            gen = model.generate(input_ids=ids.to(device), attention_mask=att.to(device),
                                 max_new_tokens=max_new_tokens, do_sample=False, num_beams=num_beams,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        new = gen[:, T:].cpu()
        for r, i in enumerate(idx):
            out[i] = tok.decode(new[r], skip_special_tokens=True).strip()
        if on_batch:
            on_batch(len(idx))
    return out


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
