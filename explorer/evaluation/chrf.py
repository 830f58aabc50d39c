"""chrF++ (sacrebleu ``CHRF(word_order=2)``) and the paired bootstrap between systems (docs/design.md §2.7).

Scores come from sacrebleu's public API (character n-grams up to 6, word n-grams up to 2, β = 2; Popović 2017),
signature reported. The bootstrap needs a corpus score for each of a thousand resamples of the test sentences;
rescoring each resample with sacrebleu would take minutes, so the per-sentence sufficient statistics (for each
n-gram order: hypothesis, reference and matching n-gram counts, exactly as sacrebleu's chrF counts them) are
extracted once here and resamples are scored from their sums (``chrf_from_statistics``). The tests check both
against sacrebleu's own corpus scores.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sacrebleu.metrics import CHRF

CHAR_ORDER, WORD_ORDER, BETA = 6, 2, 2
_PUNCTS = set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~')
BOOTSTRAP_SEED = 12345   # sacrebleu's default seed for its own resampling


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


# ---------------------------------------------------------------- sufficient statistics


def _words(sent: str) -> list[str]:
    """Words with one punctuation mark split off the end (else the start) of each, as chrF++ counts them."""
    out: list[str] = []
    for w in sent.split():
        if len(w) > 1 and w[-1] in _PUNCTS:
            out += [w[:-1], w[-1]]
        elif len(w) > 1 and w[0] in _PUNCTS:
            out += [w[0], w[1:]]
        else:
            out.append(w)
    return out


def _ngram_counters(sent: str) -> list[Counter]:
    chars = "".join(sent.split())                      # whitespace is not part of character n-grams
    out = [Counter(chars[i:i + n] for i in range(len(chars) - n + 1)) for n in range(1, CHAR_ORDER + 1)]
    words = _words(sent)
    out += [Counter(" ".join(words[i:i + n]) for i in range(len(words) - n + 1)) for n in range(1, WORD_ORDER + 1)]
    return out


def chrf_statistics(hyps: Sequence[str], refs: Sequence[str]) -> np.ndarray:
    """(n, 3 * 8) per-sentence counts [hypothesis n-grams, reference n-grams, matches] for each order (6 character
    orders, then 2 word orders). Summed over any subset of sentences they give that subset's corpus chrF++."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    out = np.zeros((len(hyps), 3 * (CHAR_ORDER + WORD_ORDER)), dtype=np.int64)
    for row, (h, r) in enumerate(zip(hyps, refs)):
        for i, (hc, rc) in enumerate(zip(_ngram_counters(h), _ngram_counters(r))):
            n_ref = sum(rc.values())
            out[row, 3 * i] = sum(hc.values()) if n_ref else 0
            out[row, 3 * i + 1] = n_ref
            out[row, 3 * i + 2] = sum(min(c, rc[g]) for g, c in hc.items() if g in rc)
    return out


def chrf_from_statistics(stats: np.ndarray) -> np.ndarray:
    """chrF++ (0–100) from summed statistics (..., 24): precision and recall averaged over the orders that have
    both hypothesis and reference n-grams (sacrebleu's default, signature ``eff:yes``), then F-beta."""
    s = np.asarray(stats, dtype=np.float64).reshape(*np.shape(stats)[:-1], CHAR_ORDER + WORD_ORDER, 3)
    n_hyp, n_ref, match = s[..., 0], s[..., 1], s[..., 2]
    eff = (n_hyp > 0) & (n_ref > 0)
    prec = np.divide(match, n_hyp, out=np.zeros_like(match), where=eff)
    rec = np.divide(match, n_ref, out=np.zeros_like(match), where=eff)
    k = eff.sum(-1)
    avg_p = np.divide(prec.sum(-1), k, out=np.zeros(k.shape), where=k > 0)
    avg_r = np.divide(rec.sum(-1), k, out=np.zeros(k.shape), where=k > 0)
    f = BETA ** 2
    denom = f * avg_p + avg_r
    return 100 * np.divide((1 + f) * avg_p * avg_r, denom, out=np.zeros(denom.shape), where=denom > 0)


