"""What an experiment shows: the summary (CLI table and ``summary --json``) and the app's headline table and map.
"""

from __future__ import annotations

import pandas as pd

from ..data.varieties import KINDS, VARIETIES, dialect_of, direction_kind, direction_label, variety
from ..evaluation.chrf import chrf_signature
from ..files import read_json
from .layout import Experiment


def summary(exp: Experiment) -> dict:
    """Results as one JSON-ready dict: per model and direction chrF++, Δ vs baseline with CI, refits."""
    m = exp.manifest()
    cfg = exp.config()
    out = {"experiment": str(exp.root), "code_version": m["code_version"], "config": m["config"],
           "signature": chrf_signature(), "models": {}, "deltas": {}, "refits": {}, "complete": False}
    for key in ["base", *cfg.arms]:
        p = exp.scores_path(key)
        if p.exists():
            out["models"][key] = read_json(p)["directions"]
    if exp.deltas_path.exists():
        out["deltas"] = read_json(exp.deltas_path)["systems"]
    cp = exp.copy_source_path
    out["copy_source"] = read_json(cp)["directions"] if cp.exists() else {}
    for arm in cfg.arms:
        out["refits"][arm] = len(exp.refits(arm))
    out["stages"] = {k: v for k, v in m.get("stages", {}).items()}
    out["complete"] = all(exp.stage_done(f"eval:{k}") for k in ["base", *cfg.arms])
    return out


def summary_table(s: dict) -> str:
    """A readable table: one row per direction, one column per model, plus Δ(decoupled) [CI]."""
    models = list(s["models"])
    dirs = sorted({d for m in s["models"].values() for d in m})
    copy = s.get("copy_source", {})
    head = (f"{'direction':<12}" + "".join(f"{m:>11}" for m in models) + (f"{'copy src':>11}" if copy else "")
            + "   Δ decoupled [95% CI]")
    lines = [head, "-" * len(head)]
    for d in dirs:
        row = f"{d:<12}" + "".join(f"{s['models'][m].get(d, {}).get('chrf', float('nan')):>11.2f}" for m in models)
        if copy:
            row += f"{copy.get(d, {}).get('chrf', float('nan')):>11.2f}"
        dd = s.get("deltas", {}).get("decoupled", {}).get(d)
        if dd:
            row += f"   {dd['delta']:+6.2f} [{dd['low']:+.2f}, {dd['high']:+.2f}]"
        lines.append(row)
    lines.append(f"chrF++ signature: {s['signature']}")
    lines.append("95% CI: paired bootstrap over test sentences (it does not include training noise)")
    if copy:
        lines.append("copy src: the source itself as the output (the bar a model must clear between close varieties)")
    lines.append("probe refits: " + ", ".join(f"{a}={n}" for a, n in s["refits"].items()))
    return "\n".join(lines)


# ---------------------------------------------------------------- the app's headline


_RANK = {v.code: i for i, v in enumerate(VARIETIES)}


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
