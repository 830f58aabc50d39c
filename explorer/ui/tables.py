"""The app's tables: plain HTML tables whose cells wrap (no inner scroll box, no truncated Arabic), each with a
CSV button beside it (``exports.csv_button``), and the tables the pages share (headline, leakage, dose-response,
the probe gate, the error-analysis rows).

``html_table(frame, download=(data, name))`` draws ``frame`` and offers ``data`` (the same rows with plain values:
numbers, not the formatted HTML cells) as ``<name>.csv``; ``download=None`` only where the page offers its own
exports (the error-analysis table). The keyword has no default, so a new table cannot forget its CSV.
"""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from . import exports
from .widgets import _finite, flags_html

Download = tuple[pd.DataFrame, str] | None


def html_table(frame: pd.DataFrame, *, text: tuple[str, ...] = (), numbers: dict[str, str] | None = None,
               classes: dict[str, list[str]] | None = None, raw: tuple[str, ...] = (),
               group: str | None = None, download: Download) -> None:
    """A plain HTML table: every cell ``dir="auto"`` and wrapping (no inner scroll box, no truncated Arabic).

    ``text``: columns of sentences (larger Arabic type); ``numbers``: column -> format (right-aligned);
    ``classes``: column -> a CSS class per row ("good", "bad", "dim"); ``raw``: columns already holding HTML;
    ``group``: a column whose value, when it changes, starts a group row (and is not shown as a column);
    ``download``: (the table's plain values, the file's name without extension) for its CSV button, or None."""
    numbers, classes = numbers or {}, classes or {}
    cols = [c for c in frame.columns if c != group]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    rows, last = [], None
    for i, rec in enumerate(frame.itertuples(index=False, name=None)):
        r = dict(zip(frame.columns, rec))
        if group is not None and r[group] != last:
            last = r[group]
            rows.append(f'<tr class="dde-group"><td colspan="{len(cols)}" dir="auto">{html.escape(str(last))}</td></tr>')
        cells = []
        for c in cols:
            v = r[c]
            cls = [*(["ar"] if c in text else []), *(["num"] if c in numbers else []),
                   *([classes[c][i]] if c in classes and classes[c][i] else [])]
            if c in raw:
                body = str(v)
            elif c in numbers:
                body = (format(v, numbers[c]) if _finite(v) else
                        html.escape(v) if isinstance(v, str) else "—")
            else:
                body = html.escape("" if v is None or (isinstance(v, float) and not _finite(v)) else str(v))
            attr = f' class="{" ".join(cls)}"' if cls else ""
            cells.append(f'<td dir="auto"{attr}>{body}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    st.markdown(f'<div class="dde-table-wrap"><table class="dde-table"><thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(rows)}</tbody></table></div>', unsafe_allow_html=True)
    if download is not None:
        exports.csv_button(*download)


# ---------------------------------------------------------------- the headline table


def headline(table: pd.DataFrame, models: list[str], name: str) -> None:
    """``experiment.report.headline_table`` as a compact HTML table grouped by kind of direction: chrF++ per arm as
    mean ± sd over its seeds (grey when below copying the source), the copy bar, each arm's Δ vs baseline with its
    95% interval and reading in one cell (blue "better", red "worse", plain "within noise"), and the baseline's
    noise floor; each kind's "mean of N directions" row in bold. Cells wrap inside themselves, so the table fits the
    page without sideways scrolling."""
    copy = table.get("chrF++ copy src")
    out = pd.DataFrame({"kind": table["kind"], "direction": table["direction"]})
    classes: dict[str, list[str]] = {}
    raw: list[str] = []
    for m in models:
        sd = table.get(f"sd {m}")
        out[m] = [_mean_sd(v, sd.iloc[i] if sd is not None else None) for i, v in enumerate(table[f"chrF++ {m}"])]
        raw.append(m)
        classes[m] = ["num" + (" dim" if copy is not None and _finite(c) and _finite(v) and v < c else "")
                      for v, c in zip(table[f"chrF++ {m}"], copy if copy is not None else [None] * len(table))]
    if copy is not None:
        out["copy src"] = copy
    for c in [c for c in table.columns if c.startswith("Δ ")]:
        system = c[2:]
        nothing = pd.Series([None] * len(table), index=table.index)
        ci = list(zip(table.get(f"low {system}", nothing), table.get(f"high {system}", nothing)))
        rd = table.get(f"reading {system}", nothing)
        col = f"Δ {system} [95% CI]"
        out[col] = [_delta_cell(d, x, r) for d, x, r in zip(table[c], ci, rd)]
        raw.append(col)
        classes[col] = ["num " + {"better": "good", "worse": "bad"}.get(r, "") if isinstance(r, str) else
                        "num " + ("good" if _finite(lo) and lo > 0 else "bad" if _finite(hi) and hi < 0 else "")
                        for r, (lo, hi) in zip(rd, ci)]
    if "noise floor" in table.columns:
        out["noise floor"] = table["noise floor"]
    if "mean" in table.columns:         # the "mean of N directions" rows stand out from the directions above them
        is_mean = [bool(x) for x in table["mean"]]
        for c in [c for c in out.columns if c != "kind"]:
            classes[c] = [" ".join(filter(None, [(classes.get(c) or [""] * len(out))[i], "mean" if m else ""]))
                          for i, m in enumerate(is_mean)]
    numbers = {c: ".1f" for c in ("copy src",)} | {"noise floor": ".2f"}
    html_table(out, numbers={k: v for k, v in numbers.items() if k in out.columns}, classes=classes, raw=tuple(raw),
               group="kind", download=(table, name))