def resample_indices(n: int, n_samples: int, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(n_samples, n) indices of sentences drawn with replacement, the same for every system (a paired test)."""
    return np.random.default_rng(seed).choice(n, size=(n_samples, n), replace=True)


# ---------------------------------------------------------------- the paired bootstrap


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
    """Paired bootstrap of the chrF++ difference over test sentences (Koehn 2004): both systems are scored on the
    same resamples (drawn as sacrebleu draws its own, seed 12345). This interval reflects test-sentence sampling
    only, not training noise."""
    if not (len(system) == len(baseline) == len(refs)):
        raise ValueError("system, baseline and references must have the same length")
    real = corpus_chrf(system, refs) - corpus_chrf(baseline, refs)
    idx = resample_indices(len(refs), n_samples)
    d = (chrf_from_statistics(chrf_statistics(system, refs)[idx].sum(1))
         - chrf_from_statistics(chrf_statistics(baseline, refs)[idx].sum(1)))
    centred = d - d.mean()
    p = (np.sum(np.abs(centred) >= abs(real)) + 1) / (n_samples + 1)
    lo, hi = np.percentile(d, [2.5, 97.5])
    return Delta(round(real, 4), round(float(lo), 4), round(float(hi), 4), round(float(p), 4), n_samples)


def score_hypotheses(records: list[dict]) -> dict[str, dict]:
    """chrF++ per direction from hypothesis records ({direction, hyp, ref, ...})."""
    by_dir: dict[str, tuple[list[str], list[str]]] = {}
    for r in records:
        h, rf = by_dir.setdefault(r["direction"], ([], []))
        h.append(r["hyp"])
        rf.append(r["ref"])
    return {d: {"chrf": round(corpus_chrf(h, rf), 4), "n": len(h)} for d, (h, rf) in sorted(by_dir.items())}


# ---------------------------------------------------------------- training noise: seeds


@dataclass(frozen=True)
class SeedDelta:
    """A system's chrF++ minus the reference system's, averaged over seeds, with an interval that includes training
    variance (seeds) as well as test-sentence sampling."""

    delta: float                 # mean over seeds s of chrF++(system_s) - chrF++(reference_s), whole test set
    low: float                   # 2.5th percentile of the two-level bootstrap
    high: float                  # 97.5th percentile
    p_value: float               # two-sided: twice the share of bootstrap Δ on the far side of 0 (at least 1/(B+1))
    n_samples: int
    per_seed: tuple[float, ...]  # the Δ of each seed
    interval: str                # "seeds+sentences", or "sentences" when there is one seed (no training variance)

    def to_dict(self) -> dict:
        return {"delta": self.delta, "low": self.low, "high": self.high, "p_value": self.p_value,
                "n_samples": self.n_samples, "per_seed": list(self.per_seed), "interval": self.interval}


def seed_bootstrap(system: dict[int, np.ndarray], reference: dict[int, np.ndarray], *, n_samples: int = 1000,
                   seed: int = BOOTSTRAP_SEED) -> SeedDelta:
    """Two-level (hierarchical) bootstrap of a chrF++ difference over seeds and test sentences.

    ``system`` and ``reference`` map a seed to its per-sentence statistics (``chrf_statistics``, (n, 24)) on the same
    test sentences, or to a stack of them for several directions scored on the same sentence ids, (D, n, 24): the
    statistic is then the mean Δ over the directions, each resample drawing the sentence ids once for all of them.
    Systems are paired by seed (the same seed means the same stage-2 batches). Each replicate
    draws the seeds with replacement and the test sentences with replacement (one draw shared by every seed and
    both systems: the test set is one sample), and averages the per-seed Δ over the drawn seeds. This is the
    hierarchical bootstrap of Saravanan et al. 2020 ("Application of the hierarchical bootstrap to multi-level data
    in neuroscience"), in the spirit of Bouthillier et al. 2021 ("Accounting for variance in machine learning
    benchmarks"), who show that seed variance must be sampled alongside data variance. With few seeds (3) the
    seed level is coarse and the interval tends to be too narrow rather than too wide: read it with the noise
    floor (``noise_floor``) beside it. A system without seeds (the base) is passed as the same statistics for
    every seed."""
    seeds = sorted(set(system) & set(reference))
    if not seeds:
        raise ValueError("the two systems share no seed")
    sys = {s: np.asarray(system[s])[None] if np.ndim(system[s]) == 2 else np.asarray(system[s]) for s in seeds}
    ref = {s: np.asarray(reference[s])[None] if np.ndim(reference[s]) == 2 else np.asarray(reference[s])
           for s in seeds}                                                             # (D, n, 24) each
    n = sys[seeds[0]].shape[1]
    if any(sys[s].shape != sys[seeds[0]].shape or ref[s].shape != sys[seeds[0]].shape for s in seeds):
        raise ValueError("every seed of both systems must be scored on the same directions and test sentences")
    rng = np.random.default_rng(seed)
    idx = rng.choice(n, size=(n_samples, n), replace=True)
    per_seed = np.array([float((chrf_from_statistics(sys[s].sum(1)) - chrf_from_statistics(ref[s].sum(1))).mean())
                         for s in seeds])
    boot = np.stack([(chrf_from_statistics(sys[s][:, idx].sum(2)) - chrf_from_statistics(ref[s][:, idx].sum(2)))
                     .mean(0) for s in seeds])                                         # (S, B)
    if len(seeds) > 1:
        pick = rng.integers(0, len(seeds), size=(n_samples, len(seeds)))               # seeds drawn per replicate
        boot = boot[pick, np.arange(n_samples)[:, None]].mean(1)
    else:
        boot = boot[0]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    p = min(1.0, max(2 * min(np.mean(boot <= 0), np.mean(boot >= 0)), 1 / (n_samples + 1)))
    return SeedDelta(round(float(per_seed.mean()), 4), round(float(lo), 4), round(float(hi), 4), round(float(p), 4),
                     n_samples, tuple(round(float(x), 4) for x in per_seed),
                     "seeds+sentences" if len(seeds) > 1 else "sentences")


def noise_floor(scores: dict[int, float]) -> dict | None:
    """How far two runs that differ only in their seed land apart: chrF++ of one system per seed -> the largest
    absolute difference between two seeds, the standard deviation across seeds, and every pair. None with fewer
    than two seeds. A difference between arms smaller than this is not evidence of anything."""
    if len(scores) < 2:
        return None
    seeds = sorted(scores)
    pairs = [{"seeds": [a, b], "delta": round(scores[b] - scores[a], 4)}
             for i, a in enumerate(seeds) for b in seeds[i + 1:]]
    return {"max_abs": round(max(abs(p["delta"]) for p in pairs), 4),
            "sd": round(float(np.std([scores[s] for s in seeds], ddof=1)), 4), "pairs": pairs}


def reading(delta: dict, floor: dict | None) -> str:
    """One word on a Δ: "better" / "worse" when its interval excludes 0 and it is larger than the noise floor,
    "within noise" otherwise (with one seed there is no floor: the interval alone decides, and says so)."""
    excludes = delta["low"] > 0 or delta["high"] < 0
    beyond = floor is None or abs(delta["delta"]) > floor["max_abs"]
    if excludes and beyond:
        return "better" if delta["delta"] > 0 else "worse"
    return "within noise"
