"""Qualitative error analysis: every test translation in one table, filters, and a character-level diff.

The table is built from ``ExperimentView.hypotheses()`` (direction, src, tgt, sent_id, source, ref,
hyp_<model>, chrf_<model>) plus, for each output, the variety the dialect-identification classifier thinks it
is (``evaluation.dialect_id``). Δ is the sentence chrF++ of decoupled minus baseline (sacrebleu
``CHRF(word_order=2)`` sentence scores, computed by the evaluation stage).
"""

from __future__ import annotations

import difflib
import html
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..data.varieties import dialect_of, direction_kind, direction_label
from ..evaluation.dialect_id import DialectClassifier

INS = "background:#c6f6d5;color:#14532d;text-decoration:none;border-radius:2px"


DEL = "background:#fecaca;color:#7f1d1d;text-decoration:line-through;border-radius:2px"


def first_of(models: Sequence[str], arm: str) -> str | None:
    """The first model of ``arm`` among ``models`` ("decoupled" -> "decoupled.s0"; a full model name as is)."""
    return next((m for m in models if m == arm or m.rpartition(".s")[0] == arm), None)


def error_table(hyps: pd.DataFrame, models: Sequence[str], classifier: DialectClassifier | None,
                system: str = "decoupled", reference: str = "baseline") -> pd.DataFrame:
    """One row per (direction, sentence) with every model's output, chrF++, predicted variety and Δ (sentence
    chrF++ of ``system`` minus ``reference``: model names, or arm names meaning their first seed)."""
    df = hyps.copy()
    models = [m for m in models if f"hyp_{m}" in df.columns]
    system, reference = first_of(models, system) or system, first_of(models, reference) or reference
    df.insert(0, "variety", [dialect_of(s, t) for s, t in zip(df["src"], df["tgt"])])
    df.insert(1, "kind", [direction_kind(s, t) for s, t in zip(df["src"], df["tgt"])])
    df.insert(2, "label", [direction_label(s, t) for s, t in zip(df["src"], df["tgt"])])
    if f"chrf_{system}" in df.columns and f"chrf_{reference}" in df.columns:
        df["delta"] = (df[f"chrf_{system}"] - df[f"chrf_{reference}"]).round(3)
    else:
        df["delta"] = np.nan
    df["length"] = df["source"].astype(str).str.split().str.len()
    if classifier is not None and len(df):
        for m in models:
            preds = classifier.predict(df[f"hyp_{m}"].astype(str).tolist())
            df[f"pred_{m}"] = [p.variety for p in preds]
            df[f"pred_p_{m}"] = [round(p.probability, 3) for p in preds]
    return df.reset_index(drop=True)


def filter_table(df: pd.DataFrame, *, directions: Sequence[str] = (), varieties: Sequence[str] = (),
                 delta_range: tuple[float, float] | None = None, search: str = "") -> pd.DataFrame:
    """Rows matching every given filter; ``search`` is a case-insensitive substring of any text column."""
    mask = pd.Series(True, index=df.index)
    if directions:
        mask &= df["direction"].isin(directions)
    if varieties:
        mask &= df["variety"].isin(varieties)
    if delta_range is not None and df["delta"].notna().any():
        lo, hi = delta_range
        mask &= df["delta"].between(lo, hi) | df["delta"].isna()
    if search.strip():
        needle = search.strip().casefold()
        texts = [c for c in df.columns if c in ("source", "ref", "sent_id") or c.startswith("hyp_")]
        hit = pd.Series(False, index=df.index)
        for c in texts:
            hit |= df[c].astype(str).str.casefold().str.contains(needle, regex=False)
        mask &= hit
    return df[mask]


def char_diff_html(hyp: str, ref: str) -> str:
    """``hyp`` against ``ref``, character by character (difflib), as HTML: characters the output has and the
    reference lacks are green (inserted), characters of the reference it lacks are struck through in red."""
    sm = difflib.SequenceMatcher(None, ref, hyp, autojunk=False)
    parts = []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            parts.append(html.escape(hyp[j1:j2]))
            continue
        if op in ("delete", "replace"):
            parts.append(f'<del style="{DEL}">{html.escape(ref[i1:i2])}</del>')
        if op in ("insert", "replace"):
            parts.append(f'<ins style="{INS}">{html.escape(hyp[j1:j2])}</ins>')
    return "".join(parts)


def diff_ratio(hyp: str, ref: str) -> float:
    """Share of matching characters (difflib's ratio), a quick similarity next to the diff."""
    return difflib.SequenceMatcher(None, ref, hyp, autojunk=False).ratio()
