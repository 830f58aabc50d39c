"""The shipped base (data/base/, issue 13) and the stage-1 recipe that builds it (jitter, dialect copies)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from explorer.config import preset_config
from explorer.data.examples import jitter_rows
from explorer.data.varieties import HR
from explorer.model.shipped import SHIPPED_BASE, verify
from explorer.model.errors import ModelLoadError

TP = 20   # a target position


def _row(n_source: int, n_target: int) -> tuple:
    """An aligned row laid out as the encoder lays it out: source positions 0.., then the target side from TP."""
    pos = list(range(n_source)) + list(range(TP, TP + n_target))
    n = n_source + n_target
    return ([1] * n, [-100] * n_source + [2] * n_target, [0] * n, pos)


def test_jitter_moves_only_the_target_side_and_never_into_the_source():
    rows = [_row(s, 6) for s in (3, 10, 19, 20)]     # the last two: the source ends right before TP
    seen = set()
    for seed in range(40):
        out = jitter_rows(rows, TP, 2, np.random.default_rng(seed))
        for (ids, labels, var, pos), (_, _, _, before) in zip(out, rows):
            n_source = sum(1 for p in before if p < TP)
            assert pos[:n_source] == before[:n_source]                  # the source keeps its positions
            off = pos[n_source] - TP
            assert -2 <= off <= 2
            assert pos[n_source] > pos[n_source - 1] if n_source else True   # target after the source
            assert pos[n_source:] == [p + off for p in before[n_source:]]    # the target side moves as one
            seen.add((n_source, off))
    assert {o for n, o in seen if n == 3} == {-2, -1, 0, 1, 2}            # every offset drawn
    assert {o for n, o in seen if n == 20} == {0, 1, 2}                   # never back into the source


def test_jitter_is_a_function_of_its_generator():
    rows = [_row(5, 4)] * 8
    a = jitter_rows(rows, TP, 1, np.random.default_rng([0, 77, 12]))
    b = jitter_rows(rows, TP, 1, np.random.default_rng([0, 77, 12]))
    assert a == b                     # a resumed run draws the same offsets at the same step
    assert jitter_rows(rows, TP, 0, np.random.default_rng(1)) == rows


def test_dialect_copies_come_from_the_runs_dialects_and_are_not_replayed():
    from explorer.data.rundata import load_run_data

    cfg = preset_config("tiny", base_dialect_copy=0.25)
    data = load_run_data(cfg)
    copies = [e for e in data.base_train if e.src == e.tgt and e.src != HR]
    msa = [e for e in data.base_train if e.src == e.tgt == HR]
    assert copies and {e.src for e in copies} == set(data.dialects)
    assert all(e.src_text == e.tgt_text for e in copies)
    n_train = len({e.sent_id for e in data.probe_pool})           # the train split's sentences
    assert len(copies) == min(round(len(msa) * 0.25), n_train * len(data.dialects))
    assert len({(e.src, e.sent_id) for e in copies}) == len(copies)       # drawn without replacement
    assert not [e for e in data.stage2_train if e.sent_id.startswith("dcopy:")]
    assert not [e for e in load_run_data(preset_config("tiny")).base_train if e.sent_id.startswith("dcopy:")]


# ---------------------------------------------------------------- the shipped base itself


def test_the_shipped_base_is_there_verified_and_translates():
    """The default preset starts from it: its files match the card, and it decodes a sentence into text."""
    from explorer.evaluation.decoding import translate
    from explorer.model.loading import load_model
    from explorer.model.prompts import encoder_for

    card = verify(SHIPPED_BASE)
    assert card["steps"] >= 1000 and card["scores"]["arb-arb"] > 50          # a base that copies MSA
    assert "MADAR" not in json.dumps(card["config"]["data"])
    size = sum(p.stat().st_size for p in SHIPPED_BASE.iterdir())
    assert size <= 25 * 2**20
    model, tok = load_model(SHIPPED_BASE)
    enc = encoder_for(model, tok, [HR, "arz", "eng"], 64)
    src = "ذهبت إلى السوق أمس واشتريت بعض الخضروات."
    out = translate(model, tok, enc, [(HR, HR, src)], max_new_tokens=32, batch_size=1)[0]
    assert len(out.split()) >= 3 and out != ""


def test_a_damaged_shipped_base_is_refused_naming_the_file(tmp_path):
    folder = tmp_path / "base"
    shutil.copytree(SHIPPED_BASE, folder)
    blob = bytearray((folder / "model.safetensors").read_bytes())
    blob[-10] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ModelLoadError, match=r"model\.safetensors does not match the checksum"):
        verify(folder)
    shutil.copy2(SHIPPED_BASE / "model.safetensors", folder / "model.safetensors")
    card = verify(folder)                                 # whole again: every file checked against an independent hash
    import hashlib
    assert "model.safetensors" in card["files"] and card["files"] == {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in card["files"]}
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json is missing"):
        verify(folder)
    (folder / "card.json").unlink()
    with pytest.raises(ModelLoadError, match="no shipped base"):
        verify(folder)


def test_the_default_preset_starts_from_the_shipped_base():
    from explorer.experiment.models import uses_shipped_base

    assert uses_shipped_base(preset_config("default"))
    assert not uses_shipped_base(preset_config("default", base_steps=100))   # --base-steps N trains one
    assert not uses_shipped_base(preset_config("tiny"))                     # CI never needs the weights


@pytest.mark.slow
def test_a_short_base_build_gives_a_loadable_base_of_the_shipped_shape(tmp_path):
    """`python -m explorer base` for a few steps: the same architecture and tensor shapes as data/base, a card
    whose checksums verify, and a model that loads."""
    from safetensors import safe_open

    from explorer.experiment.basebuild import build_base
    from explorer.model.loading import load_model

    cfg = preset_config("base", base_steps=6, base_copy_warmup=2, eval_size=2, ckpt_every=3)
    card = build_base(cfg, tmp_path / "base", tmp_path / "work", bar=False)
    assert card["steps"] == 6 and set(card["scores"]) >= {"eng-arb", "arb-eng", "arb-arb"}
    verify(tmp_path / "base")
    load_model(tmp_path / "base")

    def shapes(folder):
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 - safe_open is not a dict

    assert shapes(tmp_path / "base") == shapes(SHIPPED_BASE)
    arch = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
            "dde_target_position")
    ours, shipped = (json.loads((f / "config.json").read_text()) for f in (tmp_path / "base", SHIPPED_BASE))
    assert {k: ours.get(k) for k in arch} == {k: shipped.get(k) for k in arch}


def test_tags_that_stage_1_trained_keep_their_embeddings():
    """A base trained with dialect copies has learned its dialect tags: stage 2 must not overwrite them with MSA's
    (only tags it never saw start from MSA's)."""
    from explorer.model.small import build_small_model, init_variety_tags
    from explorer.model.tokenizer import train_tokenizer

    texts = ["ذهبت إلى السوق", "I went to the market", "رحت السوق"] * 20
    tok = train_tokenizer(texts, vocab_size=400, tags=[HR, "arz", "ary", "eng"])
    model = build_small_model(tok, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=16, seed=0)
    emb = model.get_input_embeddings().weight
    before = emb.detach().clone()
    model.config.dde_trained_tags = [HR, "arz", "eng"]
    with __import__("torch").no_grad():
        done = init_variety_tags(model, tok, ["arz", "ary"], like=HR)
    assert done == ["ary"]
    ids = {c: tok(f"<{c}>", add_special_tokens=False)["input_ids"][0] for c in (HR, "arz", "ary")}
    assert (emb[ids["arz"]] == before[ids["arz"]]).all()          # trained: kept
    assert (emb[ids["ary"]] == before[ids[HR]]).all()             # never trained: MSA's
