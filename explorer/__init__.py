"""Dialect Decoupling Explorer backend (never imports streamlit)."""

__version__ = "0.1.0"

import os as _os

# Before torch is imported anywhere: OpenMP threads that spin while waiting make torch several
# times slower when the CPU is shared (the app server, a browser, another run). Measured ~5x on 2 cores.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
_os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
