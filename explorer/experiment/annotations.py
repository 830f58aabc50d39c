"""A linguist's tags, comments and marked spans on test translations, kept in the experiment folder across restarts.

One file, ``<experiment>/annotations.json`` (format 2)::

    {"format": 2, "tags": ["MSA leakage", ...],
     "items": {"arb-arz|flores-devtest-0082": {
        "tags": [], "comment": "the reference itself is MSA", "updated": "2025-...",       # the sentence
        "outputs": {"decoupled": {"tags": ["MSA leakage"], "comment": "keeps the MSA negation",  # one output
                                  "spans": [{"start": 4, "end": 9, "text": "ليس", "tag": "MSA leakage"}],
                                  "updated": "2025-..."}}}}}

An item is keyed by direction and sentence id (``item_key``). It holds a note on the sentence (the only kind
format 1 had) and one note per model output, each with tags, a comment and spans (character offsets into that
output, with the text they cover, so a span can be checked against the output it was made on). Format 1 files
are read as they are (their notes are the sentence notes) and are written back as format 2 on the next save.
Fields this code does not know (at the top, in an item, an output note or a span) are kept on save, so a file
written by a newer version loses nothing when an older one saves into it.

Every save re-reads the file under an exclusive lock, changes one entry and writes the whole file atomically, so
two browser tabs do not erase each other's notes. A file that cannot be read is never overwritten: ``load``
raises ``AnnotationsError`` naming the file and the problem, and only ``quarantine`` (called after the user
confirms) moves it aside as ``annotations.json.bad-<timestamp>``, so nothing is lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..files import atomic_write_text, locked
from .layout import Experiment

FORMAT = 2
READS = (1, 2)
DEFAULT_TAGS = ("MSA leakage", "wrong lexeme", "orthography", "wrong variety", "hallucination", "copy", "good")
MAX_COMMENT = 5000
MAX_SPANS = 50


class AnnotationsError(ValueError):
    """The annotations file exists but cannot be used as it is; the message says which file and why."""


def item_key(direction: str, sent_id: str) -> str:
    return f"{direction}|{sent_id}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class Span:
    """Characters ``start:end`` of one output, the ``text`` they held when marked, and a tag."""

    start: int
    end: int
    text: str
    tag: str
    extra: Mapping = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> dict:
        return {**self.extra, "start": self.start, "end": self.end, "text": self.text, "tag": self.tag}


@dataclass(frozen=True)
class Note:
    """Tags and a comment (on a sentence, or on one model's output, which may also hold spans)."""

    tags: tuple[str, ...] = ()
    comment: str = ""
    updated: str = ""
    spans: tuple[Span, ...] = ()
    extra: Mapping = field(default_factory=dict, compare=False, repr=False)

    @property
    def empty(self) -> bool:
        return not self.tags and not self.comment.strip() and not self.spans


@dataclass(frozen=True)
class Item:
    """Everything said about one test example: the sentence note and a note per model output."""

    note: Note = Note()
    outputs: Mapping[str, Note] = field(default_factory=dict)
    extra: Mapping = field(default_factory=dict, compare=False, repr=False)

    @property
    def empty(self) -> bool:
        return self.note.empty and all(n.empty for n in self.outputs.values()) and not self.extra


@dataclass(frozen=True)
class Annotations:
    tags: tuple[str, ...] = DEFAULT_TAGS
    items: Mapping[str, Item] = field(default_factory=dict)
    format: int = FORMAT            # the format of the file as read (1 for an old file, until it is saved)
    extra: Mapping = field(default_factory=dict, compare=False, repr=False)

    def note(self, key: str) -> Note:
        """The sentence note of ``key`` (what format 1 called the note)."""
        item = self.items.get(key)
        return item.note if item else Note()

    def output(self, key: str, model: str) -> Note:
        item = self.items.get(key)
        return item.outputs.get(model, Note()) if item else Note()

    def used_tags(self) -> set[str]:
        used = set()
        for item in self.items.values():
            for n in (item.note, *item.outputs.values()):
                used |= set(n.tags) | {s.tag for s in n.spans}
        return used

    def flat(self) -> dict[str, dict]:
        """key -> {"tags", "comment", "outputs": {model: {"tags", "comment", "spans": [{"text", "tag", ...}]}}}:
        plain values for tables and exports (``analysis.errors.export_frame``)."""
        return {k: {"tags": list(i.note.tags), "comment": i.note.comment,
                    "outputs": {m: {"tags": list(n.tags), "comment": n.comment,
                                    "spans": [s.to_json() for s in n.spans]} for m, n in i.outputs.items()}}
                for k, i in self.items.items()}


# ---------------------------------------------------------------- reading and writing


_NOTE_FIELDS = {"tags", "comment", "updated", "spans"}
_ITEM_FIELDS = _NOTE_FIELDS | {"outputs"}
_SPAN_FIELDS = {"start", "end", "text", "tag"}


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
    fmt = data.get("format")
    if fmt not in READS:
        raise bad(f"format {fmt!r}, this code reads formats {', '.join(map(str, READS))}")
    tags = data.get("tags", list(DEFAULT_TAGS))
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise bad("'tags' must be a list of strings")
    items = data.get("items", {})
    if not isinstance(items, dict):
        raise bad("'items' must be an object")

    def note(where: str, v, known: set[str]) -> Note:
        if (not isinstance(v, dict) or not isinstance(v.get("tags", []), list)
                or not all(isinstance(t, str) for t in v.get("tags", []))
                or not isinstance(v.get("comment", ""), str)):
            raise bad(f"{where} must hold 'tags' (a list of strings) and 'comment' (a string)")
        spans = v.get("spans", [])
        if not isinstance(spans, list):
            raise bad(f"{where}: 'spans' must be a list")
        out = []
        for s in spans:
            if (not isinstance(s, dict) or not isinstance(s.get("start"), int) or not isinstance(s.get("end"), int)
                    or not isinstance(s.get("text", ""), str) or not isinstance(s.get("tag", ""), str)
                    or not 0 <= s["start"] < s["end"]):
                raise bad(f"{where}: each span needs integer 'start' < 'end', 'text' and 'tag'")
            out.append(Span(s["start"], s["end"], s.get("text", ""), s.get("tag", ""),
                            {k: x for k, x in s.items() if k not in _SPAN_FIELDS}))
        return Note(tuple(v.get("tags", [])), v.get("comment", ""), str(v.get("updated", "")), tuple(out),
                    {k: x for k, x in v.items() if k not in known})

    parsed: dict[str, Item] = {}
    for k, v in items.items():
        sentence = note(f"item {k!r}", v, _ITEM_FIELDS)
        outputs = v.get("outputs", {})
        if not isinstance(outputs, dict):
            raise bad(f"item {k!r}: 'outputs' must be an object (model -> note)")
        parsed[k] = Item(replace(sentence, extra={}),
                         {m: note(f"item {k!r}, output {m!r}", o, _NOTE_FIELDS) for m, o in outputs.items()},
                         sentence.extra)
    extra = {k: v for k, v in data.items() if k not in ("format", "tags", "items")}
    return Annotations(tuple(tags), parsed, fmt, extra)


def _note_json(n: Note, extra: Mapping | None = None) -> dict:
    out = {**(extra if extra is not None else n.extra), "tags": list(n.tags), "comment": n.comment,
           "updated": n.updated}
    if n.spans:
        out["spans"] = [s.to_json() for s in n.spans]
    return out


def _dump(a: Annotations) -> str:
    items = {}
    for k, item in sorted(a.items.items()):
        if item.empty:
            continue
        entry = _note_json(item.note, item.extra)
        outputs = {m: _note_json(n) for m, n in sorted(item.outputs.items()) if not n.empty or n.extra}
        if outputs:
            entry["outputs"] = outputs
        items[k] = entry
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

    def stamp(self) -> int:
        """The file's modification time in ns (0 when absent): a cache key for what ``load`` returns."""
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    @contextmanager
    def _locked(self) -> Iterator[Annotations]:
        with locked(self.path.with_name(f".{self.path.name}.lock")):
            yield self.load()   # raises for a damaged file: nothing is written

    def _write(self, new: Annotations) -> Annotations:
        atomic_write_text(self.path, _dump(new))
        return replace(new, format=FORMAT)

    @staticmethod
    def _check(current: Annotations, tags: Sequence[str], comment: str) -> None:
        if len(comment) > MAX_COMMENT:
            raise ValueError(f"the comment is {len(comment)} characters long; keep it under {MAX_COMMENT}")
        unknown = [t for t in tags if t not in current.tags]
        if unknown:
            raise ValueError(f"unknown tag(s) {unknown}; add them to the tag list first")

    def save_note(self, key: str, tags: Sequence[str], comment: str, *, model: str | None = None) -> Annotations:
        """Set (or clear, when both are empty) the note of one example (``model`` None) or of one model's output
        of it (its spans are kept); returns the annotations as saved."""
        with self._locked() as current:
            self._check(current, tags, comment)
            item = current.items.get(key, Item())
            clean = {"tags": tuple(dict.fromkeys(tags)), "comment": comment.strip(), "updated": _now()}
            if model is None:
                item = replace(item, note=replace(item.note, **clean))
            else:
                item = replace(item, outputs={**item.outputs, model: replace(item.outputs.get(model, Note()),
                                                                             **clean)})
            return self._write(replace(current, items={**current.items, key: item}))

    def add_span(self, key: str, model: str, output: str, text: str, tag: str) -> Annotations:
        """Mark ``text`` (its first occurrence not yet marked) in ``output``, the model's output of ``key``."""
        text = text.strip()
        if not text:
            raise ValueError("type or paste the words to mark, exactly as they appear in the output")
        with self._locked() as current:
            self._check(current, [tag], "")
            item = current.items.get(key, Item())
            note = item.outputs.get(model, Note())
            if len(note.spans) >= MAX_SPANS:
                raise ValueError(f"this output already has {MAX_SPANS} marked spans")
            taken = {(s.start, s.end) for s in note.spans}
            start = output.find(text)
            while start >= 0 and (start, start + len(text)) in taken:
                start = output.find(text, start + 1)
            if start < 0:
                raise ValueError(f"'{text}' is not in this output" + (" (or every occurrence is marked already)"
                                                                      if output.find(text) >= 0 else
                                                                      "; copy the words from the output box"))
            span = Span(start, start + len(text), text, tag)
            spans = tuple(sorted((*note.spans, span), key=lambda s: (s.start, s.end)))
            item = replace(item, outputs={**item.outputs, model: replace(note, spans=spans, updated=_now())})
            return self._write(replace(current, items={**current.items, key: item}))

    def remove_span(self, key: str, model: str, start: int, end: int) -> Annotations:
        with self._locked() as current:
            item = current.items.get(key, Item())
            note = item.outputs.get(model, Note())
            spans = tuple(s for s in note.spans if (s.start, s.end) != (start, end))
            item = replace(item, outputs={**item.outputs, model: replace(note, spans=spans, updated=_now())})
            return self._write(replace(current, items={**current.items, key: item}))

    def save_tags(self, tags: Sequence[str]) -> Annotations:
        """Replace the editable tag list. A tag still used by a note or span cannot be removed (it would dangle)."""
        clean = tuple(dict.fromkeys(t.strip() for t in tags if t.strip()))
        if any(len(t) > 40 for t in clean):
            raise ValueError("keep each tag under 40 characters")
        with self._locked() as current:
            used = sorted(current.used_tags() - set(clean))
            if used:
                raise ValueError(f"tag(s) {used} are still used by saved notes; untag those examples first")
            return self._write(replace(current, tags=clean))

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