def _mean_sd(mean, sd) -> str:
    if not _finite(mean):
        return "—"
    return f"{mean:.1f}" + (f'<span class="dde-sd"> ±{sd:.1f}</span>' if _finite(sd) else "")


def _delta_cell(delta, interval: tuple, reading_) -> str:
    """A Δ with its interval (numbers, formatted here only) and its reading, in one cell."""
    if not _finite(delta):
        return "—"
    lo, hi = interval
    shown = f"[{lo:+.2f}, {hi:+.2f}]" if _finite(lo) and _finite(hi) else ""
    text = f"{delta:+.2f}" + (f'<br><span class="dde-ci">{html.escape(shown)}</span>' if shown else "")
    return text + (f'<br><span class="dde-ci">{html.escape(reading_)}</span>' if isinstance(reading_, str) else "")


def leakage(frame: pd.DataFrame, name: str) -> None:
    """``analysis.verdict.leakage``: per arm the share of MSA → dialect outputs the dialect classifier assigns to the
    requested dialect and the share the MSA-vs-dialect classifier calls MSA, mean ± sd over seeds; the references
    last (the ceiling)."""
    def pct(x, sd) -> str:
        return "—" if not _finite(x) else f"{x:.0%}" + (f'<span class="dde-sd"> ±{sd * 100:.0f}</span>'
                                                        if _finite(sd) else "")

    out = pd.DataFrame({
        "outputs of": [("references (ceiling)" if a == "reference" else a) for a in frame["arm"]],
        "seeds": [("—" if a in ("base", "reference") else str(n)) for a, n in zip(frame["arm"], frame["seeds"])],
        "as requested": [pct(x, sd) for x, sd in zip(frame["as_requested"], frame["as_requested_sd"])],
        "called MSA (leakage)": [pct(x, sd) for x, sd in zip(frame["called_msa"], frame["called_msa_sd"])],
        "same for every target": [pct(x, sd) for x, sd in zip(frame["identical"], frame["identical_sd"])]})
    html_table(out, raw=tuple(out.columns[2:]), classes={c: ["num"] * len(out) for c in out.columns[1:]},
               download=(frame, name))


def dose_table(rows: pd.DataFrame, name: str) -> None:
    """``experiment.report.dose_response``: one row per λ (the baseline at 0), its mean Δ over MSA → dialect and
    dialect → MSA with interval and reading, MSA leakage, the as-requested share and the post-hoc probe."""
    def cell(x) -> str:
        if not isinstance(x, dict):
            return "(reference)"
        return _delta_cell(x["delta"], (x["low"], x["high"]), x.get("reading"))

    out = pd.DataFrame({"λ": [f"{x:g}" for x in rows["lam"]], "arm": rows["arm"],
                        "Δ MSA → dialect": [cell(x) for x in rows["msa_to_dialect"]],
                        "Δ dialect → MSA": [cell(x) for x in rows["dialect_to_msa"]],
                        "called MSA": rows["called_msa"], "as requested": rows["as_requested"],
                        "post-hoc probe": rows["posthoc_accuracy"]})
    html_table(out, raw=("Δ MSA → dialect", "Δ dialect → MSA"),
               numbers={"called MSA": ".0%", "as requested": ".0%", "post-hoc probe": ".2f"},
               classes={c: ["num"] * len(out) for c in ("λ", "Δ MSA → dialect", "Δ dialect → MSA")},
               download=(rows, name))


def gate_table(refits: pd.DataFrame, name: str) -> None:
    """The probe gate's decision at every refit and site: accuracy against chance and the threshold, and why."""
    out = pd.DataFrame({"step": refits["step"], "site": refits["site"], "accuracy": refits["accuracy"],
                        "chance": refits["chance"], "gate threshold": refits["gate_threshold"],
                        "decision": ["accepted" if a else "rejected" for a in refits["accepted"]],
                        "reason": refits["gate_reason"]})
    html_table(out, numbers={"step": "d", "accuracy": ".3f", "chance": ".2f", "gate threshold": ".3f"},
               classes={"decision": ["good" if a else "bad" for a in refits["accepted"]]}, download=(refits, name))


# ---------------------------------------------------------------- the error-analysis table


def translations_table(rows: pd.DataFrame, models: list[str], labels: dict[str, str]) -> None:
    """One row per translation: the example (direction, id, Δ, the pair's flags), its source and reference, and
    each of ``models``' outputs with its chrF++, copied share and flags underneath; every text wraps in full."""
    def small(text: str) -> str:
        return f'<div style="font-size:0.78rem;color:#4b5563;direction:ltr;text-align:left">{text}</div>'

    def pct(x: float) -> str:
        return f"{x:.0%}" if _finite(x) else "—"

    out = pd.DataFrame({
        "example": [f'{html.escape(r["label"])}{small(html.escape(str(r["sent_id"])))}'
                    + (small(f'Δ {r["delta"]:+.1f}') if _finite(r["delta"]) else "")
                    + flags_html(r["pair_flags"]) for r in rows.to_dict("records")],
        labels["source"]: [html.escape(str(x)) for x in rows["source"]],
        labels["ref"]: [html.escape(str(x)) for x in rows["ref"]]})
    for m in models:
        out[m] = [f'{html.escape(str(h or ""))}'
                  + small(f"chrF++ {c:.1f} · copied {pct(cp)}") + flags_html(f)
                  for h, c, cp, f in zip(rows[f"hyp_{m}"], rows[f"chrf_{m}"], rows[f"copy_{m}"], rows[f"flags_{m}"])]
    html_table(out, text=(labels["source"], labels["ref"], *models), raw=tuple(out.columns),
               download=None)     # the page exports these rows itself (CSV and JSONL, filtered or everything)
