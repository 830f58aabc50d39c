"""An honest dialect guess for one output: the three likeliest varieties with their probabilities, whether the
output is garbled, and a label only when one can be trusted.

The dialect classifier (``evaluation.dialect_id``) always names some variety, and a naive Bayes over character
n-grams is confidently wrong on text unlike its training data: a linguist reading 10 outputs found 1 of 5
confident guesses right, pure MSA called "Muscat .87", garbled outputs given a confident label (issue 21). So:

- the **top three** varieties are shown with their probabilities, never one bare name;
- an output is **garbled** when it repeats itself (``errors.output_flags``' loop test), stops far short of the
  reference (under ``SHORT_SHARE`` of its words), or is mostly **unknown words** (over ``UNKNOWN_SHARE`` of its words
  appear in no variety's training text of the corpus, ``lexicon``);
- **no label** for a garbled output, for one the MSA-vs-dialect classifier calls MSA (the dialect classifier's
  pick among dialects then means nothing), or when the best probability is under ``errors.CONFIDENT``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..data.varieties import HR, variety_label
from ..evaluation.dialect_id import DialectClassifier, arabic_share
from .errors import CONFIDENT, FLAG_REPEATS, output_flags, words

TOP = 3
UNKNOWN_SHARE = 0.5     # more than this share of an output's words appear in no training text: not language
SHORT_SHARE = 0.4       # an output with fewer than this share of the reference's words (5+ words) was cut short

REPEATS, CUT_SHORT, UNKNOWN = "repeats itself", "cut short", "mostly unknown words"
GARBLED = (REPEATS, CUT_SHORT, UNKNOWN)


@dataclass(frozen=True)
class Guess:
    top: tuple[tuple[str, float], ...]      # the likeliest varieties, best first, with their probabilities
    garbled: tuple[str, ...]                # why the output looks garbled (empty: it does not)
    unknown_share: float                    # share of its words found in no training text (NaN: no lexicon/words)
    called_msa: bool                        # the MSA-vs-dialect classifier calls it MSA
    label: str | None                       # the variety to name, or None
    why: str                                # why there is no label ("" when there is one)


def lexicon(texts: Iterable[str]) -> frozenset[str]:
    """Every word of ``texts`` (``errors.words``): the words the corpus knows."""
    return frozenset(w for t in texts for w in words(t))


def garbled(text: str, ref: str = "", known: frozenset[str] | None = None) -> tuple[tuple[str, ...], float]:
    """(why ``text`` looks garbled, its unknown-word share)."""
    w, r = words(text), words(ref)
    flags = [REPEATS] if FLAG_REPEATS in output_flags(text, "", "") else []
    if len(r) >= 5 and len(w) < SHORT_SHARE * len(r):
        flags.append(CUT_SHORT)
    share = float("nan")
    if known and w:
        share = sum(x not in known for x in w) / len(w)
        if share > UNKNOWN_SHARE:
            flags.append(UNKNOWN)
    return tuple(flags), share


def guess(text: str, probs: Sequence[float], classes: Sequence[str], *, ref: str = "",
          known: frozenset[str] | None = None, msa_probability: float | None = None,
          threshold: float = CONFIDENT) -> Guess:
    """The honest guess for ``text`` from the dialect classifier's ``probs`` over ``classes`` (and, when given, the
    MSA-vs-dialect classifier's probability that it is MSA)."""
    p = np.asarray(probs, dtype=float)
    order = np.argsort(-p)[:TOP]
    top = tuple((classes[i], float(p[i])) for i in order)
    flags, share = garbled(text, ref, known)
    msa = msa_probability is not None and msa_probability >= 0.5
    if not words(text):
        return Guess((), ("empty",), share, False, None, "empty output")
    if arabic_share(text) < 0.5:
        return Guess(top, flags, share, False, None, "not in Arabic script")
    if flags:
        why = f"garbled ({', '.join(flags)}): no variety is named"
    elif msa or top[0][0] == HR:
        why = "reads as MSA" + (f" (MSA-vs-dialect p = {msa_probability:.2f})" if msa else "") + \
              ": no dialect is named"
    elif top[0][1] < threshold:
        why = f"no confident guess (best p = {top[0][1]:.2f} < {threshold:.2f})"
    else:
        return Guess(top, flags, share, msa, top[0][0], "")
    return Guess(top, flags, share, msa, None, why)


