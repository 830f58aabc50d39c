"""An invented MADAR release, whole, in the exact shape of the official v1.1 one. Never real MADAR text.

The official ``MADAR.Parallel-Corpora-Public-Version1.1-25MAR2021`` archive unpacks to a README, a licence and
``MADAR_Corpus/``, whose README-announced 28 TSV files are one per variety (25 cities + MSA, header
``sentID.BTEC split lang sent``, ``lang`` the 3-letter city code or MSA) and two ID-only index files for English
and French. Corpus-26 rows (2,000 ids in every variety) carry splits ``corpus-6-test-corpus-26-train|dev|test``;
MSA and the five corpus-6 cities (Beirut, Cairo, Doha, Rabat, Tunis) have 10,000 more rows, ``corpus-6-train`` and
``corpus-6-dev``. The archive was packed on a Mac: it carries empty ``Icon\\r`` files, and an unpacked copy often
has ``.DS_Store`` files and a ``__MACOSX/`` folder beside the release. This builds all of it at a small scale, with
placeholder sentences made from a handful of invented words.
"""

from __future__ import annotations

from pathlib import Path

from explorer.data.madar import MADAR_FILE_NAMES

RELEASE = "MADAR.Parallel-Corpora-Public-Version1.1-25MAR2021"
CORPUS6 = ("MSA", "Beirut", "Cairo", "Doha", "Rabat", "Tunis")
HEADER = "sentID.BTEC\tsplit\tlang\tsent"
# invented vocabulary: Arabic-script syllables, not words of any MADAR sentence
_SYLLABLES = ["كا", "لي", "مو", "نا", "سي", "فو", "تر", "بل", "دن", "هو", "قر", "شم", "زي", "عد", "رح", "جو"]


def lang_code(city: str) -> str:
    return "MSA" if city == "MSA" else MADAR_FILE_NAMES[city].upper()


def sentence(city: str, sid: int) -> str:
    """A placeholder sentence, different in every city (a city-specific syllable) and every id."""
    c = sorted(MADAR_FILE_NAMES).index(city)
    words = [_SYLLABLES[(sid * (k + 3) + c * k) % len(_SYLLABLES)] + _SYLLABLES[(sid + k) % len(_SYLLABLES)]
             for k in range(3 + sid % 4)]
    return " ".join([_SYLLABLES[c % len(_SYLLABLES)] + "ة", *words]) + ("؟" if sid % 5 == 0 else ".")


def corpus26_ids(n: int) -> list[tuple[int, str]]:
    """(sentID.BTEC, split) of the parallel set: 80% train, 10% dev, 10% test, as 1,600/200/200 in the release."""
    out = []
    for i in range(n):
        split = "train" if i < n * 8 // 10 else "dev" if i < n * 9 // 10 else "test"
        out.append((10_000 + 7 * i, f"corpus-6-test-corpus-26-{split}"))
    return out


def corpus6_ids(n: int) -> list[tuple[int, str]]:
    return [(50_000 + 3 * i, "corpus-6-train" if i < n * 9 // 10 else "corpus-6-dev") for i in range(n)]


def write_city(folder: Path, city: str, n26: int, n6: int) -> Path:
    rows = [(sid, split) for sid, split in corpus26_ids(n26)]
    if city in CORPUS6:
        rows = corpus6_ids(n6) + rows
    lines = [HEADER, *(f"{sid}\t{split}\t{lang_code(city)}\t{sentence(city, sid)}" for sid, split in rows)]
    path = folder / f"MADAR.corpus.{city}.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_release(root: Path, *, n26: int = 120, n6: int = 30) -> Path:
    """Unpack an invented release under ``root``; returns the release folder (which holds ``MADAR_Corpus/``)."""
    release = root / RELEASE
    corpus = release / "MADAR_Corpus"
    corpus.mkdir(parents=True)
    for city in MADAR_FILE_NAMES:
        write_city(corpus, city, n26, n6)
    ids = corpus6_ids(n6) + corpus26_ids(n26)
    for lang, code in (("English", "EN"), ("French", "FR")):
        (corpus / f"MADAR.corpus.{lang}.index.tsv").write_text(
            "sentID.BTEC\tsplit\tlang\n" + "".join(f"{sid}\t{split}\t{code}\n" for sid, split in ids),
            encoding="utf-8")
    (release / "README.txt").write_text("Invented stand-in for the release's README (test data).\n", encoding="utf-8")
    (release / "LICENSE.txt").write_text("Invented stand-in for the release's licence (test data).\n",
                                         encoding="utf-8")
    for folder in (release, corpus):
        (folder / "Icon\r").write_bytes(b"")                  # the Finder icons the archive carries
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(20))
    mac = root / "__MACOSX" / RELEASE / "MADAR_Corpus"
    mac.mkdir(parents=True)
    (mac / "._MADAR.corpus.Cairo.tsv").write_bytes(b"\x00\x05\x16\x07" + bytes(28))
    return release
