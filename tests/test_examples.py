"""Encoding of translation examples (loss mask, per-token variety labels) and the fixed batch schedule."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.data.examples import IGNORE, Encoder, Example, batch_schedule, collate, directions_for
from explorer.model.tokenizer import prepare_tokenizer, train_tokenizer

CODES = ["arb", "arz", "eng"]


@pytest.fixture(scope="module")
def enc():
    texts = ["مرحبا بالعالم", "ازيك يا صاحبي", "hello world", "كيف حالك اليوم"] * 30
    tok = train_tokenizer(texts, vocab_size=300, tags=CODES)
    prepare_tokenizer(tok)
    return Encoder(tok, CODES, max_len=16)


def test_loss_covers_only_the_target_and_labels_follow_segments(enc):
    ex = Example("arb", "arz", "مرحبا بالعالم", "ازيك يا صاحبي")
    ids, labels, var = enc.example(ex)
    p_ids, p_var = enc.prompt("arb", "arz", "مرحبا بالعالم")
    assert ids[: len(p_ids)] == p_ids and var[: len(p_ids)] == p_var
    assert all(x == IGNORE for x in labels[: len(p_ids)])
    assert labels[len(p_ids):] == ids[len(p_ids):] and ids[-1] == enc.tok.eos_token_id
    # source tokens carry arb (0), target tokens arz (1), tags/bos/eos -1
    assert set(var[: len(p_ids)]) == {-1, 0} and set(var[len(p_ids):-1]) == {1} and var[-1] == -1
    assert enc.tok.decode(ids[len(p_ids):-1]).strip() == "ازيك يا صاحبي"


def test_batched_encoding_equals_one_by_one(enc):
    exs = [Example("arb", "arz", "مرحبا بالعالم " * k, "ازيك") for k in range(1, 6)]
    exs += [Example("eng", "arb", "hello world", "كيف حالك اليوم")]
    assert enc.encode_all(exs) == [enc.example(e) for e in exs]
    assert max(len(x[0]) for x in enc.encode_all(exs)) <= 2 * 16 + 4  # truncation per side


def test_collate_pads_right_and_masks(enc):
    b = collate(enc.encode_all([Example("arb", "arz", "مرحبا", "ازيك يا صاحبي"),
                                Example("arb", "arz", "مرحبا بالعالم كيف حالك", "ازيك")]), enc.tok.pad_token_id)
    assert b["input_ids"].shape == b["labels"].shape == b["variety"].shape == b["attention_mask"].shape
    pad = b["attention_mask"] == 0
    assert (b["labels"][pad] == IGNORE).all() and (b["variety"][pad] == -1).all()


def test_batch_schedule_is_fixed_by_the_seed_and_covers_each_epoch():
    lengths = list(np.random.default_rng(0).integers(5, 50, size=103))
    a = batch_schedule(lengths, batch_size=8, steps=30, seed=3)
    b = batch_schedule(lengths, batch_size=8, steps=30, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == 30
    first_epoch = np.concatenate(a[:13])
    assert sorted(first_epoch.tolist()) == list(range(103))
    c = batch_schedule(lengths, batch_size=8, steps=30, seed=4)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    with pytest.raises(ValueError, match="no training examples"):
        batch_schedule([], batch_size=8, steps=1, seed=0)


def test_directions():
    assert directions_for(["arz"], english=True) == [("arb", "arz"), ("arz", "arb"), ("eng", "arb"), ("arb", "eng")]
    assert directions_for(["arz", "ary"], english=False) == [("arb", "arz"), ("arb", "ary"), ("arz", "arb"), ("ary", "arb")]


def test_aligned_positions_put_the_target_at_a_fixed_position(enc):
    aligned = Encoder(enc.tok, CODES, max_len=16, target_position=24)
    short = Example("arb", "arz", "مرحبا", "ازيك يا صاحبي")
    long = Example("arb", "arz", "مرحبا بالعالم كيف حالك اليوم", "ازيك")
    rows = aligned.encode_all([short, long])
    assert rows == [aligned.example(short), aligned.example(long)]
    for ex, (ids, labels, var, pos) in zip([short, long], rows):
        p_ids, _ = aligned.prompt(ex.src, ex.tgt, ex.src_text)
        n_src = len(p_ids) - 1                       # the target tag is one token
        assert len(pos) == len(ids)
        assert pos[:n_src] == list(range(n_src))     # the source counts from 0 as usual
        assert pos[n_src:] == list(range(24, 24 + len(ids) - n_src))   # tag, then target, from 24 on
        assert aligned.prompt_positions(p_ids, ex.tgt) == pos[: len(p_ids)]
        assert (ids, labels, var) == enc.example(ex)  # same tokens as without alignment
    b = collate(rows, enc.tok.pad_token_id)
    assert b["position_ids"].shape == b["input_ids"].shape
    first_target = [pos.index(24) for *_, pos in rows]
    assert [int(b["position_ids"][i, j]) for i, j in enumerate(first_target)] == [24, 24]
    assert "position_ids" not in collate(enc.encode_all([short]), enc.tok.pad_token_id)
    with pytest.raises(ValueError, match="overlaps"):
        Encoder(enc.tok, CODES, max_len=16, target_position=3).example(long)
