"""Varieties table, the embedded corpora (FLORES-200, MSA–English pairs) and the MADAR loader (DESIGN.md §3).

Everything downstream (training, maps, colours, labels) names a variety by one short code from ``VARIETIES``,
so the table here is the single source of truth. Loaders return frozen corpora whose frames are *parallel*:
every row has a non-empty text in every variety column. Every data problem raises ``CorpusError`` naming the
file, the line where it applies, what is wrong and what to do.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HR = "arb"  # the high-resource standard variety (MSA), in FLORES and MADAR alike
ENG = "eng"
SPLITS = ("train", "dev", "test")
DEFAULT_DATA = Path(__file__).resolve().parent.parent / "data" / "corpora"


# ---------------------------------------------------------------- the varieties table


@dataclass(frozen=True)
class Variety:
    """One language variety. ``lat``/``lon`` place it on maps (None for MSA and English, which have no city)."""

    code: str
    name: str
    city: str | None
    country: str | None
    region: str
    lat: float | None
    lon: float | None
    sources: tuple[str, ...]
    color: str


def _v(code, name, city, country, region, lat, lon, sources, color) -> Variety:
    return Variety(code, name, city, country, region, lat, lon, tuple(sources.split()), color)


# Regions follow the usual dialect groups (MADAR's own grouping, with Iraq split out as Mesopotamian so that it
# matches FLORES' acm). Colours share a hue per region so that maps read by region first.
VARIETIES: tuple[Variety, ...] = (
    _v("arb", "Modern Standard Arabic", None, None, "Standard", None, None, "flores madar", "#1f1f1f"),
    # FLORES-200 dialects; the city is a representative one for the map.
    _v("arz", "Egyptian Arabic (Cairo)", "Cairo", "Egypt", "Nile Valley", 30.04, 31.24, "flores", "#d62728"),
    _v("ary", "Moroccan Arabic (Rabat)", "Rabat", "Morocco", "Maghrebi", 34.02, -6.84, "flores", "#2ca02c"),
    _v("aeb", "Tunisian Arabic (Tunis)", "Tunis", "Tunisia", "Maghrebi", 36.81, 10.18, "flores", "#66bd63"),
    _v("apc", "North Levantine Arabic (Beirut)", "Beirut", "Lebanon", "Levantine", 33.89, 35.50, "flores",
       "#1f77b4"),
    _v("ajp", "South Levantine Arabic (Amman)", "Amman", "Jordan", "Levantine", 31.95, 35.93, "flores", "#17becf"),
    _v("acm", "Mesopotamian Arabic (Baghdad)", "Baghdad", "Iraq", "Mesopotamian", 33.31, 44.36, "flores",
       "#9467bd"),
    _v("acq", "Ta'izzi-Adeni Arabic (Taiz)", "Taiz", "Yemen", "Yemeni", 13.58, 44.02, "flores", "#e377c2"),
    _v("ars", "Najdi Arabic (Riyadh)", "Riyadh", "Saudi Arabia", "Gulf", 24.71, 46.68, "flores", "#8c564b"),
    # MADAR's 25 cities (Bouamor et al. 2018); `city` is spelled as in the release's file names.
    _v("cai", "Cairo Arabic", "Cairo", "Egypt", "Nile Valley", 30.04, 31.24, "madar", "#b2182b"),
    _v("alx", "Alexandria Arabic", "Alexandria", "Egypt", "Nile Valley", 31.20, 29.92, "madar", "#ef6548"),
    _v("asw", "Aswan Arabic", "Aswan", "Egypt", "Nile Valley", 24.09, 32.90, "madar", "#fc8d59"),
    _v("kha", "Khartoum Arabic", "Khartoum", "Sudan", "Nile Valley", 15.50, 32.56, "madar", "#8c2d04"),
    _v("rab", "Rabat Arabic", "Rabat", "Morocco", "Maghrebi", 34.02, -6.84, "madar", "#1b7837"),
    _v("fes", "Fes Arabic", "Fes", "Morocco", "Maghrebi", 34.03, -5.00, "madar", "#5aae61"),
    _v("alg", "Algiers Arabic", "Algiers", "Algeria", "Maghrebi", 36.75, 3.06, "madar", "#a6d96a"),
    _v("tun", "Tunis Arabic", "Tunis", "Tunisia", "Maghrebi", 36.81, 10.18, "madar", "#006837"),
    _v("sfx", "Sfax Arabic", "Sfax", "Tunisia", "Maghrebi", 34.74, 10.76, "madar", "#b8e186"),
    _v("tri", "Tripoli Arabic", "Tripoli", "Libya", "Maghrebi", 32.89, 13.19, "madar", "#4d9221"),
    _v("ben", "Benghazi Arabic", "Benghazi", "Libya", "Maghrebi", 32.12, 20.07, "madar", "#7fbc41"),
    _v("bei", "Beirut Arabic", "Beirut", "Lebanon", "Levantine", 33.89, 35.50, "madar", "#08519c"),
    _v("dam", "Damascus Arabic", "Damascus", "Syria", "Levantine", 33.51, 36.29, "madar", "#3182bd"),
    _v("ale", "Aleppo Arabic", "Aleppo", "Syria", "Levantine", 36.20, 37.16, "madar", "#6baed6"),
    _v("jer", "Jerusalem Arabic", "Jerusalem", "Palestine", "Levantine", 31.78, 35.22, "madar", "#2171b5"),
    _v("amm", "Amman Arabic", "Amman", "Jordan", "Levantine", 31.95, 35.93, "madar", "#9ecae1"),
    _v("sal", "Salt Arabic", "Salt", "Jordan", "Levantine", 32.04, 35.73, "madar", "#4292c6"),
    _v("bag", "Baghdad Arabic", "Baghdad", "Iraq", "Mesopotamian", 33.31, 44.36, "madar", "#54278f"),
    _v("bas", "Basra Arabic", "Basra", "Iraq", "Mesopotamian", 30.51, 47.78, "madar", "#807dba"),
    _v("mos", "Mosul Arabic", "Mosul", "Iraq", "Mesopotamian", 36.34, 43.13, "madar", "#bcbddc"),
    _v("riy", "Riyadh Arabic", "Riyadh", "Saudi Arabia", "Gulf", 24.71, 46.68, "madar", "#a6761d"),
    _v("jed", "Jeddah Arabic", "Jeddah", "Saudi Arabia", "Gulf", 21.49, 39.19, "madar", "#e6ab02"),
    _v("doh", "Doha Arabic", "Doha", "Qatar", "Gulf", 25.29, 51.53, "madar", "#bf812d"),
    _v("mus", "Muscat Arabic", "Muscat", "Oman", "Gulf", 23.59, 58.41, "madar", "#dfc27d"),
    _v("san", "Sanaa Arabic", "Sanaa", "Yemen", "Yemeni", 15.37, 44.19, "madar", "#c51b7d"),
    _v("eng", "English", None, None, "English", None, None, "flores", "#7f7f7f"),
)
_BY_CODE = {v.code: v for v in VARIETIES}

FLORES_CODES: tuple[str, ...] = tuple(v.code for v in VARIETIES if "flores" in v.sources and v.code != ENG)
MADAR_CODES: tuple[str, ...] = tuple(v.code for v in VARIETIES if "madar" in v.sources)
# File-name spelling -> code: `MADAR.corpus.<name>.tsv`.
MADAR_FILE_NAMES: dict[str, str] = {"MSA": HR} | {
    v.city: v.code for v in VARIETIES if "madar" in v.sources and v.code != HR
}
# Languages the release also ships (as ID-only files); not dialects, so skipped with a note.
_MADAR_NON_DIALECT = {"en", "eng", "english", "fr", "fra", "french"}
MADAR_COLUMNS = ("sentID.BTEC", "split", "lang", "sent")


class UnknownVarietyError(ValueError):
    """A variety code that is not in ``VARIETIES``."""


class CorpusError(ValueError):
    """A data problem; the message names the file (and line) and what to do about it."""


def variety(code: str) -> Variety:
    """The table entry for ``code``; raises ``UnknownVarietyError`` listing the codes that exist."""
    try:
        return _BY_CODE[code]
    except KeyError:
        raise UnknownVarietyError(
            f"unknown variety code {code!r}. Known codes: {', '.join(_BY_CODE)}. "
            "Use one of these (lowercase ISO 639-3 codes for FLORES, 3-letter MADAR city codes for MADAR)."
        ) from None


def varieties_frame() -> pd.DataFrame:
    """One row per variety (code, name, city, country, region, lat, lon, sources, color) for maps and tables."""
    rows = [{**asdict(v), "sources": ", ".join(v.sources)} for v in VARIETIES]
    return pd.DataFrame(rows).astype({"lat": float, "lon": float})


def _order(codes) -> list[str]:
    """Codes in table order: HR first, dialects as listed in ``VARIETIES``, English last."""
    rank = {c: i for i, c in enumerate(_BY_CODE)}
    return sorted(set(codes), key=lambda c: (c != HR, c == ENG, rank[c]))


# ---------------------------------------------------------------- corpora


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
        if cols[2:] != _order(cols[2:]):
            raise CorpusError(f"{self.name}: variety columns must be in table order {_order(cols[2:])}")
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


def _read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file, split on ``\\n`` only (``str.splitlines`` would also split on U+2028 and other
    separators that can sit inside a sentence and would silently break line alignment)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"{path}: file not found; restore it (the embedded corpora ship in data/corpora/) "
                          "or point the tool at a folder that has it") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read the file ({e.strerror}); check its permissions") from None
    chunks = raw.removeprefix(codecs.BOM_UTF8).split(b"\n")
    if chunks and chunks[-1] == b"":
        chunks.pop()
    lines = []
    for lineno, chunk in enumerate(chunks, start=1):
        try:
            lines.append(chunk.removesuffix(b"\r").decode("utf-8"))
        except UnicodeDecodeError as e:
            raise CorpusError(f"{path}, line {lineno}: bytes that are not UTF-8 (byte {e.start} of the line); "
                              "re-save the file as UTF-8") from None
    return lines


def _read_nonempty(path: Path) -> list[str]:
    lines = _read_lines(path)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise CorpusError(f"{path}, line {lineno}: empty line; every line must hold one sentence, aligned "
                              "with the same line of the other files. Restore the file from its source.")
    return [line.strip() for line in lines]


def _seeded_splits(n: int, dev: int, test: int, seed: int, what: str) -> np.ndarray:
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


# ---------------------------------------------------------------- FLORES-200 devtest


def load_flores(root: Path = DEFAULT_DATA, *, dev: int = 100, test: int = 100, seed: int = 0) -> ParallelCorpus:
    """FLORES-200 devtest for MSA, the 8 dialects and English, line-aligned (NLLB Team et al. 2022).

    The split is drawn over sentences, not per variety, so a sentence is in the same split in every variety
    (a test sentence is never seen in another variety during training)."""
    folder = Path(root) / "flores200-devtest"
    columns: dict[str, list[str]] = {}
    first: Path | None = None
    for code in (*FLORES_CODES, ENG):
        path = folder / f"{code}_{'Latn' if code == ENG else 'Arab'}.devtest"
        columns[code] = _read_nonempty(path)
        if first is None:
            first = path
        elif len(columns[code]) != len(columns[HR]):
            raise CorpusError(f"{path}: {len(columns[code])} lines but {first.name} has {len(columns[HR])}; "
                              "FLORES files must be line-aligned. Restore the file from its source.")
    n = len(columns[HR])
    frame = pd.DataFrame({"sent_id": [f"flores-devtest-{i:04d}" for i in range(1, n + 1)],
                          "split": _seeded_splits(n, dev, test, seed, f"FLORES ({folder})"), **columns})
    return ParallelCorpus("flores", frame.astype(str))


# ---------------------------------------------------------------- MSA–English pairs for the base stage


_TASHKEEL = re.compile("[\u064B-\u0652\u0670\u0640]")  # short-vowel marks, shadda, sukun, dagger alif, tatweel


def strip_diacritics(text: str) -> str:
    """Arabic text without optional vowel marks and tatweel (the usual normalisation of Arabic MT data).

    Tatoeba's MSA is often fully vowelled (2% of its characters are marks) while FLORES and the dialect data
    mostly are not; left in, the marks fragment the tokenizer's vocabulary and a small model learns to emit
    runs of them."""
    return _TASHKEEL.sub("", text)


def _pairs(source: str, eng_path: Path, arb_path: Path, keep: list[bool] | None = None) -> pd.DataFrame:
    eng, arb = _read_lines(eng_path), _read_lines(arb_path)
    if len(eng) != len(arb) or (keep is not None and len(keep) != len(eng)):
        raise CorpusError(f"{arb_path}: {len(arb)} lines but {eng_path.name} has {len(eng)}"
                          + (f" and the labels file {len(keep)}" if keep is not None else "")
                          + "; the files must be line-aligned. Restore them from their source.")
    frame = pd.DataFrame({"sent_id": [f"{source}-{i:05d}" for i in range(1, len(eng) + 1)], "source": source,
                          ENG: [s.strip() for s in eng], HR: [strip_diacritics(s).strip() for s in arb]})
    return frame if keep is None else frame[keep]


def load_base_pairs(root: Path = DEFAULT_DATA, *, exclude_ids: set[str] | None = None,
                    max_pairs: int | None = None, dev: int = 200, test: int = 200, seed: int = 0) -> PairCorpus:
    """MSA–English pairs that make MSA the dominant Arabic variety of the base model.

    Sources: Tatoeba ara-eng (only lines labelled ``ara``, i.e. MSA; its dialect lines would leak dialect into
    the base), TICO-19 en-ar and NTREX-128 eng-US/arb. FLORES is left out: it is the stage-2 corpus and holds its
    test set. Pairs with an empty side and exact duplicate pairs are dropped. Dev/test are drawn (seeded) from
    Tatoeba+NTREX, which cover everyday and news text; TICO-19 is train only. Train pairs that share a side with
    a dev/test pair are dropped so that held-out text is never trained on.

    ``exclude_ids`` drops pairs by ``sent_id`` (e.g. ``{"tatoeba-00012"}``); ``max_pairs`` caps the *train*
    split (seeded sample), leaving dev/test unchanged so that evaluations stay comparable.
    """
    root = Path(root)
    tat = root / "tatoeba-ara-eng"
    labels_path = tat / "tatoeba-test-v2021-08-07.ara.labels"
    labels = [s.strip() for s in _read_lines(labels_path)]
    frame = pd.concat([
        _pairs("tatoeba", tat / "tatoeba-test-v2021-08-07.eng", tat / "tatoeba-test-v2021-08-07.ara",
               keep=[lab == "ara" for lab in labels]),
        _pairs("tico19", root / "tico19-en-ar" / "tico19-test.en", root / "tico19-en-ar" / "tico19-test.ar"),
        _pairs("ntrex128", root / "ntrex128" / "newstest2019-ref.eng-US.txt",
               root / "ntrex128" / "newstest2019-ref.arb.txt"),
    ], ignore_index=True)
    dropped: dict[str, int] = {}

    def drop(frame: pd.DataFrame, mask: pd.Series, why: str) -> pd.DataFrame:  # counts for the notes
        dropped[why] = int(mask.sum())
        return frame[~mask]

    frame = drop(frame, (frame[ENG] == "") | (frame[HR] == ""), "with an empty side")
    frame = drop(frame, frame["sent_id"].isin(exclude_ids or set()), "excluded by id")
    frame = drop(frame, frame.duplicated(subset=[ENG, HR]), "exact duplicates").reset_index(drop=True)

    split = np.full(len(frame), "train", dtype=object)
    pool = np.flatnonzero(frame["source"].isin(["tatoeba", "ntrex128"]).to_numpy())
    split[pool] = _seeded_splits(len(pool), dev, test, seed, "base pairs (Tatoeba+NTREX)")
    frame["split"] = split
    held = frame[frame["split"] != "train"]
    frame = drop(frame, (frame["split"] == "train") & (frame[ENG].isin(held[ENG]) | frame[HR].isin(held[HR])),
                 "sharing a side with a dev/test pair")
    if max_pairs is not None:
        train = np.flatnonzero((frame["split"] == "train").to_numpy())
        cut = np.zeros(len(frame), dtype=bool)
        if max_pairs < len(train):
            cut[np.random.default_rng([seed, 1]).choice(train, size=len(train) - max_pairs, replace=False)] = True
        frame = drop(frame, pd.Series(cut, index=frame.index), f"over max_pairs={max_pairs}")
    frame = frame.reset_index(drop=True)[["sent_id", "source", ENG, HR, "split"]].astype(str)
    reasons = "; ".join(f"{n} {why}" for why, n in dropped.items() if n)
    notes = (f"kept {len(frame)} MSA–English pairs" + (f", dropped {reasons}" if reasons else ""),)
    return PairCorpus(frame, notes)


# ---------------------------------------------------------------- MADAR (user-supplied)


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
    lines = _read_lines(path)
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
    for code in _order(files)[1:]:
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


# ---------------------------------------------------------------- one entry point


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
