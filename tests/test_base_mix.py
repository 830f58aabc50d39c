"""Stage 1's data mix for the base that writes dialect (data.rundata): language modelling of every variety, a
share of dialect translation on some train ids, stage 2 on the others, and never a dev or test sentence."""

import pytest

from explorer.config import preset_config
from explorer.data.examples import Encoder
from explorer.data.rundata import load_run_data, splits_train_ids, stage1_ids
from explorer.data.varieties import ENG, HR


@pytest.fixture(scope="module")
def base_data():
    return load_run_data(preset_config("base"))


def _plain(sid: str) -> str:
    return sid.split(":", 1)[1] if ":" in sid else sid


def test_stage_1_never_sees_a_dev_or_test_sentence_in_any_variety(base_data):
    corpus = base_data.corpus
    held_out = set(corpus.split("dev")["sent_id"]) | set(corpus.split("test")["sent_id"])
    held_texts = {t for split in ("dev", "test") for v in (*corpus.varieties, ENG)
                  for t in corpus.split(split)[v]}
    seen = {_plain(e.sent_id) for e in base_data.base_train}
    assert held_out and not (seen & held_out)
    assert not {e.tgt_text for e in base_data.base_train if e.tgt != ENG} & held_texts
    assert not {e.src_text for e in base_data.base_train if e.src_text} & held_texts


def test_the_mix_has_every_task_and_msa_dominates(base_data):
    kinds = {}
    for e in base_data.base_train:
        kind = e.sent_id.split(":", 1)[0] if ":" in e.sent_id else "mt"
        kinds.setdefault((kind, e.src, e.tgt), []).append(e)
    dialects = base_data.dialects
    assert len(dialects) == 8
    for d in dialects:
        assert kinds[("lm", d, d)] and kinds[("mt", HR, d)] and kinds[("mt", d, HR)]
    assert all(e.src_text == "" for v in (HR, *dialects) for e in kinds[("lm", v, v)])
    assert sum(len(v) for (k, s, t), v in kinds.items() if k == "mt" and s in dialects and t in dialects) > 0
    words = {}
    for e in base_data.base_train:
        words[e.tgt] = words.get(e.tgt, 0) + len(e.tgt_text.split())
    # MSA is the variety written most, far more than any one dialect
    assert words[HR] == max(words[v] for v in (HR, *dialects))
    assert words[HR] > 3 * max(words[d] for d in dialects)


def test_stage_2_trains_on_the_ids_stage_1_did_not_translate(base_data):
    cfg = preset_config("default")
    assert splits_train_ids(cfg)
    data = load_run_data(cfg)
    train = data.corpus.split("train")
    s1 = set(stage1_ids(train, cfg.base_dialect_mt, seed=cfg.seed))
    assert 0.45 < len(s1) / len(train) < 0.55
    stage1_mt = {e.sent_id for e in base_data.base_train if ":" not in e.sent_id and HR in (e.src, e.tgt)
                 and ENG not in (e.src, e.tgt)}
    assert stage1_mt == s1                              # the base and the run agree on the split
    s2 = {e.sent_id for e in data.probe_pool}
    assert s2 and not (s2 & s1) and (s2 | s1) == set(train["sent_id"])


@pytest.mark.parametrize("overrides,splits", [
    ({}, True),                                         # the shipped base on FLORES
    ({"data": "madar:/nowhere"}, False),                # the shipped base never saw MADAR ids
    ({"base_dialect_mt": 0.0}, False),
    ({"model": "/some/model"}, False),                  # a user's model, no stage 1
    ({"model": "/some/model", "base_steps": 10}, True),  # a user's model trained by stage 1 here
])
def test_when_the_train_ids_are_split(overrides, splits):
    import dataclasses

    cfg = dataclasses.replace(preset_config("default"), **overrides)
    assert splits_train_ids(cfg) is splits


def test_a_language_modelling_example_has_no_source_tokens():
    from explorer.model.tokenizer import train_tokenizer
    from explorer.data.examples import Example
    from explorer.data.varieties import VARIETIES

    tok = train_tokenizer(["هذا نص قصير", "ده كلام"], vocab_size=320, tags=[v.code for v in VARIETIES])
    enc = Encoder(tok, [HR, "arz", ENG], max_len=16, target_position=24)
    ids, labels, var, pos = enc.example(Example("arz", "arz", "", "ده كلام", "lm:x"))
    prefix, suffix = enc.prefix("arz", "arz"), enc.suffix("arz")
    assert ids[: len(prefix) + len(suffix)] == prefix + suffix          # [bos] <arz> <arz>: nothing between
    assert pos[len(prefix)] == 24                                       # the target side starts at once
    assert all(v == -1 for v in var[: len(prefix) + len(suffix)])
