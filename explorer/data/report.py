"""What a corpus holds, without training on it: ``python -m explorer data SPEC`` and the notes at the start of ``run``.

``inspect_corpus`` never raises for a data problem: it returns a report with the varieties found (code, name,
sentences per split), the files ignored and why, every problem (file and line) and the notes a run records in
``data.json``. The printing is the command line's (``explorer/__main__.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .corpus import SPLITS, CorpusError, ParallelCorpus
from .embedded import DEFAULT_DATA, load_flores
from .madar import scan_madar
from .varieties import ENG, variety


@dataclass(frozen=True)
class VarietyCount:
    """One variety of a corpus: sentences per split, and rows it has beyond the parallel set (MADAR corpus-6)."""

    code: str
    name: str
    source: str                 # the file it came from
    train: int
    dev: int
    test: int
    extra: int = 0


@dataclass(frozen=True, eq=False)
class CorpusReport:
    spec: str
    name: str                   # "flores", "madar" or the spec when it names nothing known
    folder: Path | None
    varieties: tuple[VarietyCount, ...]
    ignored: tuple[tuple[str, str], ...]
    problems: tuple[str, ...]
    notes: tuple[str, ...]
    corpus: ParallelCorpus | None       # None when there are problems

    @property
    def ok(self) -> bool:
        return not self.problems


def _counts(corpus: ParallelCorpus, sources: dict[str, str], extra: dict[str, int]) -> tuple[VarietyCount, ...]:
    per_split = {s: len(corpus.split(s)) for s in SPLITS}
    codes = [*corpus.varieties, *([ENG] if corpus.has_english else [])]
    return tuple(VarietyCount(c, variety(c).name, sources.get(c, ""), per_split["train"], per_split["dev"],
                              per_split["test"], extra.get(c, 0)) for c in codes)


def inspect_corpus(spec: str, *, dev: int = 100, test: int = 100, seed: int = 0) -> CorpusReport:
    """The report on the corpus a ``--data`` spec names (``flores`` or ``madar:PATH``). ``dev``/``test``/``seed``
    shape the FLORES split as in a run; MADAR keeps its official split."""
    spec = spec.strip()
    if spec == "flores":
        folder = DEFAULT_DATA / "flores200-devtest"
        try:
            corpus = load_flores(dev=dev, test=test, seed=seed)
        except CorpusError as e:
            return CorpusReport(spec, "flores", folder, (), (), (str(e),), (), None)
        sources = {c: f"{c}_{'Latn' if c == ENG else 'Arab'}.devtest" for c in corpus.frame.columns[2:]}
        return CorpusReport(spec, "flores", folder, _counts(corpus, sources, {}), (), (), corpus.notes, corpus)
    if spec.startswith("madar:") and spec[len("madar:"):].strip():
        given = Path(spec[len("madar:"):].strip()).expanduser()
        try:
            scan = scan_madar(given)
        except CorpusError as e:
            return CorpusReport(spec, "madar", given, (), (), (str(e),), (), None)
        sources = {f.code: f.path.name for f in scan.files}
        extra = {f.code: f.corpus6 for f in scan.files}
        counts = _counts(scan.corpus, sources, extra) if scan.corpus is not None else tuple(
            VarietyCount(f.code, variety(f.code).name, f.path.name,
                         *(sum(1 for s, _, _ in f.rows.values() if s == split) for split in SPLITS), f.corpus6)
            for f in scan.files)
        return CorpusReport(spec, "madar", scan.folder, counts, scan.ignored, scan.problems, scan.notes, scan.corpus)
    unknown = (f"unknown corpus spec {spec!r}; use 'flores' for the embedded FLORES-200 corpus or "
               "'madar:/path/to/folder' for the folder that holds your MADAR.corpus.<City>.tsv files.")
    return CorpusReport(spec, spec, None, (), (), (unknown,), (), None)
