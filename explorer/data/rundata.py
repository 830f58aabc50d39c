"""Everything one run trains and evaluates on, built from its config: corpus, dialects, examples per stage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import RunConfig
from .corpus import ParallelCorpus
from .embedded import load_base_pairs
from .examples import Example, pair_examples, parallel_examples
from .sources import load_corpus
from .varieties import ENG, HR


@dataclass
class RunData:
    corpus: ParallelCorpus
    dialects: list[str]
    codes: list[str]              # variety index used for per-token labels: [HR, *dialects, ENG]
    base_train: list[Example]
    stage2_train: list[Example]
    probe_pool: list[Example]     # MSA<->dialect training examples (the probe's buffers come from here)
    test: list[Example]           # every evaluated (direction, sentence)


def run_dialects(corpus, varieties: tuple[str, ...], n_dialects: int) -> list[str]:
    """The dialects a run uses: ``varieties`` (all of the corpus's if empty), then the first ``n_dialects`` in table
    order (0 = all), whatever the corpus; ValueError naming the option and what to use when one does not fit."""
    available = list(corpus.dialects)
    if varieties:
        unknown = [v for v in varieties if v not in available]
        if unknown:
            raise ValueError(f"--varieties {','.join(unknown)}: not in the {corpus.name} corpus, whose dialects are "
                             f"{','.join(available)}. Use some of those (or leave --varieties empty for all).")
        available = [v for v in available if v in varieties]
    if n_dialects > len(available):
        raise ValueError(f"--n-dialects {n_dialects}: the {corpus.name} corpus offers {len(available)} "
                         f"dialect(s) here ({','.join(available)}). Use --n-dialects {len(available)} or 0 (all).")
    return available[:n_dialects] if n_dialects else available


def load_run_data(cfg: RunConfig) -> RunData:
    corpus = load_corpus(cfg.data, dev=cfg.dev_size, test=cfg.test_size, seed=cfg.seed)
    dialects = run_dialects(corpus, cfg.varieties, cfg.n_dialects)
    codes = [HR, *dialects, ENG]
    pairs = load_base_pairs(seed=cfg.seed)
    base_frame = pairs.frame[pairs.frame["split"] == "train"]
    base_train = pair_examples(base_frame)
    train = corpus.split("train")
    if corpus.has_english:  # FLORES' own train split also teaches EN<->MSA
        base_train += pair_examples(train.assign(sent_id=train["sent_id"]))
    msa_copies = copy_examples(base_train, cfg.base_copy, seed=cfg.seed)
    base_train += msa_copies
    replay_pool = list(base_train)      # stage 2 replays EN<->MSA and MSA copies, never a dialect copy
    base_train += dialect_copies(train, dialects, round(len(msa_copies) * cfg.base_dialect_copy), seed=cfg.seed)
    base_train += lm_examples(train, [HR, *dialects], cfg.base_lm)
    md = [(HR, d) for d in dialects] + [(d, HR) for d in dialects]
    stage2_frame = train
    if splits_train_ids(cfg):
        s1 = stage1_ids(train, cfg.base_dialect_mt, seed=cfg.seed)
        in_s1 = train["sent_id"].isin(s1)
        base_train += dialect_translations(train[in_s1], dialects, cfg.base_dialect_pairs,
                                           seed=cfg.seed) * cfg.base_dialect_times
        stage2_frame = train[~in_s1]
    probe_pool = parallel_examples(stage2_frame, md)
    rng = np.random.default_rng([cfg.seed, 17])
    n_replay = round(len(probe_pool) * cfg.replay / max(1e-9, 1 - cfg.replay)) if cfg.replay > 0 else 0
    replay = [replay_pool[i] for i in rng.choice(len(replay_pool), size=min(n_replay, len(replay_pool)),
                                                 replace=False)] if n_replay else []
    stage2 = probe_pool + replay
    test_frame = corpus.split("test")
    if cfg.eval_size:
        test_frame = test_frame.iloc[: cfg.eval_size]
    test = parallel_examples(test_frame, md)
    if corpus.has_english:
        test += parallel_examples(test_frame, [(ENG, HR), (HR, ENG)])
    else:
        pt = pairs.frame[pairs.frame["split"] == "test"]
        pt = pt.iloc[: cfg.eval_size] if cfg.eval_size else pt
        test += pair_examples(pt)
    return RunData(corpus, dialects, codes, base_train, stage2, probe_pool, test)


def splits_train_ids(cfg: RunConfig) -> bool:
    """Whether stage 1 trained on the dialect translations of some FLORES train ids (``--base-dialect-mt``), so that
    stage 2 must train on the others: when this run trains stage 1, or starts from the shipped base on FLORES (the
    corpus it was built on). A shipped base on MADAR, or a user's model without stage 1, saw none of the ids."""
    if cfg.base_dialect_mt <= 0:
        return False
    return cfg.base_steps > 0 or (not cfg.model and cfg.data == "flores")


def stage1_ids(train, share: float, *, seed: int) -> list[str]:
    """The train sentence ids whose dialect translations stage 1 sees (a seeded ``share`` of them, sorted)."""
    ids = sorted(train["sent_id"])
    n = round(len(ids) * share)
    pick = np.random.default_rng([seed, 31]).choice(len(ids), size=n, replace=False)
    return sorted(ids[i] for i in pick)


def lm_examples(train, varieties: list[str], times: int) -> list[Example]:
    """Language modelling as a stage-1 task: every train sentence of each variety, ``times`` times, as a target
    with an empty source under its tag (``[bos] <arz> <arz> text </s>``): what a pre-trained LM has read of each
    variety, without anything to translate."""
    return [Example(v, v, "", t, f"lm:{sid}") for _ in range(times) for v in varieties
            for sid, t in zip(train["sent_id"], train[v])]


def dialect_translations(frame, dialects: list[str], pairs_per: float, *, seed: int) -> list[Example]:
    """Stage 1's share of dialect translation, from the rows of ``frame`` (the stage-1 ids): MSA→dialect and
    dialect→MSA for every dialect, and ``pairs_per`` dialect→dialect pairs per MSA→dialect pair (FLORES is
    multi-way parallel; those pairs make the target tag, not the source, decide the variety written)."""
    out = parallel_examples(frame, [(HR, d) for d in dialects] + [(d, HR) for d in dialects])
    combos = [(a, b, i) for a in dialects for b in dialects if a != b for i in range(len(frame))]
    n = min(len(combos), round(pairs_per * len(frame) * len(dialects)))
    if n > 0:
        ids, rows = frame["sent_id"].tolist(), frame.reset_index(drop=True)
        for k in sorted(np.random.default_rng([seed, 37]).choice(len(combos), size=n, replace=False)):
            a, b, i = combos[k]
            out.append(Example(a, b, rows[a][i], rows[b][i], ids[i]))
    return out


def dialect_copies(train, dialects: list[str], n: int, *, seed: int) -> list[Example]:
    """``n`` dialect->same-dialect copies drawn from the train split's sentences of ``dialects`` (no English, no
    MSA pair: the base sees each dialect's words without learning to translate into it)."""
    pool = [(d, t, sid) for d in dialects for sid, t in zip(train["sent_id"], train[d])]
    if n <= 0 or not pool:
        return []
    idx = np.random.default_rng([seed, 6]).choice(len(pool), size=min(n, len(pool)), replace=False)
    return [Example(pool[i][0], pool[i][0], pool[i][1], pool[i][1], f"dcopy:{pool[i][2]}") for i in sorted(idx)]


def copy_examples(base_train: list[Example], share: float, *, seed: int) -> list[Example]:
    """MSA→MSA examples making up ``share`` of the base stage (drawn, seeded, from its MSA sides).

    A pre-trained LM arrives knowing MSA well; a model trained from scratch on EN↔MSA alone never learns
    to reproduce Arabic text, so every MSA→dialect output starts from nothing. Copying MSA gives the base
    that competence cheaply, and makes "the model answers in MSA when asked for a dialect" (the entanglement
    the paper is about) the starting point of stage 2."""
    if share <= 0:
        return []
    if share >= 1:
        raise ValueError("--base-copy must be below 1 (it is the share of copy examples in stage 1)")
    msa = {e.tgt_text: e.sent_id for e in base_train if e.tgt == HR}
    texts = sorted(msa)
    n = min(len(texts), round(len(base_train) * share / (1 - share)))
    idx = np.random.default_rng([seed, 23]).choice(len(texts), size=n, replace=False)
    return [Example(HR, HR, texts[i], texts[i], f"copy:{msa[texts[i]]}") for i in sorted(idx)]
