"""The Streamlit side of the explorer: the only package that imports Streamlit (DESIGN.md §5).

- ``cache``: every ``st.cache_resource`` / ``st.cache_data`` wrapper, keyed by short strings;
- ``widgets``: the shared sidebar and the pickers pages reuse, as ``show(key) -> value`` functions;
- ``runner``: starts the default experiment as a separate process and reads its progress;
- ``figures``: the Plotly figures (no Streamlit), so pages stay thin.

The experiments the app lists live under ``cache_root()``: ``$DDE_CACHE_ROOT`` when set (tests point it at a
temporary folder), else the repository's ``cache/``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..experiment.layout import CACHE_ROOT

ENV_CACHE_ROOT = "DDE_CACHE_ROOT"


def cache_root() -> Path:
    value = os.environ.get(ENV_CACHE_ROOT, "").strip()
    return Path(value).expanduser().resolve() if value else CACHE_ROOT
