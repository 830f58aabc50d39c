"""The headline of an experiment: chrF++ per direction for every model, Δ vs baseline with its 95% interval,
and the per-city frame the home page's map draws (DESIGN.md §6.1).

Inputs are ``ExperimentView.scores()`` (model, direction, src, tgt, chrf, n) and ``.deltas()`` (system,
direction, src, tgt, delta, low, high, p_value; the bootstrap of ``evaluate.paired_bootstrap``).
"""

from __future__ import annotations

import pandas as pd

from .corpus import ENG, HR, VARIETIES, variety

_RANK = {v.code: i for i, v in enumerate(VARIETIES)}
KINDS = ("MSA → dialect", "dialect → MSA", "English → MSA", "MSA → English", "other")


def short_name(code: str) -> str:
    """'Egyptian' for arz, 'MSA' for arb: the label used in direction names."""
    if code == HR:
        return "MSA"
    if code == ENG:
        return "English"
    try:
        return variety(code).name.split(" Arabic")[0].split(" (")[0]
    except ValueError:
        return code


def direction_kind(src: str, tgt: str) -> str:
    if src == HR and tgt not in (HR, ENG):
        return KINDS[0]
    if tgt == HR and src not in (HR, ENG):
        return KINDS[1]
    if src == ENG and tgt == HR:
        return KINDS[2]
    if src == HR and tgt == ENG:
        return KINDS[3]
    return KINDS[4]


def direction_label(src: str, tgt: str) -> str:
    return f"{short_name(src)} → {short_name(tgt)}"


def dialect_of(src: str, tgt: str) -> str:
    """The variety a direction is about: the dialect side, else the non-MSA side, else the target."""
    for c in (tgt, src):
        if c not in (HR, ENG):
            return c
    return src if src != HR else tgt


def _order_key(src: str, tgt: str) -> tuple:
    return KINDS.index(direction_kind(src, tgt)), _RANK.get(dialect_of(src, tgt), 999)


def headline_table(scores: pd.DataFrame, deltas: pd.DataFrame, models: tuple[str, ...],
                   copy_source: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per direction: chrF++ of each model, and each arm's Δ vs baseline with its 95% interval.

    ``copy_source`` (direction -> chrF++ of the source itself as output) adds a "chrF++ copy src" column."""
    if scores.empty:
        return pd.DataFrame()
    wide = scores.pivot_table(index=["direction", "src", "tgt"], columns="model", values="chrf").reset_index()
    wide.columns.name = None
    rows = []
    for _, r in wide.iterrows():
        row = {"direction": direction_label(r["src"], r["tgt"]), "kind": direction_kind(r["src"], r["tgt"]),
               "code": r["direction"], "variety": dialect_of(r["src"], r["tgt"])}
        for m in models:
            row[f"chrF++ {m}"] = r.get(m)
        if copy_source:
            row["chrF++ copy src"] = copy_source.get(r["direction"])
        for system in [m for m in models if m not in ("base", "baseline")]:
            d = deltas[(deltas["system"] == system) & (deltas["direction"] == r["direction"])] \
                if not deltas.empty else deltas
            if len(d):
                d = d.iloc[0]
                row[f"Δ {system}"] = d["delta"]
                row[f"95% CI {system}"] = f"[{d['low']:+.2f}, {d['high']:+.2f}]"
        row["_key"] = _order_key(r["src"], r["tgt"])
        rows.append(row)
    out = pd.DataFrame(rows).sort_values("_key", kind="stable").drop(columns="_key").reset_index(drop=True)
    return out


def map_frame(deltas: pd.DataFrame, system: str = "decoupled", kind: str = KINDS[0]) -> pd.DataFrame:
    """One row per dialect with a city: where it is and the Δ chrF++ of ``system`` vs baseline in ``kind``."""
    cols = ["variety", "name", "city", "country", "region", "lat", "lon", "delta", "low", "high", "significant"]
    if deltas.empty:
        return pd.DataFrame(columns=cols)
    d = deltas[deltas["system"] == system]
    rows = []
    for _, r in d.iterrows():
        if direction_kind(r["src"], r["tgt"]) != kind:
            continue
        v = variety(dialect_of(r["src"], r["tgt"]))
        if v.lat is None:
            continue
        rows.append({"variety": v.code, "name": v.name, "city": v.city, "country": v.country, "region": v.region,
                     "lat": v.lat, "lon": v.lon, "delta": float(r["delta"]), "low": float(r["low"]),
                     "high": float(r["high"]), "significant": bool(r["low"] > 0 or r["high"] < 0)})
    return pd.DataFrame(rows, columns=cols)
