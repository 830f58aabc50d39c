"""Qualitative error analysis: every test translation in one table, what is suspicious about each, a word diff
that never mixes the reference into the output, and the table as the linguist exports it.

The table is built from ``ExperimentView.hypotheses()`` (direction, src, tgt, sent_id, source, ref,
hyp_<model>, chrf_<model>) plus, per output: the variety the dialect-identification classifier thinks it is
(``evaluation.dialect_id``) and how sure it is, the share of its words copied from the source, and automatic flags
(empty, repeating itself, a near-copy of the source, far too long or short). Δ is the sentence chrF++ of one arm
minus the reference arm (sacrebleu ``CHRF(word_order=2)`` sentence scores, computed by the evaluation stage).
Model names are whatever the experiment has (``view.models``): nothing here assumes which ones.
"""

from __future__ import annotations

import difflib
import html
import itertools
import json
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..data.varieties import dialect_of, direction_kind, direction_label
from ..evaluation.dialect_id import CONFIDENT, DialectClassifier, confident_guess
from ..names import first_of, model_display

NEAR_COPY = 0.9        # ... of the output's words are in the source, and they cover as much of the source
REPEAT_SHARE = 0.4     # one word (or word pair) making up this share of an output of 6+ words is a loop
LENGTH_RATIO = 2.5     # an output this many times longer (or shorter) than the reference, in words

FLAG_EMPTY, FLAG_REPEATS, FLAG_COPY, FLAG_LONG, FLAG_SHORT = "empty", "repeats itself", "near-copy of source", \
    "far too long", "far too short"
OUTPUT_FLAGS = (FLAG_EMPTY, FLAG_REPEATS, FLAG_COPY, FLAG_LONG, FLAG_SHORT)
PAIR_SAME = "source = reference"   # a test pair whose two sides are the same text: nothing to translate

_EDGE = re.compile(r"^[\W_]+|[\W_]+$")


def words(text: str) -> list[str]:
    """Whitespace tokens with leading/trailing punctuation removed (empty tokens dropped)."""
    out = []
    for tok in str(text or "").split():
        tok = _EDGE.sub("", tok)
        if tok:
            out.append(tok)
    return out


def copied_share(hyp: str, source: str) -> float:
    """Share of the output's words that also occur in the source (counted with multiplicity); NaN when the
    output has no words. 1.0 = every word could have been copied from the source."""
    h = words(hyp)
    if not h:
        return float("nan")
    src = Counter(words(source))
    common = sum(min(n, src[w]) for w, n in Counter(h).items())
    return common / len(h)


def output_flags(hyp: str, source: str, ref: str) -> tuple[str, ...]:
    """What looks wrong with one output, whatever its score (``OUTPUT_FLAGS``)."""
    h, s, r = words(hyp), words(source), words(ref)
    if not h:
        return (FLAG_EMPTY,)
    flags = []
    if len(h) >= 6:
        grams = Counter(h) + Counter(itertools.pairwise(h))
        top = max(grams.values())
        if top / len(h) >= REPEAT_SHARE and top >= 3:
            flags.append(FLAG_REPEATS)
    if s:
        common = sum((Counter(h) & Counter(s)).values())
        if common / len(h) >= NEAR_COPY and common / len(s) >= NEAR_COPY:
            flags.append(FLAG_COPY)
    if r:
        if len(h) >= LENGTH_RATIO * len(r) and len(h) - len(r) >= 4:
            flags.append(FLAG_LONG)
        elif len(h) * LENGTH_RATIO <= len(r) and len(r) - len(h) >= 4:
            flags.append(FLAG_SHORT)
    return tuple(flags)


def _norm(text: str) -> str:
    return " ".join(str(text or "").split())


def pair_flags(source: str, ref: str) -> tuple[str, ...]:
    """What is suspicious about the test pair itself: its source and reference are the same text."""
    return (PAIR_SAME,) if _norm(source) and _norm(source) == _norm(ref) else ()


