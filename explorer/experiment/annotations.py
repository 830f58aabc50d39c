"""A linguist's tags and comments on test translations, kept in the experiment folder across restarts.

One file, ``<experiment>/annotations.json``::

    {"format": 1, "tags": ["MSA leakage", ...], "items": {"arb-arz|flores-devtest-0082":
        {"tags": ["MSA leakage"], "comment": "keeps the MSA negation", "updated": "2025-..."}}}

An item is keyed by direction and sentence id (``item_key``): one note per test example, whichever model's
output it is about (the comment can say which). Keys this code does not know (written by a newer version, or
by hand), at the top level or in a note, are kept as they are on every save. Every save re-reads the file under an exclusive lock, changes
one entry and writes the whole file atomically, so two browser tabs do not erase each other's notes.

A file that cannot be read is never overwritten: ``load`` raises ``AnnotationsError`` naming the file and the
problem, and only ``quarantine`` (called after the user confirms) moves it aside as
``annotations.json.bad-<timestamp>``, so nothing is lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_write_text, locked
from .layout import Experiment

FORMAT = 1
DEFAULT_TAGS = ("MSA leakage", "wrong lexeme", "orthography", "wrong variety", "hallucination", "good")
MAX_COMMENT = 5000


class AnnotationsError(ValueError):
    """The annotations file exists but cannot be used as it is; the message says which file and why."""


def item_key(direction: str, sent_id: str) -> str:
    return f"{direction}|{sent_id}"


@dataclass(frozen=True)
class Note:
    tags: tuple[str, ...] = ()
    comment: str = ""
    updated: str = ""
    extra: dict = field(default_factory=dict)    # keys this code does not know, kept on save

    @property
    def empty(self) -> bool:
        return not self.tags and not self.comment.strip() and not self.extra


@dataclass(frozen=True)
class Annotations:
    tags: tuple[str, ...] = DEFAULT_TAGS
    items: dict[str, Note] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)    # top-level keys this code does not know, kept on save

    def note(self, key: str) -> Note:
        return self.items.get(key, Note())


def _parse(path: Path, text: str) -> Annotations:
    def bad(why: str) -> AnnotationsError:
        return AnnotationsError(f"{path} is not a valid annotations file ({why}). Saving is disabled so that "
                                "nothing in it is lost: fix the file by hand, or move it aside and start a new one.")

    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise bad(f"not JSON: {e}") from None
    if not isinstance(data, dict):
        raise bad("the top level must be an object")
    if data.get("format") != FORMAT:
        raise bad(f"format {data.get('format')!r}, this code reads format {FORMAT}")
    tags = data.get("tags", list(DEFAULT_TAGS))
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise bad("'tags' must be a list of strings")
    items = data.get("items", {})
    if not isinstance(items, dict):
        raise bad("'items' must be an object")
    out: dict[str, Note] = {}
    for k, v in items.items():
        if (not isinstance(v, dict) or not isinstance(v.get("tags", []), list)
                or not all(isinstance(t, str) for t in v.get("tags", []))
                or not isinstance(v.get("comment", ""), str)):
            raise bad(f"item {k!r} must hold 'tags' (a list of strings) and 'comment' (a string)")
        out[k] = Note(tuple(v.get("tags", [])), v.get("comment", ""), str(v.get("updated", "")),
                      {x: y for x, y in v.items() if x not in _NOTE_KEYS})
    return Annotations(tuple(tags), out, {k: v for k, v in data.items() if k not in _TOP_KEYS})


_TOP_KEYS = ("format", "tags", "items")
_NOTE_KEYS = ("tags", "comment", "updated")


def _dump(a: Annotations) -> str:
    items = {k: {**n.extra, "tags": list(n.tags), "comment": n.comment, "updated": n.updated}
             for k, n in sorted(a.items.items()) if not n.empty}
    return json.dumps({**a.extra, "format": FORMAT, "tags": list(a.tags), "items": items}, ensure_ascii=False,
                      indent=1) + "\n"


class AnnotationStore:
    """Reads and writes ``annotations.json`` in one experiment folder."""

    def __init__(self, experiment_root: str | Path):
        self.path = Experiment(experiment_root).annotations_path

    def load(self) -> Annotations:
        """The annotations (empty ones when there is no file yet); AnnotationsError for a damaged file."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Annotations()
        except UnicodeDecodeError:
            raise AnnotationsError(f"{self.path} is not UTF-8 text. Saving is disabled so that nothing in it is "
                                   "lost: fix the file by hand, or move it aside and start a new one.") from None
        return _parse(self.path, text)

    @contextmanager
    def _locked(self) -> Iterator[Annotations]:
        with locked(self.path.with_name(f".{self.path.name}.lock")):
            yield self.load()   # raises for a damaged file: nothing is written

    def save_note(self, key: str, tags: list[str] | tuple[str, ...], comment: str) -> Annotations:
        """Set (or clear, when both are empty) the note of one example; returns the annotations as saved."""
        if len(comment) > MAX_COMMENT:
            raise ValueError(f"the comment is {len(comment)} characters long; keep it under {MAX_COMMENT}")
        with self._locked() as current:
            unknown = [t for t in tags if t not in current.tags]
            if unknown:
                raise ValueError(f"unknown tag(s) {unknown}; add them to the tag list first")
            items = dict(current.items)
            note = Note(tuple(dict.fromkeys(tags)), comment.strip(), time.strftime("%Y-%m-%dT%H:%M:%S"),
                        current.note(key).extra)
            if note.empty:
                items.pop(key, None)
            else:
                items[key] = note
            new = Annotations(current.tags, items, current.extra)
            atomic_write_text(self.path, _dump(new))
            return new

    def save_tags(self, tags: list[str] | tuple[str, ...]) -> Annotations:
        """Replace the editable tag list. A tag still used by a note cannot be removed (it would dangle)."""
        clean = tuple(dict.fromkeys(t.strip() for t in tags if t.strip()))
        if any(len(t) > 40 for t in clean):
            raise ValueError("keep each tag under 40 characters")
        with self._locked() as current:
            used = sorted({t for n in current.items.values() for t in n.tags} - set(clean))
            if used:
                raise ValueError(f"tag(s) {used} are still used by saved notes; untag those examples first")
            new = Annotations(clean, current.items, current.extra)
            atomic_write_text(self.path, _dump(new))
            return new

    def quarantine(self) -> Path | None:
        """Move a damaged file aside (``annotations.json.bad-<timestamp>``) so a new one can be started.

        Call only after the user has agreed; returns the new path (None when there was no file)."""
        if not self.path.exists():
            return None
        dest = self.path.with_name(f"{self.path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while dest.exists():
            dest = self.path.with_name(f"{self.path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
            n += 1
        self.path.rename(dest)
        return dest