def guesses(clf: DialectClassifier, texts: Sequence[str], refs: Sequence[str] | None = None, *,
            known: frozenset[str] | None = None, msa: DialectClassifier | None = None) -> list[Guess]:
    """``guess`` for many texts at once (one pass of each classifier)."""
    texts = [str(t or "") for t in texts]
    probs = clf.proba(texts)
    p_msa = None
    if msa is not None:
        col = list(msa.classes).index(HR) if HR in msa.classes else None
        p_msa = msa.proba(texts)[:, col] if col is not None else None
    refs = list(refs) if refs is not None else [""] * len(texts)
    return [guess(t, probs[i], clf.classes, ref=refs[i], known=known,
                  msa_probability=None if p_msa is None else float(p_msa[i])) for i, t in enumerate(texts)]


def top_text(top: Sequence[tuple[str, float]]) -> str:
    """"Egyptian .41 · Moroccan .22 · MSA .15"."""
    return " · ".join(f"{variety_label(c)} {p:.2f}".replace(" 0.", " .") for c, p in top)


def describe(g: Guess) -> str:
    """One line for the page: the label (or why there is none), then the top three."""
    head = f"looks like {variety_label(g.label)}" if g.label else g.why
    return head + (f" · top {len(g.top)}: {top_text(g.top)}" if g.top else "")


def add_guesses(table, models: Sequence[str], clf: DialectClassifier, *, msa: DialectClassifier | None = None,
                known: frozenset[str] | None = None):
    """``errors.error_table`` rows with, per model, ``guess_<m>`` (the label or ""), ``why_<m>`` (why none),
    ``top_<m>`` (the top three as text), ``garbled_<m>`` and ``called_msa_<m>``."""
    df = table.copy()
    for m in models:
        if f"hyp_{m}" not in df:
            continue
        gs = guesses(clf, df[f"hyp_{m}"].fillna("").astype(str).tolist(), df["ref"].astype(str).tolist(),
                     known=known, msa=msa)
        df[f"guess_{m}"] = [g.label or "" for g in gs]
        df[f"why_{m}"] = [g.why for g in gs]
        df[f"top_{m}"] = [top_text(g.top) for g in gs]
        df[f"garbled_{m}"] = [", ".join(g.garbled) for g in gs]
        df[f"called_msa_{m}"] = [g.called_msa for g in gs]
    return df


def not_msa_breakdown(table, models: Sequence[str], arm_of) -> list[dict]:
    """What the MSA → dialect outputs *not* called MSA hold, per arm (mean over its seeds): the share of all
    outputs not called MSA, and within them the shares garbled, confidently the requested dialect, confidently
    another variety, and without a confident guess. ``table``: ``add_guesses`` rows."""
    rows = table[(table["src"] == HR) & (table["tgt"] != HR)]
    out: dict[str, list[dict]] = {}
    for m in models:
        if f"guess_{m}" not in rows or not len(rows):
            continue
        keep = ~rows[f"called_msa_{m}"].astype(bool)
        sub = rows[keep]
        n = max(1, len(sub))
        garb = sub[f"garbled_{m}"] != ""
        label = sub[f"guess_{m}"]
        out.setdefault(arm_of(m), []).append({
            "not called MSA": float(keep.mean()),
            "garbled": float(garb.sum() / n),
            "the requested dialect": float(((label == sub["tgt"]) & ~garb).sum() / n),
            "another variety": float(((label != "") & (label != sub["tgt"]) & ~garb).sum() / n),
            "no confident guess": float(((label == "") & ~garb).sum() / n)})
    return [{"arm": arm, "seeds": len(v), **{k: float(np.mean([x[k] for x in v])) for k in v[0]}}
            for arm, v in out.items()]