def delta_pair(models: Sequence[str], system: str | None = None, reference: str = "baseline") \
        -> tuple[str, str] | None:
    """(system, reference) of the Δ column: ``system`` (default: the first decoupled model if there is one, else
    the first model that is neither the base nor the reference) against ``reference``; arm names mean their first
    seed ("baseline" -> "baseline.s0"), so both sides come from the same seed. None when either is missing."""
    reference = first_of(models, reference) or reference
    if reference not in models:
        return None
    if system is None:
        system = first_of(models, "decoupled") or next((m for m in models if m not in ("base", reference)), None)
    else:
        system = first_of(models, system) or system
    return (system, reference) if system in models and system != reference else None


def arm_models(models: Sequence[str], arm: str) -> list[str]:
    """The seeds of ``arm`` among ``models`` ("decoupled" -> ["decoupled.s0", "decoupled.s1"]); a model name -> itself."""
    if arm in models:
        return [arm]
    return [m for m in models if m.rpartition(".s")[0] == arm and m.rpartition(".s")[2].isdigit()]


def delta_sides(models: Sequence[str]) -> list[str]:
    """What a Δ can compare, for the page's pickers: each arm with several seeds as itself (the mean over its
    seeds), then every model (one seed each)."""
    arms = [a for a in dict.fromkeys(m.rpartition(".s")[0] for m in models if ".s" in m) if a]
    return [a for a in arms if len(arm_models(models, a)) > 1] + list(models)


def side_label(name: str, models: Sequence[str]) -> str:
    """"decoupled (mean of 3 seeds)" for an arm, "decoupled · seed 1" for a model."""
    if name in models:
        return model_display(name)
    return f"{name} (mean of {len(arm_models(models, name))} seeds)"


def with_delta(table: pd.DataFrame, system: str, reference: str) -> pd.DataFrame:
    """``table`` with its Δ for the chosen pair: ``delta`` = chrF++ of ``system`` − chrF++ of ``reference`` (a
    model, or an arm for the mean over its seeds), ``abs_delta`` = |Δ|, and ``differ`` = how often the two
    outputs differ: 1 or 0 for two models; for an arm, the share of its seeds whose output differs from the
    other side's (the same seed when both sides are arms)."""
    models = models_in(table)
    a, b = arm_models(models, system), arm_models(models, reference)
    if not a or not b:
        raise ValueError(f"no outputs of {system if not a else reference!r} in this table; it has {models}")
    df = table.copy()
    df["delta"] = (df[[f"chrf_{m}" for m in a]].mean(axis=1) - df[[f"chrf_{m}" for m in b]].mean(axis=1)).round(3)
    df["abs_delta"] = df["delta"].abs()
    seed = {m: m.rpartition(".s")[2] for m in b}
    pairs = [(m, next((r for r in b if seed[r] == m.rpartition(".s")[2]), b[0]) if len(b) > 1 else b[0]) for m in a]
    same = [df[f"hyp_{x}"].fillna("").map(_norm) != df[f"hyp_{y}"].fillna("").map(_norm) for x, y in pairs]
    df["differ"] = np.mean(np.stack([s.to_numpy(dtype=float) for s in same]), axis=0) if same else np.nan
    return df


