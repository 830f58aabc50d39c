"""Parallel corpora as frozen frames, and the careful text readers every loader uses.

Loaders return frozen corpora whose frames are *parallel*: every row has a non-empty text in every variety
column. Every data problem raises ``CorpusError`` naming the file, the line where it applies, what is wrong and
what to do.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .varieties import ENG, HR, order_codes, variety

SPLITS = ("train", "dev", "test")


class CorpusError(ValueError):
    """A data problem; the message names the file (and line) and what to do about it."""


def _check_split(name: str | None) -> None:
    if name is not None and name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; use one of {', '.join(SPLITS)} (or None for all rows)")


@dataclass(frozen=True, eq=False)  # eq=False: comparing frames elementwise makes `==` ambiguous
class ParallelCorpus:
    """Sentences aligned across varieties: columns ``sent_id``, ``split``, then one text column per variety
    (HR first, then dialects, then ``eng`` if present). Treat ``frame`` as read-only; ``split()`` returns copies.
    ``notes`` holds non-fatal remarks from loading (files ignored, rows skipped) for the user to read."""

    name: str
    frame: pd.DataFrame
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        cols = list(self.frame.columns)
        if cols[:2] != ["sent_id", "split"] or len(cols) < 4 or cols[2] != HR:
            raise CorpusError(f"{self.name}: columns must be sent_id, split, {HR}, dialects...; got {cols}")
        for code in cols[2:]:
            variety(code)
        if cols[2:] != order_codes(cols[2:]):
            raise CorpusError(f"{self.name}: variety columns must be in table order {order_codes(cols[2:])}")
        bad = sorted(set(self.frame["split"]) - set(SPLITS))
        if bad:
            raise CorpusError(f"{self.name}: split values {bad} are not among {SPLITS}")
        if self.frame["sent_id"].duplicated().any():
            raise CorpusError(f"{self.name}: sent_id values are not unique")
        for code in cols[2:]:
            empty = self.frame[code].isna() | (self.frame[code].astype(str).str.strip() == "")
            if empty.any():
                first = self.frame.loc[empty, "sent_id"].iloc[0]
                raise CorpusError(f"{self.name}: {int(empty.sum())} empty {code} text(s), first at {first}")

    @property
    def varieties(self) -> tuple[str, ...]:
        """Arabic variety codes in the corpus (HR first); English excluded."""
        return tuple(c for c in self.frame.columns[2:] if c != ENG)

    @property
    def dialects(self) -> tuple[str, ...]:
        return tuple(c for c in self.varieties if c != HR)

    @property
    def has_english(self) -> bool:
        return ENG in self.frame.columns

    def split(self, name: str) -> pd.DataFrame:
        """The rows of one split (a copy, index reset)."""
        _check_split(name)
        return self.frame[self.frame["split"] == name].reset_index(drop=True)

    def _rows(self, split: str | None) -> pd.DataFrame:
        _check_split(split)
        return self.frame if split is None else self.frame[self.frame["split"] == split]

    def texts(self, variety_code: str, split: str | None = None) -> list[str]:
        """Texts of one variety, in row order (the same order as ``ids(split)``)."""
        if variety_code not in self.frame.columns[2:]:
            variety(variety_code)  # unknown codes get the table's message
            raise CorpusError(f"the {self.name} corpus has no {variety_code!r} column; "
                              f"it has {', '.join(self.frame.columns[2:])}")
        return self._rows(split)[variety_code].tolist()

    def ids(self, split: str | None = None) -> list[str]:
        return self._rows(split)["sent_id"].tolist()


@dataclass(frozen=True, eq=False)
class PairCorpus:
    """MSA–English pairs for the base stage: columns ``sent_id``, ``source`` (tatoeba/tico19/ntrex128),
    ``eng``, ``arb``, ``split``. ``sent_id`` is ``<source>-<line>`` with the 1-based line in the source file."""

    frame: pd.DataFrame
    notes: tuple[str, ...] = ()

    def split(self, name: str) -> pd.DataFrame:
        _check_split(name)
        return self.frame[self.frame["split"] == name].reset_index(drop=True)

    def pairs(self, split: str) -> list[tuple[str, str]]:
        """(English, MSA) tuples of one split."""
        part = self.split(split)
        return list(zip(part[ENG], part[HR]))



# ---------------------------------------------------------------- reading text files


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file, split on ``\\n`` only (``str.splitlines`` would also split on U+2028 and other
    separators that can sit inside a sentence and would silently break line alignment)."""
    return read_lines_ended(path)[0]


def read_lines_ended(path: Path) -> tuple[list[str], bool]:
    """``read_lines`` and whether the file ends with a line end (a file cut off mid-line does not)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"{path}: file not found; restore it (the embedded corpora ship in data/corpora/) "
                          "or point the tool at a folder that has it") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a folder, not a file; put the file itself there") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read the file ({e.strerror}); check its permissions") from None
    chunks = raw.removeprefix(codecs.BOM_UTF8).split(b"\n")
    ended = not raw or raw.endswith(b"\n")
    if chunks and chunks[-1] == b"":
        chunks.pop()
    lines = []
    for lineno, chunk in enumerate(chunks, start=1):
        try:
            lines.append(chunk.removesuffix(b"\r").decode("utf-8"))
        except UnicodeDecodeError as e:
            raise CorpusError(f"{path}, line {lineno}: bytes that are not UTF-8 (byte {e.start} of the line); "
                              "re-save the file as UTF-8") from None
    return lines, ended


def read_nonempty(path: Path) -> list[str]:
    lines = read_lines(path)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise CorpusError(f"{path}, line {lineno}: empty line; every line must hold one sentence, aligned "
                              "with the same line of the other files. Restore the file from its source.")
    return [line.strip() for line in lines]


def seeded_splits(n: int, dev: int, test: int, seed: int, what: str) -> np.ndarray:
    """Split labels for ``n`` items from a seeded permutation: the first ``test`` drawn go to test, the next
    ``dev`` to dev, the rest to train. Same seed, same labels."""
    if dev < 0 or test < 0 or dev + test >= n:
        raise CorpusError(f"{what}: cannot hold out dev={dev} and test={test} of {n} sentences; "
                          f"choose non-negative sizes that sum to less than {n}")
    order = np.random.default_rng(seed).permutation(n)
    labels = np.full(n, "train", dtype=object)
    labels[order[:test]] = "test"
    labels[order[test:test + dev]] = "dev"
    return labels
