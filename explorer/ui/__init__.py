"""The Streamlit side of the explorer: the only package that imports Streamlit (docs/design.md §5).

- ``cache``: every ``st.cache_resource`` / ``st.cache_data`` wrapper, keyed by short strings;
- ``widgets``: the shared sidebar and the pickers pages reuse, as ``show(key) -> value`` functions;
- ``runner``: starts the default experiment as a separate process and reads its progress;
- ``figures``: the Plotly figures (no Streamlit), so pages stay thin.

The experiments the app lists live under ``cache_root()``: ``$DDE_CACHE_ROOT`` when set (tests point it at a
temporary folder), else the repository's ``cache/``.
"""

from __future__ import annotations

import functools
import gc
import os
from pathlib import Path

from ..experiment.layout import CACHE_ROOT

ENV_CACHE_ROOT = "DDE_CACHE_ROOT"


def cache_root() -> Path:
    value = os.environ.get(ENV_CACHE_ROOT, "").strip()
    return Path(value).expanduser().resolve() if value else CACHE_ROOT


@functools.cache
def freeze_heap() -> int:
    """Move every object alive now (the imported libraries: torch, transformers, pandas, plotly…, ~600k objects)
    out of the garbage collector's reach, once per process; returns how many were frozen.

    Streamlit runs a full ``gc.collect()`` after every script run (``runner.postScriptGC``), which walks every
    tracked object: with these libraries loaded that took ~0.33 s of CPU per page render, most of a warm render's
    cost. Imported modules live as long as the process, so freezing them loses nothing; objects made later
    (each run's garbage, cached tables) are still collected as before."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
