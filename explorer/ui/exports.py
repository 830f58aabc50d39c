"""What leaves the app is named for what it holds: one CSV button per table, and file names (PNG, SVG, CSV,
JSONL) that carry the experiment, the arm, the seed, the layer and the step wherever they apply.

``file_name("tiny", "embedding", model="decoupled.s1", layer="layer.02", step=16)`` gives
``tiny_embedding_decoupled_seed1_layer02_step16``: a folder of downloads from a class or a paper draft says which
run and which view each file came from. ``csv_button(frame, name)`` is the one CSV button every table uses
(``tables.html_table`` draws it under its table); its tooltip names the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pandas as pd
import streamlit as st

from ..analysis.errors import to_csv
from ..names import parse_model

_UNSAFE = re.compile(r"[^A-Za-z0-9.+=-]+")


def _safe(part) -> str:
    """One part of a file name: ASCII letters, digits and ``.+=-`` only (an arrow or a space becomes ``-``)."""
    return _UNSAFE.sub("-", str(part)).strip("-.")


def model_parts(model: str) -> list[str]:
    """``"decoupled.s1"`` -> ["decoupled", "seed1"]; an arm or the base -> [its name]."""
    try:
        arm, seed = parse_model(model)
    except ValueError:
        return [model]
    return [arm] + ([f"seed{seed}"] if seed is not None else [])


def file_name(experiment: str, what: str, *, model: str | None = None, models: Sequence[str] = (),
              layer: str | None = None, step: int | None = None, extra: Sequence[str] = (),
              ext: str | None = None) -> str:
    """``<experiment>_<what>[_<arm>_seed<n>][_<layer>][_step<n>][_<extra>…][.<ext>]``; ``models`` for a view of
    two models (each with its arm and seed), ``model`` for one."""
    parts: list[str] = [experiment, what]
    for m in ([model] if model else []) + list(models):
        parts += model_parts(m)
    if layer:
        parts.append(layer.replace(".", ""))
    if step is not None:
        parts.append(f"step{int(step)}")
    parts += [str(x) for x in extra if x not in (None, "")]
    name = "_".join(p for p in (_safe(x) for x in parts) if p)
    return f"{name}.{ext}" if ext else name


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with cells a spreadsheet can read: a column of dicts (an interval ``{"delta", "low", "high"}``)
    becomes one column per key (``<column> delta`` …); lists and other objects become JSON text."""
    out = {}
    for c in frame.columns:
        col = frame[c]
        if col.map(lambda v: isinstance(v, dict)).any():
            keys = list(dict.fromkeys(k for v in col if isinstance(v, dict) for k in v))
            for k in keys:
                out[f"{c} {k}"] = [v.get(k) if isinstance(v, dict) else None for v in col]
        elif col.map(lambda v: isinstance(v, (list, tuple, set))).any():
            out[c] = [json.dumps(list(v), ensure_ascii=False) if isinstance(v, (list, tuple, set)) else v
                      for v in col]
        else:
            out[c] = col.to_list()
    return pd.DataFrame(out, index=range(len(frame)))


def csv_button(frame: pd.DataFrame, name: str, *, key: str | None = None, where=None) -> None:
    """A "CSV" download button for ``frame`` saved as ``<name>.csv`` (UTF-8 with a byte-order mark, so that
    spreadsheets open Arabic correctly); built only when clicked."""
    file = f"{name}.csv"
    (where or st).download_button(
        "CSV", lambda: to_csv(plain(frame)), file_name=file, mime="text/csv", key=key or f"csv_{file}",
        on_click="ignore", icon=":material/download:", type="tertiary",
        help=f"Download this table as {file}")
