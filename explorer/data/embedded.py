"""The embedded corpora that ship with the project (``data/corpora/``, attribution in ``data/NOTICE.md``).

FLORES-200 devtest for MSA, 8 dialects and English (the stage-2 corpus of the default experiment), and the
MSA–English pairs (Tatoeba, TICO-19, NTREX-128) that make MSA the dominant variety of the base model.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..version import REPO_ROOT
from .corpus import CorpusError, PairCorpus, ParallelCorpus, read_lines, read_nonempty, seeded_splits
from .varieties import ENG, FLORES_CODES, HR

DEFAULT_DATA = REPO_ROOT / "data" / "corpora"


def load_flores(root: Path = DEFAULT_DATA, *, dev: int = 100, test: int = 100, seed: int = 0) -> ParallelCorpus:
    """FLORES-200 devtest for MSA, the 8 dialects and English, line-aligned (NLLB Team et al. 2022).

    The split is drawn over sentences, not per variety, so a sentence is in the same split in every variety
    (a test sentence is never seen in another variety during training)."""
    folder = Path(root) / "flores200-devtest"
    columns: dict[str, list[str]] = {}
    first: Path | None = None
    for code in (*FLORES_CODES, ENG):
        path = folder / f"{code}_{'Latn' if code == ENG else 'Arab'}.devtest"
        columns[code] = read_nonempty(path)
        if first is None:
            first = path
        elif len(columns[code]) != len(columns[HR]):
            raise CorpusError(f"{path}: {len(columns[code])} lines but {first.name} has {len(columns[HR])}; "
                              "FLORES files must be line-aligned. Restore the file from its source.")
    n = len(columns[HR])
    frame = pd.DataFrame({"sent_id": [f"flores-devtest-{i:04d}" for i in range(1, n + 1)],
                          "split": seeded_splits(n, dev, test, seed, f"FLORES ({folder})"), **columns})
    note = (f"FLORES-200 devtest: {n} sentences in {len(FLORES_CODES)} Arabic varieties and English, split by "
            f"sentence with seed {seed}: dev {dev}, test {test}, train {n - dev - test}")
    return ParallelCorpus("flores", frame.astype(str), (note,))



# ---------------------------------------------------------------- MSA–English pairs for the base stage


_TASHKEEL = re.compile("[\u064B-\u0652\u0670\u0640]")  # short-vowel marks, shadda, sukun, dagger alif, tatweel


def strip_diacritics(text: str) -> str:
    """Arabic text without optional vowel marks and tatweel (the usual normalisation of Arabic MT data).

    Tatoeba's MSA is often fully vowelled (2% of its characters are marks) while FLORES and the dialect data
    mostly are not; left in, the marks fragment the tokenizer's vocabulary and a small model learns to emit
    runs of them."""
    return _TASHKEEL.sub("", text)


def _pairs(source: str, eng_path: Path, arb_path: Path, keep: list[bool] | None = None) -> pd.DataFrame:
    eng, arb = read_lines(eng_path), read_lines(arb_path)
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
    labels = [s.strip() for s in read_lines(labels_path)]
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
    split[pool] = seeded_splits(len(pool), dev, test, seed, "base pairs (Tatoeba+NTREX)")
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
