"""The varieties table, the embedded corpora and the MADAR loader (explorer/corpus.py).

The MADAR tests write small INVENTED folders in the release's exact format; no MADAR text is used anywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from explorer.data.corpus import CorpusError, ParallelCorpus
from explorer.data.embedded import DEFAULT_DATA, load_base_pairs, load_flores, strip_diacritics
from explorer.data.madar import MADAR_FILE_NAMES, load_madar
from explorer.data.sources import load_corpus
from explorer.data.varieties import ENG, HR, MADAR_CODES, VARIETIES, UnknownVarietyError, varieties_frame, variety

FLORES = ("arb", "arz", "ary", "aeb", "apc", "ajp", "acm", "acq", "ars")
MADAR_CITIES = (
    "ale", "alx", "alg", "amm", "asw", "bag", "bas", "bei", "ben", "cai", "dam", "doh", "fes",
    "jed", "jer", "kha", "mos", "mus", "rab", "riy", "sal", "san", "sfx", "tri", "tun",
)

# ---------------------------------------------------------------- the varieties table


def test_variety_codes_are_unique_and_cover_both_corpora():
    codes = [v.code for v in VARIETIES]
    assert len(codes) == len(set(codes))
    assert HR in codes and ENG in codes
    assert set(FLORES) <= set(codes)
    assert set(MADAR_CITIES) <= set(codes)
    assert set(MADAR_CODES) == {*MADAR_CITIES, HR}
    assert MADAR_FILE_NAMES["MSA"] == HR and MADAR_FILE_NAMES["Sfax"] == "sfx" and len(MADAR_FILE_NAMES) == 26


def test_variety_metadata_is_complete():
    colors = [v.color for v in VARIETIES]
    assert len(set(colors)) == len(colors)
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colors)
    for v in VARIETIES:
        assert v.sources and set(v.sources) <= {"flores", "madar"}
        if v.code not in (HR, ENG):  # the standard and English have no place on the map
            assert -20 < v.lon < 60 and 10 < v.lat < 40, v
    assert variety("cai").city == "Cairo" and variety("cai").region == variety("arz").region
    assert variety(ENG).lat is None


def test_unknown_variety_says_what_exists():
    with pytest.raises(UnknownVarietyError, match=r"unknown variety code 'xyz'.*arb.*arz.*tun") as err:
        variety("xyz")
    assert isinstance(err.value, ValueError)


def test_varieties_frame_has_one_row_per_variety():
    df = varieties_frame()
    assert list(df["code"]) == [v.code for v in VARIETIES]
    assert {"name", "city", "country", "region", "lat", "lon", "sources", "color"} <= set(df.columns)
    assert df.loc[df["code"] == "bag", "lat"].item() == pytest.approx(33.31)
    assert pd.isna(df.loc[df["code"] == ENG, "lat"].item())


# ---------------------------------------------------------------- FLORES


@pytest.fixture(scope="module")
def flores() -> ParallelCorpus:
    return load_flores(dev=100, test=150, seed=3)


def test_flores_loads_all_varieties(flores):
    assert flores.name == "flores"
    assert len(flores.frame) == 1012
    assert flores.varieties == FLORES and flores.dialects == FLORES[1:] and flores.has_english
    assert list(flores.frame.columns) == ["sent_id", "split", *FLORES, ENG]
    assert flores.frame["sent_id"].iloc[0] == "flores-devtest-0001"
    assert flores.frame["sent_id"].iloc[-1] == "flores-devtest-1012"
    for code in (*FLORES, ENG):
        assert (flores.frame[code].str.strip() != "").all()


def test_flores_lines_stay_aligned(flores):
    # line i of each file is row i: check against the raw files
    eng = (DEFAULT_DATA / "flores200-devtest" / "eng_Latn.devtest").read_text(encoding="utf-8").splitlines()
    assert flores.texts(ENG) == [s.strip() for s in eng]
    assert flores.ids("test") == flores.split("test")["sent_id"].tolist()
    assert len(flores.texts("arz", "test")) == len(flores.ids("test"))


def test_flores_split_sizes_and_no_overlap(flores):
    sizes = flores.frame["split"].value_counts().to_dict()
    assert sizes == {"train": 1012 - 250, "dev": 100, "test": 150}
    ids = {s: set(flores.ids(s)) for s in ("train", "dev", "test")}
    assert not (ids["train"] & ids["dev"]) and not (ids["train"] & ids["test"]) and not (ids["dev"] & ids["test"])
    assert set.union(*ids.values()) == set(flores.frame["sent_id"])


def test_flores_split_is_by_sentence_and_deterministic(flores):
    # one row per sentence, so a sentence's split is shared by every variety column; it must also not depend on
    # the call, and a different seed must give a different split
    again = load_flores(dev=100, test=150, seed=3)
    pd.testing.assert_frame_equal(flores.frame, again.frame)
    other = load_flores(dev=100, test=150, seed=4)
    assert other.ids("test") != flores.ids("test")
    test = flores.split("test")
    for code in FLORES:
        assert test[code].tolist() == flores.texts(code, "test")


def test_flores_bad_sizes_and_split_names(flores):
    with pytest.raises(CorpusError, match="cannot hold out dev=600 and test=600 of 1012"):
        load_flores(dev=600, test=600)
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        flores.split("valid")
    with pytest.raises(CorpusError, match="no 'cai' column"):
        flores.texts("cai")
    with pytest.raises(UnknownVarietyError):
        flores.texts("xyz")


def _copy_flores(tmp_path: Path) -> Path:
    src = DEFAULT_DATA / "flores200-devtest"
    dst = tmp_path / "flores200-devtest"
    dst.mkdir()
    for f in src.glob("*.devtest"):
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_flores_misaligned_file_is_named(tmp_path):
    dst = _copy_flores(tmp_path)
    lines = (dst / "ary_Arab.devtest").read_text(encoding="utf-8").splitlines()
    (dst / "ary_Arab.devtest").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"ary_Arab\.devtest: 1011 lines but arb_Arab\.devtest has 1012"):
        load_flores(tmp_path)


def test_flores_empty_line_is_named(tmp_path):
    dst = _copy_flores(tmp_path)
    lines = (dst / "acm_Arab.devtest").read_text(encoding="utf-8").splitlines()
    lines[6] = "  "
    (dst / "acm_Arab.devtest").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"acm_Arab\.devtest, line 7: empty line"):
        load_flores(tmp_path)


def test_flores_missing_file_is_named(tmp_path):
    dst = _copy_flores(tmp_path)
    (dst / "ars_Arab.devtest").unlink()
    with pytest.raises(CorpusError, match=r"ars_Arab\.devtest: file not found"):
        load_flores(tmp_path)


# ---------------------------------------------------------------- MSA–English base pairs


@pytest.fixture(scope="module")
def pairs():
    return load_base_pairs(seed=0)


def test_base_pairs_sources_and_sides(pairs):
    df = pairs.frame
    assert list(df.columns) == ["sent_id", "source", ENG, HR, "split"]
    assert set(df["source"]) == {"tatoeba", "tico19", "ntrex128"}  # FLORES is the stage-2 corpus: never here
    assert (df[ENG].str.strip() != "").all() and (df[HR].str.strip() != "").all()
    assert df["sent_id"].is_unique
    assert len(df) > 12_000


def test_base_pairs_keep_only_msa_tatoeba_lines(pairs):
    tat = DEFAULT_DATA / "tatoeba-ara-eng"
    labels = (tat / "tatoeba-test-v2021-08-07.ara.labels").read_text(encoding="utf-8").splitlines()
    ara = (tat / "tatoeba-test-v2021-08-07.ara").read_text(encoding="utf-8").splitlines()
    kept = pairs.frame[pairs.frame["source"] == "tatoeba"]
    lines = [int(s.split("-")[1]) for s in kept["sent_id"]]
    assert all(labels[i - 1] == "ara" for i in lines)
    assert kept[HR].tolist() == [strip_diacritics(ara[i - 1]).strip() for i in lines]   # vowel marks dropped
    dialect_text = {strip_diacritics(a).strip() for a, lab in zip(ara, labels) if lab != "ara"} - {
        strip_diacritics(a).strip() for a, lab in zip(ara, labels) if lab == "ara"}
    assert not dialect_text & set(kept[HR])


def test_base_pairs_split(pairs):
    df = pairs.frame
    assert df["split"].value_counts()[["dev", "test"]].tolist() == [200, 200]
    held = df[df["split"] != "train"]
    assert set(held["source"]) <= {"tatoeba", "ntrex128"}
    train = df[df["split"] == "train"]
    assert not set(train[ENG]) & set(held[ENG]) and not set(train[HR]) & set(held[HR])
    pd.testing.assert_frame_equal(df, load_base_pairs(seed=0).frame)
    assert pairs.pairs("test") == list(zip(pairs.split("test")[ENG], pairs.split("test")[HR]))


def test_base_pairs_exclude_and_cap(pairs):
    first = pairs.frame["sent_id"].iloc[:3].tolist()
    capped = load_base_pairs(exclude_ids=set(first), max_pairs=50, seed=0)
    assert not set(first) & set(capped.frame["sent_id"])
    assert capped.frame["split"].value_counts().to_dict() == {"train": 50, "dev": 200, "test": 200}
    assert "over max_pairs=50" in capped.notes[0]


# ---------------------------------------------------------------- MADAR (invented data in the release format)

HEADER = "sentID.BTEC\tsplit\tlang\tsent"
IDS = [str(100 + i) for i in range(12)]
SPLIT_OF = {sid: ("train" if i < 8 else "dev" if i < 10 else "test") for i, sid in enumerate(IDS)}
LANG = {"MSA": "MSA", "Cairo": "CAI", "Sfax": "SFX", "Beirut": "BEI"}


def _sentence(city: str, sid: str) -> str:
    # invented placeholder text: "sentence <n> from <city>", with a quote to check QUOTE_NONE-style reading
    return f'جملة "{sid}" من {city}'


def _rows(city: str, *, prefix: bool) -> list[str]:
    out = []
    for sid in IDS:
        split = f"corpus-26-{SPLIT_OF[sid]}"
        if prefix:  # the 6 corpus-6 varieties carry both memberships in one value
            split = f"corpus-6-test-{split}"
        out.append(f"{sid}\t{split}\t{LANG[city]}\t{_sentence(city, sid)}")
    return out


def _write(folder: Path, city: str, lines: list[str]) -> Path:
    path = folder / f"MADAR.corpus.{city}.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def madar(tmp_path) -> Path:
    folder = tmp_path / "MADAR_Corpus"
    folder.mkdir()
    extra = [f"{900 + i}\tcorpus-6-{s}\tMSA\tجملة إضافية {i}" for i, s in enumerate(["train", "train", "dev"])]
    _write(folder, "MSA", [HEADER, *_rows("MSA", prefix=True), *extra])
    _write(folder, "Cairo", [HEADER, *reversed(_rows("Cairo", prefix=True))])  # order must not matter
    _write(folder, "Sfax", [HEADER, *_rows("Sfax", prefix=False)])
    _write(folder, "Beirut", [HEADER, *_rows("Beirut", prefix=True)])
    (folder / "MADAR.corpus.EN.tsv").write_text("sentID.BTEC\n100\n", encoding="utf-8")
    (folder / "README.txt").write_text("invented test folder\n", encoding="utf-8")
    return folder


def test_madar_loads_and_aligns(madar):
    corpus = load_madar(madar)
    assert corpus.name == "madar" and not corpus.has_english
    assert corpus.varieties == ("arb", "cai", "sfx", "bei")  # table order, not file order
    df = corpus.frame
    assert df["sent_id"].tolist() == IDS
    assert df["split"].tolist() == [SPLIT_OF[s] for s in IDS]
    for code, city in (("arb", "MSA"), ("cai", "Cairo"), ("sfx", "Sfax"), ("bei", "Beirut")):
        assert df[code].tolist() == [_sentence(city, s) for s in IDS]
    assert corpus.ids("test") == IDS[10:]
    assert corpus.texts("cai", "dev") == [_sentence("Cairo", s) for s in IDS[8:10]]


def test_madar_reports_what_it_skipped(madar):
    notes = "\n".join(load_madar(madar).notes)
    assert "MSA + 3 of 25 cities (Cairo, Sfax, Beirut)" in notes
    assert "not in the folder: Alexandria" in notes
    assert "skipped corpus-6-only rows" in notes and "MSA 3" in notes
    assert "MADAR.corpus.EN.tsv" in notes and "README.txt" in notes


def test_madar_folder_missing(tmp_path):
    with pytest.raises(CorpusError, match=r"nowhere.*does not exist"):
        load_madar(tmp_path / "nowhere")
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"afile is not a folder"):
        load_madar(tmp_path / "afile")


def test_madar_release_root_uses_its_corpus_subfolder(madar, tmp_path):
    corpus = load_madar(madar.parent)                         # the release's root folder, as unpacked
    assert corpus.dialects == ("cai", "sfx", "bei")
    assert any("using the subfolder MADAR_Corpus/" in n for n in corpus.notes)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match=r"no MADAR\.corpus\.<City>\.tsv files in this folder or its subfolders"):
        load_madar(empty)


def test_madar_msa_missing(madar):
    (madar / "MADAR.corpus.MSA.tsv").unlink()
    with pytest.raises(CorpusError, match=r"MADAR\.corpus\.MSA\.tsv is missing"):
        load_madar(madar)


def test_madar_msa_alone(madar):
    for city in ("Cairo", "Sfax", "Beirut"):
        (madar / f"MADAR.corpus.{city}.tsv").unlink()
    with pytest.raises(CorpusError, match=r"only MADAR\.corpus\.MSA\.tsv found"):
        load_madar(madar)


def test_madar_missing_column(madar):
    lines = _rows("Sfax", prefix=False)
    _write(madar, "Sfax", ["sentID.BTEC\tsplit\tsent", *[re.sub("\tSFX", "", s) for s in lines]])
    with pytest.raises(CorpusError, match=r"MADAR\.corpus\.Sfax\.tsv: missing column\(s\) lang; .*"
                                          r"\['sentID\.BTEC', 'split', 'sent'\]"):
        load_madar(madar)


def test_madar_duplicate_id(madar):
    lines = _rows("Cairo", prefix=True)
    _write(madar, "Cairo", [HEADER, *lines, lines[3]])
    with pytest.raises(CorpusError, match=r"MADAR\.corpus\.Cairo\.tsv, lines 5 and 14: duplicate sentID\.BTEC 103"):
        load_madar(madar)


def test_madar_empty_sentence(madar):
    lines = _rows("Beirut", prefix=True)
    lines[4] = lines[4].rsplit("\t", 1)[0] + "\t "
    _write(madar, "Beirut", [HEADER, *lines])
    with pytest.raises(CorpusError, match=r"MADAR\.corpus\.Beirut\.tsv, line 6: empty sentence for id 104"):
        load_madar(madar)


def test_madar_unknown_city(madar):
    _write(madar, "Atlantis", [HEADER, *_rows("Cairo", prefix=False)])
    with pytest.raises(CorpusError, match=r"MADAR\.corpus\.Atlantis\.tsv: unknown city 'Atlantis'.*Aleppo.*Tunis"):
        load_madar(madar)


def test_madar_not_utf8(madar):
    path = madar / "MADAR.corpus.Sfax.tsv"
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2] + "é".encode("latin-1")
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(CorpusError, match=r"MADAR\.corpus\.Sfax\.tsv, line 3: bytes that are not UTF-8"):
        load_madar(madar)


def test_madar_id_missing_from_a_city(madar):
    lines = _rows("Cairo", prefix=True)
    _write(madar, "Cairo", [HEADER, *lines[:5], *lines[7:]])
    with pytest.raises(CorpusError, match=r"MADAR\.corpus\.Cairo\.tsv: 2 corpus-26 sentence id\(s\) of "
                                          r"MADAR\.corpus\.MSA\.tsv are missing, e\.g\. 105, 106"):
        load_madar(madar)


def test_madar_wrong_field_count(madar):
    lines = _rows("Sfax", prefix=False)
    lines[1] = lines[1] + "\textra"
    _write(madar, "Sfax", [HEADER, *lines])
    with pytest.raises(CorpusError, match=r"MADAR\.corpus\.Sfax\.tsv, line 3: 5 tab-separated fields, expected 4"):
        load_madar(madar)


def test_madar_split_disagreement_and_unknown_split(madar):
    lines = _rows("Sfax", prefix=False)
    lines[0] = lines[0].replace("corpus-26-train", "corpus-26-test")
    _write(madar, "Sfax", [HEADER, *lines])
    with pytest.raises(CorpusError, match=r"MADAR\.corpus\.Sfax\.tsv, line 2: id 100 is in the test split"):
        load_madar(madar)
    lines[0] = lines[0].replace("corpus-26-test", "holdout")
    _write(madar, "Sfax", [HEADER, *lines])
    with pytest.raises(CorpusError, match=r"MADAR\.corpus\.Sfax\.tsv, line 2: unknown split value 'holdout'"):
        load_madar(madar)


# ---------------------------------------------------------------- load_corpus


def test_load_corpus_specs(madar):
    assert load_corpus("flores", dev=10, test=20).split("test").shape[0] == 20
    assert load_corpus().name == "flores"
    assert load_corpus(f"madar:{madar}").dialects == ("cai", "sfx", "bei")
    for bad in ("madar", "madar:", "FLORES200", "tatoeba"):
        with pytest.raises(CorpusError, match=r"unknown corpus spec.*'flores'.*'madar:/path/to/folder'"):
            load_corpus(bad)


# ---------------------------------------------------------------- the whole release, as unpacked (tests/madar_release.py)


@pytest.fixture
def release(tmp_path) -> Path:
    from madar_release import make_release

    return make_release(tmp_path / "unpacked")


def test_the_release_as_unpacked_loads(release):
    """Every file kind of the v1.1 release: 26 variety files, the English and French index files, README, licence,
    macOS leftovers. Given the release folder, its parent or MADAR_Corpus/ itself, the same corpus comes back."""
    from madar_release import sentence

    corpus = load_madar(release)
    assert len(corpus.dialects) == 25 and corpus.varieties[0] == HR and set(corpus.varieties) == set(MADAR_CODES)
    assert corpus.frame["split"].value_counts().to_dict() == {"train": 96, "dev": 12, "test": 12}
    first = corpus.frame["sent_id"].iloc[0]
    assert corpus.texts("cai")[0] == sentence("Cairo", int(first))
    for other in (release.parent, release / "MADAR_Corpus"):
        assert load_madar(other).frame.equals(corpus.frame)
    notes = "\n".join(corpus.notes)
    assert "MADAR.corpus.English.index.tsv (English index file" in notes
    assert "MADAR.corpus.French.index.tsv (French index file" in notes
    assert ".DS_Store (macOS folder metadata)" in notes and "Icon\\r (macOS folder icon)" in notes
    assert "skipped corpus-6-only rows (not 26-way parallel): MSA 30, Cairo 30, Rabat 30, Tunis 30, Beirut 30, " \
           "Doha 30" in notes


def test_inspecting_the_release_reports_varieties_files_and_no_problems(release):
    from explorer.data.report import inspect_corpus

    rep = inspect_corpus(f"madar:{release}")
    assert rep.ok and rep.corpus is not None and rep.folder.name == "MADAR_Corpus"
    counts = {v.code: (v.train, v.dev, v.test, v.extra) for v in rep.varieties}
    assert len(counts) == 26 and counts["arb"] == (96, 12, 12, 30) and counts["fes"] == (96, 12, 12, 0)
    assert next(v for v in rep.varieties if v.code == "sfx").source == "MADAR.corpus.Sfax.tsv"
    ignored = dict(rep.ignored)
    assert set(ignored) == {"MADAR.corpus.English.index.tsv", "MADAR.corpus.French.index.tsv", ".DS_Store", "Icon\\r"}
    assert "sentence ids only" in ignored["MADAR.corpus.French.index.tsv"]
    assert rep.notes == rep.corpus.notes                        # what a run records in data.json


def test_city_file_that_is_a_folder_is_named(release):
    corpus = release / "MADAR_Corpus"
    (corpus / "MADAR.corpus.Fes.tsv").unlink()
    (corpus / "MADAR.corpus.Fes.tsv").mkdir()                   # e.g. an archive unpacked into itself
    with pytest.raises(CorpusError, match=r"MADAR\.corpus\.Fes\.tsv: is a folder, not a file: the city file must be "
                                          r"the TSV itself"):
        load_madar(release)


def test_last_line_cut_mid_sentence_is_reported(release):
    path = release / "MADAR_Corpus" / "MADAR.corpus.Amman.tsv"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 6])                       # cut inside the last sentence: no line end
    n = data.count(b"\n")
    with pytest.raises(CorpusError, match=rf"MADAR\.corpus\.Amman\.tsv, line {n}: the last line has no line end: "
                                          r"the file may have been cut off in the middle of a sentence"):
        load_madar(release)


def test_every_problem_is_listed_at_once(release):
    from explorer.data.report import inspect_corpus

    corpus = release / "MADAR_Corpus"
    bad = corpus / "MADAR.corpus.Jeddah.tsv"
    lines = bad.read_text(encoding="utf-8").split("\n")
    lines[3] = lines[3] + "\textra"
    lines[7] = lines[7].replace("corpus-6-test-corpus-26-train", "corpus-26-holdout")
    bad.write_text("\n".join(lines), encoding="utf-8")
    (corpus / "MADAR.corpus.Atlantis.tsv").write_text(HEADER + "\n", encoding="utf-8")
    rep = inspect_corpus(f"madar:{release}")
    assert not rep.ok and rep.corpus is None
    text = "\n".join(rep.problems)
    assert "MADAR.corpus.Jeddah.tsv, line 4: 5 tab-separated fields" in text
    assert "MADAR.corpus.Jeddah.tsv, line 8: unknown split value 'corpus-26-holdout'" in text
    assert "MADAR.corpus.Atlantis.tsv: unknown city 'Atlantis'" in text
    assert len(rep.varieties) == 26                              # what could be read is still described
    with pytest.raises(CorpusError, match=r"has \d+ problem\(s\).*\n  - .*Atlantis"):
        load_madar(release)


def test_data_command_prints_the_report(release, capsys):
    from explorer.__main__ import main

    assert main(["data", f"madar:{release}"]) == 0
    out = capsys.readouterr().out
    assert "26 varieties, sentences per split" in out and "Modern Standard Arabic" in out
    assert "MADAR.corpus.English.index.tsv: English index file" in out
    assert main(["data", "flores", "--test-size", "50"]) == 0
    out = capsys.readouterr().out
    assert "Egyptian Arabic (Cairo)" in out and "   862   100    50" in out
    (release / "MADAR_Corpus" / "MADAR.corpus.MSA.tsv").unlink()
    assert main(["data", f"madar:{release}"]) == 2
    assert "MADAR.corpus.MSA.tsv is missing" in capsys.readouterr().out
