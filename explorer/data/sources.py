"""One entry point for a run's stage-2 corpus, named by a spec string (``flores`` or ``madar:PATH``)."""

from __future__ import annotations

from pathlib import Path

from .corpus import CorpusError, ParallelCorpus
from .embedded import load_flores
from .madar import load_madar


def load_corpus(spec: str = "flores", *, dev: int = 100, test: int = 100, seed: int = 0) -> ParallelCorpus:
    """The stage-2 corpus named by ``spec``: ``"flores"`` (embedded) or ``"madar:/path/to/folder"``.

    ``dev``/``test``/``seed`` shape the FLORES split; MADAR keeps its official split."""
    spec = spec.strip()
    if spec == "flores":
        return load_flores(dev=dev, test=test, seed=seed)
    if spec.startswith("madar:") and spec[len("madar:"):].strip():
        return load_madar(Path(spec[len("madar:"):].strip()))
    raise CorpusError(f"unknown corpus spec {spec!r}; use 'flores' for the embedded FLORES-200 corpus or "
                      "'madar:/path/to/folder' for the folder that holds your MADAR.corpus.<City>.tsv files.")
