"""The MADAR corpus (Bouamor et al. 2018) from the user's copy of the official release (never shipped here).

The release (v1.1, ``MADAR.Parallel-Corpora-Public-Version1.1-25MAR2021``) unpacks to a README, a licence and a
``MADAR_Corpus/`` folder of 28 TSV files: one per variety, ``MADAR.corpus.<City>.tsv`` (25 cities + MSA), header
``sentID.BTEC split lang sent``, rows aligned across varieties by ``sentID.BTEC``; and two ID-only index files,
``MADAR.corpus.English.index.tsv`` and ``MADAR.corpus.French.index.tsv`` (the English and French text is not
distributed). An archive unpacked on a Mac may also hold ``.DS_Store``, ``Icon\\r`` and ``._*`` files and a
``__MACOSX/`` folder. All of that is recognised: the variety files are read, everything else is listed as
ignored with the reason, and the release's root folder may be given instead of ``MADAR_Corpus/``.

Every problem found is reported with its file and line, all of them at once (``scan_madar``), not only the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .corpus import SPLITS, CorpusError, ParallelCorpus, read_lines_ended
from .varieties import HR, VARIETIES, order_codes, variety

# File-name spelling -> code: `MADAR.corpus.<name>.tsv`.
MADAR_FILE_NAMES: dict[str, str] = {"MSA": HR} | {
    v.city: v.code for v in VARIETIES if "madar" in v.sources and v.code != HR
}
MADAR_COLUMNS = ("sentID.BTEC", "split", "lang", "sent")
PREFIX, SUFFIX = "MADAR.corpus.", ".tsv"

# Languages the release also covers (ID-only index files; or a text file a user added): not dialects.
_NON_DIALECT = {"en": "English", "eng": "English", "english": "English", "fr": "French", "fra": "French",
                "french": "French"}
_MAX_PER_FILE = 10          # problems listed per file before "and N more"


def _madar_split(value: str) -> str | None:
    """``train``/``dev``/``test`` for a corpus-26 row (whatever follows the last ``corpus-26-``, so both
    ``corpus-26-dev`` and ``corpus-6-test-corpus-26-dev`` work); None for a corpus-6-only row; ValueError else."""
    if "corpus-26-" in value:
        tail = value.rsplit("corpus-26-", 1)[1]
        if tail in SPLITS:
            return tail
    elif value.startswith("corpus-6-"):
        return None
    raise ValueError(value)


@dataclass
class _Problems:
    """Problems found so far, each naming its file (and line), capped per file."""

    items: list[str] = field(default_factory=list)
    per_file: dict[Path, int] = field(default_factory=dict)

    def add(self, path: Path, message: str, line: int | str | None = None) -> None:
        """``line``: a line number, or a phrase such as "lines 5 and 14"."""
        where = f", line {line}" if isinstance(line, int) else f", {line}" if line else ""
        self.add_text(path, f"{path}{where}: {message}")

    def add_text(self, path: Path, text: str) -> None:
        n = self.per_file.get(path, 0) + 1
        self.per_file[path] = n
        if n <= _MAX_PER_FILE:
            self.items.append(text)

    def finish(self) -> tuple[str, ...]:
        extra = [f"{p}: {n - _MAX_PER_FILE} more problem(s) like these" for p, n in self.per_file.items()
                 if n > _MAX_PER_FILE]
        return tuple(self.items + extra)


@dataclass(frozen=True)
class MadarFile:
    """One variety file: its corpus-26 rows {sentID: (split, sentence, line)} and its count of corpus-6 rows."""

    path: Path
    code: str
    rows: dict[str, tuple[str, str, int]]
    corpus6: int


@dataclass(frozen=True, eq=False)
class MadarScan:
    """Everything ``scan_madar`` found in a folder: the corpus (None when there are problems), the variety files,
    the files ignored and why, every problem (file and line) and the notes a run records."""

    folder: Path
    corpus: ParallelCorpus | None
    files: tuple[MadarFile, ...]
    ignored: tuple[tuple[str, str], ...]
    problems: tuple[str, ...]
    notes: tuple[str, ...]


def _read_madar_file(path: Path, code: str, problems: _Problems) -> MadarFile | None:
    """The corpus-26 rows of one MADAR TSV. Read by hand rather than with pandas so that every problem can name
    its line; a bad line is reported and skipped, and reading goes on to find the others."""
    try:
        lines, ended = read_lines_ended(path)
    except CorpusError as e:      # not UTF-8, unreadable: the message names the file (and line)
        problems.add_text(path, str(e))
        return None
    header = lines[0].split("\t") if lines else []
    missing = [c for c in MADAR_COLUMNS if c not in header]
    if missing:
        problems.add(path, f"missing column(s) {', '.join(missing)}; its header (line 1) has columns {header}. A "
                           f"MADAR file starts with the tab-separated header {' '.join(MADAR_COLUMNS)}; re-extract it "
                           "from the official release.")
        return None
    if not ended:
        problems.add(path, "the last line has no line end: the file may have been cut off in the middle of a "
                           "sentence. Re-extract it from the official release (if its last sentence is whole, add a "
                           f"line end: echo >> '{path}').", line=len(lines))
    at = {c: header.index(c) for c in MADAR_COLUMNS}
    rows: dict[str, tuple[str, str, int]] = {}
    corpus6 = 0
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            problems.add(path, f"{len(fields)} tab-separated fields, expected {len(header)} like the header; a "
                               "sentence may contain a tab or the line was cut. Fix that line.", lineno)
            continue
        sid, sent, value = fields[at["sentID.BTEC"]].strip(), fields[at["sent"]].strip(), fields[at["split"]].strip()
        try:
            split = _madar_split(value)
        except ValueError:
            problems.add(path, f"unknown split value {value!r}; expected corpus-26-train|dev|test (possibly "
                               "prefixed, e.g. corpus-6-test-corpus-26-dev) or corpus-6-train|dev|test. Fix the line "
                               "or re-extract the file from the official release.", lineno)
            continue
        if split is None:
            corpus6 += 1
            continue
        if not sid:
            problems.add(path, "empty sentID.BTEC; every row needs its sentence id.", lineno)
        elif not sent:
            problems.add(path, f"empty sentence for id {sid}; restore the sentence from the official release.", lineno)
        elif sid in rows:
            problems.add(path, f"duplicate sentID.BTEC {sid} among the corpus-26 rows; remove one of them.",
                         f"lines {rows[sid][2]} and {lineno}")
        else:
            rows[sid] = (split, sent, lineno)
    return MadarFile(path, code, rows, corpus6)


def _why_ignored(path: Path) -> str:
    name = path.name
    if name == "__MACOSX":
        return "macOS archive metadata (made when the archive was packed on a Mac)"
    if name == ".DS_Store":
        return "macOS folder metadata"
    if name.rstrip("\r") == "Icon" and name != "Icon":
        return "macOS folder icon"
    if name.startswith("._"):
        return "macOS resource fork of another file"
    if name.startswith("."):
        return "hidden file"
    if path.is_dir():
        return "a subfolder (not searched)"
    if name.lower().startswith("readme"):
        return "the release's README"
    if name.lower().startswith(("license", "licence")):
        return "the release's licence"
    return "not a MADAR.corpus.<City>.tsv file"


def _show(name: str) -> str:
    """A file name as it can be printed (``Icon\\r`` has a carriage return in it)."""
    return name if name.isprintable() else ascii(name)[1:-1]


def _corpus_folder(folder: Path) -> tuple[Path, list[str]]:
    """The folder that holds the variety files: ``folder`` itself or, for the release's root, its one subfolder
    that has them (``MADAR_Corpus``)."""
    if not folder.exists():
        raise CorpusError(f"MADAR folder {folder} does not exist; pass the folder that holds "
                          "MADAR.corpus.MSA.tsv and the city files (MADAR_Corpus/ in the official release).")
    if not folder.is_dir():
        raise CorpusError(f"MADAR path {folder} is not a folder; pass the folder that holds the "
                          "MADAR.corpus.<City>.tsv files, not a single file.")
    if any(p.name.startswith(PREFIX) for p in folder.iterdir()):
        return folder, []
    for pattern in (f"*/{PREFIX}*{SUFFIX}", f"*/*/{PREFIX}*{SUFFIX}"):   # the release folder, or where it was unpacked
        nested = sorted({p.parent for p in folder.glob(pattern) if "__MACOSX" not in p.parts})
        if nested:
            break
    if len(nested) == 1:
        return nested[0], [(f"using the subfolder {nested[0].relative_to(folder)}/ of {folder} (the release's corpus "
                           "folder)")]
    if nested:
        raise CorpusError(f"{folder}: no MADAR.corpus.<City>.tsv files in this folder, and several subfolders have "
                          f"some ({', '.join(p.name for p in nested)}); pass the one to use.")
    raise CorpusError(f"{folder}: no MADAR.corpus.<City>.tsv files in this folder or its subfolders. Pass the "
                      "MADAR_Corpus/ folder of the official release.")


def _madar_files(folder: Path, problems: _Problems) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """{code: path} of the variety files in ``folder``, and (name, reason) for everything else in it."""
    known = {name.lower(): code for name, code in MADAR_FILE_NAMES.items()}
    found: dict[str, Path] = {}
    ignored: list[tuple[str, str]] = []
    for path in sorted(folder.iterdir()):
        name = path.name
        if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
            ignored.append((_show(name), _why_ignored(path)))
            continue
        city = name[len(PREFIX):-len(SUFFIX)]
        if city.lower().endswith(".index"):
            lang = _NON_DIALECT.get(city.lower().removesuffix(".index"), "an ID-only")
            ignored.append((name, (f"{lang} index file: sentence ids only (MADAR does not distribute the "
                                  "English or French text)")))
        elif city.lower() in _NON_DIALECT:
            ignored.append((name, (f"{_NON_DIALECT[city.lower()]} is not an Arabic variety; EN<->MSA pairs come from "
                                  "the embedded corpora")))
        elif city.lower() not in known:
            problems.add(path, f"unknown city {city!r} in the file name; known names are MSA, "
                               f"{', '.join(sorted(set(MADAR_FILE_NAMES) - {'MSA'}))}. Rename the file or move it "
                               "out of the folder.")
        elif path.is_dir():
            problems.add(path, "is a folder, not a file: the city file must be the TSV itself. Replace the folder "
                               "with the file from the official release (was the archive unpacked into itself?).")
        elif known[city.lower()] in found:
            problems.add(path, f"a second file for {city} (the other is {found[known[city.lower()]].name}); "
                               "keep only one.")
        else:
            found[known[city.lower()]] = path
    return found, ignored


def scan_madar(folder: Path) -> MadarScan:
    """Read and check a MADAR folder, collecting every problem instead of stopping at the first.

    Rows are the corpus-26 sentence ids of MSA, aligned by ``sentID.BTEC`` across every variety file present,
    with MADAR's own train/dev/test split. Corpus-6 rows (extra MSA and 5-city training data, not 26-way
    parallel) are skipped and counted in ``notes``. A subset of cities is accepted (MSA plus at least one).
    Folder-level problems (no such folder, no variety file at all) raise CorpusError at once."""
    given = Path(folder).expanduser()
    folder, notes = _corpus_folder(given)
    problems = _Problems()
    paths, ignored = _madar_files(folder, problems)
    if HR not in paths:
        problems.add(folder, "MADAR.corpus.MSA.tsv is missing; MSA is the pivot every city is aligned to. Add it "
                             "from the official release.")
    elif len(paths) < 2 and not problems.items:
        problems.add(folder, "only MADAR.corpus.MSA.tsv found; add at least one city file.")
    files = [f for code in order_codes(paths) if (f := _read_madar_file(paths[code], code, problems)) is not None]
    msa = next((f for f in files if f.code == HR), None)
    if msa is not None and not msa.rows and msa.path not in problems.per_file:
        problems.add(msa.path, "no corpus-26 rows (split ending in corpus-26-train|dev|test); is this the right file?")
    if msa is not None:
        for f in files:
            if f is not msa:
                _check_alignment(f, msa, problems)
    ignored_t = tuple(ignored)
    if ignored_t:
        notes.append("ignored " + "; ".join(f"{n} ({why})" for n, why in ignored_t))
    found = problems.finish()
    if found:
        return MadarScan(folder, None, tuple(files), ignored_t, found, tuple(notes))
    columns = {HR: [msa.rows[sid][1] for sid in msa.rows]}
    for f in files:
        if f is not msa:
            columns[f.code] = [f.rows[sid][1] for sid in msa.rows]
    frame = pd.DataFrame({"sent_id": list(msa.rows), "split": [msa.rows[sid][0] for sid in msa.rows], **columns})
    cities = [variety(c).city for c in columns if c != HR]
    absent = [name for name, code in MADAR_FILE_NAMES.items() if code not in paths]
    notes.insert(0, f"loaded MSA + {len(cities)} of 25 cities ({', '.join(cities)}), {len(frame)} sentences"
                 + (f"; not in the folder: {', '.join(absent)}" if absent else ""))
    skipped6 = {("MSA" if f.code == HR else variety(f.code).city): f.corpus6 for f in files if f.corpus6}
    if skipped6:
        notes.append("skipped corpus-6-only rows (not 26-way parallel): "
                     + ", ".join(f"{k} {n}" for k, n in skipped6.items()))
    corpus = ParallelCorpus("madar", frame.astype(str), tuple(notes))
    return MadarScan(folder, corpus, tuple(files), ignored_t, (), tuple(notes))


def _check_alignment(f: MadarFile, msa: MadarFile, problems: _Problems) -> None:
    missing = [sid for sid in msa.rows if sid not in f.rows]
    if missing:
        problems.add(f.path, f"{len(missing)} corpus-26 sentence id(s) of {msa.path.name} are missing, e.g. "
                             f"{', '.join(missing[:5])}; every city must have all of MSA's ids. Re-extract the file "
                             "from the official release.")
    extra = [sid for sid in f.rows if sid not in msa.rows]
    if extra:
        problems.add(f.path, f"{len(extra)} corpus-26 sentence id(s) not in {msa.path.name}, e.g. "
                             f"{', '.join(extra[:5])}; the files must share the same ids.")
    for sid, (split, _, lineno) in f.rows.items():
        if sid in msa.rows and split != msa.rows[sid][0]:
            problems.add(f.path, f"id {sid} is in the {split} split but {msa.path.name} (line {msa.rows[sid][2]}) "
                                 f"puts it in {msa.rows[sid][0]}; the splits must agree.", lineno)


def load_madar(folder: Path) -> ParallelCorpus:
    """The MADAR corpus-26 parallel set (``scan_madar``); CorpusError listing every problem if there are any."""
    scan = scan_madar(folder)
    if scan.corpus is None:
        listed = "\n  - ".join(scan.problems)
        raise CorpusError(f"the MADAR folder {scan.folder} has {len(scan.problems)} problem(s); fix them and run "
                          f"again (`python -m explorer data madar:{scan.folder}` lists them):\n  - {listed}")
    return scan.corpus
