"""Dialect Decoupling Explorer backend (never imports streamlit)."""

__version__ = "0.1.0"

import os as _os

# Before torch is imported anywhere: OpenMP threads that spin while waiting make torch several
# times slower when the CPU is shared (the app server, a browser, another run). Measured ~5x on 2 cores.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# oneDNN (bf16 autocast on CPUs with AVX512-BF16/AMX) keeps every compiled matmul kernel, one per input shape, and
# training batches come in many lengths: with its default capacity (1024) a `default` run grew to 6.9 GB of resident
# memory over nine arms. 64 kernels bound it (2.0 GB against 2.5 GB over three short decoupled arms, and no slower).
_os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
_os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
