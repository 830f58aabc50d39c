"""The MADAR corpus (Bouamor et al. 2018) from the user's copy of the official release (never shipped here).

Format (DESIGN.md §3): one TSV per variety, ``MADAR.corpus.<City>.tsv``, header ``sentID.BTEC split lang sent``;
rows are aligned across varieties by ``sentID.BTEC``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .corpus import SPLITS, CorpusError, ParallelCorpus, read_lines
from .varieties import HR, VARIETIES, order_codes, variety

# File-name spelling -> code: `MADAR.corpus.<name>.tsv`.
MADAR_FILE_NAMES: dict[str, str] = {"MSA": HR} | {
    v.city: v.code for v in VARIETIES if "madar" in v.sources and v.code != HR
}


# Languages the release also ships (as ID-only files); not dialects, so skipped with a note.
_MADAR_NON_DIALECT = {"en", "eng", "english", "fr", "fra", "french"}


MADAR_COLUMNS = ("sentID.BTEC", "split", "lang", "sent")


def _madar_split(value: str, path: Path, lineno: int) -> str | None:
    """``train``/``dev``/``test`` for a corpus-26 row (whatever follows the last ``corpus-26-``, so both
    ``corpus-26-dev`` and ``corpus-6-test-corpus-26-dev`` work); None for a corpus-6-only row."""
    if "corpus-26-" in value:
        tail = value.rsplit("corpus-26-", 1)[1]
        if tail in SPLITS:
            return tail
    elif value.startswith("corpus-6-"):
        return None
    raise CorpusError(f"{path}, line {lineno}: unknown split value {value!r}; expected corpus-26-train|dev|test "
                      "(possibly prefixed, e.g. corpus-6-test-corpus-26-dev) or corpus-6-train|dev|test. "
                      "Fix the line or re-extract the file from the official release.")


def _read_madar_file(path: Path) -> tuple[dict[str, tuple[str, str, int]], int]:
    """The corpus-26 rows of one MADAR TSV as {sentID: (split, sentence, line)}, and the count of corpus-6 rows.
    Read by hand rather than with pandas so that every error can name its line."""
    lines = read_lines(path)
    header = lines[0].split("\t") if lines else []
    missing = [c for c in MADAR_COLUMNS if c not in header]
    if missing:
        raise CorpusError(f"{path}: missing column(s) {', '.join(missing)}; its header (line 1) has columns "
                          f"{header}. A MADAR file starts with the tab-separated header "
                          f"{' '.join(MADAR_COLUMNS)}; re-extract it from the official release.")
    at = {c: header.index(c) for c in MADAR_COLUMNS}
    rows: dict[str, tuple[str, str, int]] = {}
    corpus6 = 0
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise CorpusError(f"{path}, line {lineno}: {len(fields)} tab-separated fields, expected "
                              f"{len(header)} like the header; a sentence may contain a tab or the line was cut. "
                              "Fix that line.")
        sid, sent = fields[at["sentID.BTEC"]].strip(), fields[at["sent"]].strip()
        split = _madar_split(fields[at["split"]].strip(), path, lineno)
        if split is None:
            corpus6 += 1
            continue
        if not sid:
            raise CorpusError(f"{path}, line {lineno}: empty sentID.BTEC; every row needs its sentence id.")
        if not sent:
            raise CorpusError(f"{path}, line {lineno}: empty sentence for id {sid}; restore the sentence "
                              "from the official release.")
        if sid in rows:
            raise CorpusError(f"{path}, lines {rows[sid][2]} and {lineno}: duplicate sentID.BTEC {sid} among the "
                              "corpus-26 rows; remove one of them.")
        rows[sid] = (split, sent, lineno)
    return rows, corpus6


def _madar_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """{code: path} for the MADAR variety files in ``folder``, and notes on the files it skipped."""
    if not folder.exists():
        raise CorpusError(f"MADAR folder {folder} does not exist; pass the folder that holds "
                          "MADAR.corpus.MSA.tsv and the city files (MADAR_Corpus/ in the official release).")
    if not folder.is_dir():
        raise CorpusError(f"MADAR path {folder} is not a folder; pass the folder that holds the "
                          "MADAR.corpus.<City>.tsv files, not a single file.")
    known = {name.lower(): code for name, code in MADAR_FILE_NAMES.items()}
    found: dict[str, Path] = {}
    skipped, other = [], []
    for path in sorted(folder.iterdir()):
        name = path.name
        if not (path.is_file() and name.startswith("MADAR.corpus.") and name.endswith(".tsv")):
            if not name.startswith("."):
                other.append(name)
            continue
        city = name[len("MADAR.corpus."):-len(".tsv")]
        if city.lower() in _MADAR_NON_DIALECT:
            skipped.append(name)
        elif city.lower() not in known:
            raise CorpusError(f"{path}: unknown city {city!r} in the file name; known names are "
                              f"MSA, {', '.join(sorted(set(MADAR_FILE_NAMES) - {'MSA'}))}. Rename the file or move it out of the folder.")
        elif known[city.lower()] in found:
            raise CorpusError(f"{path}: a second file for {city} (the other is {found[known[city.lower()]].name});"
                              " keep only one.")
        else:
            found[known[city.lower()]] = path
    if not found:
        nested = sorted(p.parent.name for p in folder.glob("*/MADAR.corpus.*.tsv"))
        hint = f" The subfolder {nested[0]!r} has some: pass {folder / nested[0]}." if nested else ""
        raise CorpusError(f"{folder}: no MADAR.corpus.<City>.tsv files in this folder.{hint}")
    if HR not in found:
        raise CorpusError(f"{folder}: MADAR.corpus.MSA.tsv is missing; MSA is the pivot every city is aligned to. "
                          "Add it from the official release.")
    if len(found) < 2:
        raise CorpusError(f"{folder}: only MADAR.corpus.MSA.tsv found; add at least one city file.")
    notes = []
    if skipped:
        notes.append(f"ignored non-dialect files: {', '.join(skipped)}")
    if other:
        notes.append(f"ignored {len(other)} other file(s): {', '.join(other[:5])}{' ...' if len(other) > 5 else ''}")
    return found, notes


def load_madar(folder: Path) -> ParallelCorpus:
    """The MADAR corpus-26 parallel set (Bouamor et al. 2018) from the user's copy of the official release.

    Rows are the corpus-26 sentence ids of MSA, aligned by ``sentID.BTEC`` across every variety file present,
    with MADAR's own train/dev/test split. Corpus-6 rows (extra MSA and 5-city training data, not 26-way
    parallel) are skipped and counted in ``notes``. A subset of cities is accepted (MSA plus at least one)."""
    folder = Path(folder).expanduser()
    files, notes = _madar_files(folder)
    msa_path = files[HR]
    msa, msa6 = _read_madar_file(msa_path)
    if not msa:
        raise CorpusError(f"{msa_path}: no corpus-26 rows (split ending in corpus-26-train|dev|test); "
                          "is this the right file?")
    columns = {HR: [msa[sid][1] for sid in msa]}
    corpus6 = {"MSA": msa6}
    for code in order_codes(files)[1:]:
        path, city = files[code], variety(code).city
        rows, n6 = _read_madar_file(path)
        corpus6[city] = n6
        missing = [sid for sid in msa if sid not in rows]
        if missing:
            raise CorpusError(f"{path}: {len(missing)} corpus-26 sentence id(s) of {msa_path.name} are missing, "
                              f"e.g. {', '.join(missing[:5])}; every city must have all of MSA's ids. "
                              "Re-extract the file from the official release.")
        extra = [sid for sid in rows if sid not in msa]
        if extra:
            raise CorpusError(f"{path}: {len(extra)} corpus-26 sentence id(s) not in {msa_path.name}, e.g. "
                              f"{', '.join(extra[:5])}; the files must share the same ids.")
        for sid, (split, _, lineno) in rows.items():
            if split != msa[sid][0]:
                raise CorpusError(f"{path}, line {lineno}: id {sid} is in the {split} split but {msa_path.name} "
                                  f"(line {msa[sid][2]}) puts it in {msa[sid][0]}; the splits must agree.")
        columns[code] = [rows[sid][1] for sid in msa]
    frame = pd.DataFrame({"sent_id": list(msa), "split": [msa[sid][0] for sid in msa], **columns}).astype(str)
    cities = [variety(c).city for c in columns if c != HR]
    absent = [name for name, code in MADAR_FILE_NAMES.items() if code not in files]
    notes.insert(0, f"loaded MSA + {len(cities)} of 25 cities ({', '.join(cities)}), {len(frame)} sentences"
                 + (f"; not in the folder: {', '.join(absent)}" if absent else ""))
    skipped6 = {k: n for k, n in corpus6.items() if n}
    if skipped6:
        notes.append("skipped corpus-6-only rows (not 26-way parallel): "
                     + ", ".join(f"{k} {n}" for k, n in skipped6.items()))
    return ParallelCorpus("madar", frame, tuple(notes))