def error_table(hyps: pd.DataFrame, models: Sequence[str], classifier: DialectClassifier | None,
                system: str | None = None, reference: str = "baseline") -> pd.DataFrame:
    """One row per (direction, sentence) with every model's output, chrF++, dialect guess, copied share and
    flags, the pair's own flags, and Δ = chrF++(system) − chrF++(reference) (see ``delta_pair``)."""
    df = hyps.copy()
    models = [m for m in models if f"hyp_{m}" in df.columns]
    df.insert(0, "variety", [dialect_of(s, t) for s, t in zip(df["src"], df["tgt"])])
    df.insert(1, "kind", [direction_kind(s, t) for s, t in zip(df["src"], df["tgt"])])
    df.insert(2, "label", [direction_label(s, t) for s, t in zip(df["src"], df["tgt"])])
    pair = delta_pair(models, system, reference)
    df["delta"] = (df[f"chrf_{pair[0]}"] - df[f"chrf_{pair[1]}"]).round(3) if pair else np.nan
    df["length"] = df["source"].astype(str).str.split().str.len()
    df["pair_flags"] = [", ".join(pair_flags(s, r)) for s, r in zip(df["source"], df["ref"])]
    for m in models:
        hyp = df[f"hyp_{m}"].fillna("").astype(str)
        df[f"copy_{m}"] = [round(copied_share(h, s), 3) for h, s in zip(hyp, df["source"])]
        df[f"flags_{m}"] = [", ".join(output_flags(h, s, r)) for h, s, r in zip(hyp, df["source"], df["ref"])]
        if classifier is not None and len(df):
            preds = classifier.predict(hyp.tolist())
            df[f"pred_{m}"] = [p.variety for p in preds]
            df[f"pred_p_{m}"] = [round(p.probability, 3) for p in preds]
    df["flagged"] = (df["pair_flags"] != "") | np.logical_or.reduce(
        [df[f"flags_{m}"] != "" for m in models] or [np.zeros(len(df), bool)])
    return df.reset_index(drop=True)


def models_in(table: pd.DataFrame) -> list[str]:
    """The models whose outputs the table holds, in column order."""
    return [c[4:] for c in table.columns if c.startswith("hyp_")]


def filter_table(df: pd.DataFrame, *, directions: Sequence[str] = (), varieties: Sequence[str] = (),
                 delta_range: tuple[float, float] | None = None, search: str = "",
                 flags: Sequence[str] = ()) -> pd.DataFrame:
    """Rows matching every given filter; ``search`` is a case-insensitive substring of any text column; ``flags``
    keeps rows where any output (or the pair) carries one of these flags."""
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
    if flags:
        cols = ["pair_flags", *[c for c in df.columns if c.startswith("flags_")]]
        hit = pd.Series(False, index=df.index)
        for c in cols:
            for f in flags:
                hit |= df[c].astype(str).str.contains(f, regex=False)
        mask &= hit
    return df[mask]


# ---------------------------------------------------------------- diffs


def word_diff_html(hyp: str, ref: str) -> tuple[str, str]:
    """(output, reference) as two HTML strings, word by word: in the output, the words the reference does not have
    at that place are marked ``<mark class="dde-extra">``; in the reference, the words the output lacks are marked
    ``<mark class="dde-missing">``. Each string holds only its own text (with its own spacing), so the output stays
    readable, copyable Arabic: nothing of the reference is mixed into it and no word is cut."""
    h_tok, r_tok = re.split(r"(\s+)", str(hyp or "")), re.split(r"(\s+)", str(ref or ""))
    h_words = [(i, _EDGE.sub("", t)) for i, t in enumerate(h_tok) if t and not t.isspace()]
    r_words = [(i, _EDGE.sub("", t)) for i, t in enumerate(r_tok) if t and not t.isspace()]
    sm = difflib.SequenceMatcher(None, [w for _, w in r_words], [w for _, w in h_words], autojunk=False)
    h_mark, r_mark = set(), set()
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            continue
        r_mark |= {r_words[i][0] for i in range(i1, i2)}
        h_mark |= {h_words[j][0] for j in range(j1, j2)}

    def render(tokens: list[str], marked: set[int], cls: str) -> str:
        return "".join(f'<mark class="{cls}">{html.escape(t)}</mark>' if i in marked else html.escape(t)
                       for i, t in enumerate(tokens))

    return render(h_tok, h_mark, "dde-extra"), render(r_tok, r_mark, "dde-missing")


# ---------------------------------------------------------------- what the user sees and exports


def column_labels(models: Sequence[str], delta_pair_: tuple[str, str] | None = None) -> dict[str, str]:
    """Internal column -> the name the page shows (and the export uses)."""
    sys_, ref = (side_label(m, models) for m in (delta_pair_ or ("decoupled", "baseline")))
    labels = {"label": "direction", "variety": "variety", "sent_id": "sentence id", "source": "source",
              "ref": "reference", "delta": f"Δ chrF++ ({sys_} − {ref})", "abs_delta": f"|Δ| ({sys_} − {ref})",
              "differ": f"outputs differ ({sys_} vs {ref})", "length": "source words",
              "pair_flags": "test pair flags"}
    for name in models:
        m = model_display(name)
        labels |= {f"hyp_{name}": f"output · {m}", f"chrf_{name}": f"chrF++ · {m}",
                   f"copy_{name}": f"copied from source · {m}", f"flags_{name}": f"flags · {m}",
                   f"guess_{name}": f"looks like · {m}", f"pred_p_{name}": f"p(guess) · {m}",
                   f"top_{name}": f"top three varieties · {m}", f"garbled_{name}": f"garbled · {m}",
                   f"tags_{name}": f"tags · {m}", f"comment_{name}": f"comment · {m}",
                   f"spans_{name}": f"marked spans · {m}"}
    return labels | {"tags": "tags (sentence)", "comment": "comment (sentence)"}


def export_frame(shown: pd.DataFrame, models: Sequence[str], *, scope: str,
                 notes: dict[str, dict] | None = None, threshold: float = CONFIDENT,
                 delta_of: tuple[str, str] | None = None) -> pd.DataFrame:
    """The rows as the user sees them, columns named as on the page, first column ``exported`` saying what the
    file holds (``scope``, e.g. "filtered view: 12 of 1800 translations" or "everything: 1800 translations").

    ``notes`` maps an item key (``direction|sent_id``) to ``{"tags", "comment", "outputs": {model: {"tags",
    "comment", "spans"}}}`` (plain values, as ``experiment.annotations.Annotations.flat`` gives them)."""
    df = shown.copy()
    for m in models:
        if f"pred_{m}" in df and f"guess_{m}" not in df:     # (analysis.guess sets an honest one first)
            df[f"guess_{m}"] = [confident_guess(v, p, threshold) or "" for v, p in zip(df[f"pred_{m}"],
                                                                                       df[f"pred_p_{m}"])]
    if notes is not None:
        keys = [f"{d}|{s}" for d, s in zip(df["direction"], df["sent_id"])]
        got = [notes.get(k, {}) for k in keys]
        df["tags"] = [", ".join(n.get("tags", ())) for n in got]
        df["comment"] = [n.get("comment", "") for n in got]
        for m in models:
            outs = [n.get("outputs", {}).get(m, {}) for n in got]
            df[f"tags_{m}"] = [", ".join(o.get("tags", ())) for o in outs]
            df[f"comment_{m}"] = [o.get("comment", "") for o in outs]
            df[f"spans_{m}"] = ["; ".join(f"{s['text']} [{s.get('tag', '')}]" for s in o.get("spans", ()))
                                for o in outs]
    cols = ["label", "variety", "sent_id", "source", "ref", "pair_flags", "delta", *(["differ"] if "differ" in df
                                                                                     else []), "length"]
    for m in models:
        cols += [c for c in (f"hyp_{m}", f"chrf_{m}", f"copy_{m}", f"flags_{m}", f"guess_{m}", f"top_{m}",
                             f"garbled_{m}", f"pred_p_{m}", f"tags_{m}", f"comment_{m}", f"spans_{m}") if c in df]
    cols += [c for c in ("tags", "comment") if c in df]
    out = df[cols].rename(columns=column_labels(models, delta_of))
    out.insert(0, "exported", scope)
    return out.reset_index(drop=True)


def to_csv(frame: pd.DataFrame) -> bytes:
    """UTF-8 with a byte-order mark, so that spreadsheet programs open Arabic text correctly."""
    return frame.to_csv(index=False).encode("utf-8-sig")


def to_jsonl(frame: pd.DataFrame) -> bytes:
    """One JSON object per row, keys = the column names shown on the page, NaN as null."""
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
