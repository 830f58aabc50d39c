"""The pieces the training loop and the evaluation rely on: the target-only loss, the decoder with explicit
positions, the copy examples of stage 1 and the Arabic normalisation of the base pairs."""

from __future__ import annotations

import pytest
import torch

from explorer.data.embedded import load_base_pairs, strip_diacritics
from explorer.data.examples import Example
from explorer.data.rundata import copy_examples
from explorer.data.varieties import HR
from explorer.evaluation.decoding import greedy_decode
from explorer.model.loading import load_model
from explorer.training.loop import lm_loss, plain_head


def _batch(vocab: int):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (3, 14), generator=g)
    att = torch.ones_like(ids)
    att[0, 10:] = 0
    labels = ids.clone()
    labels[:, :6] = -100
    labels[0, 10:] = -100
    return {"input_ids": ids, "attention_mask": att, "labels": labels}


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_target_only_loss_equals_the_models_own_loss(tiny_models, arch):
    model, tok = load_model(tiny_models[arch])
    inputs = _batch(len(tok))
    assert plain_head(model) == (arch == "llama")    # GPT-2 goes through its own forward
    ours = lm_loss(model, inputs)
    ref = model(**inputs).loss
    assert torch.allclose(ours, ref, atol=1e-5)
    ours.backward()                                   # and it trains the model
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_greedy_decode_with_contiguous_positions_equals_generate(tiny_models):
    model, tok = load_model(tiny_models["llama"])
    model.eval()
    ids = torch.randint(5, len(tok), (3, 9), generator=torch.Generator().manual_seed(2))
    att = torch.ones_like(ids)
    att[0, :3] = 0                                    # a left-padded row
    ids[0, :3] = tok.pad_token_id
    pos = (att.cumsum(-1) - 1).clamp_min(0)
    ours = greedy_decode(model, ids, att, pos, max_new_tokens=10, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    ref = model.generate(input_ids=ids, attention_mask=att, max_new_tokens=10, do_sample=False,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)[:, 9:]
    assert torch.equal(ours, ref[:, : ours.shape[1]])


def test_greedy_decode_honours_shifted_positions(tiny_models):
    """With every position shifted, the first step equals a plain forward pass at those positions."""
    model, tok = load_model(tiny_models["llama"])
    model.eval()
    ids = torch.randint(5, len(tok), (1, 6), generator=torch.Generator().manual_seed(3))
    att = torch.ones_like(ids)
    pos = torch.arange(6)[None] + 40
    first = greedy_decode(model, ids, att, pos, max_new_tokens=1, eos_id=-1, pad_id=0)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=att, position_ids=pos).logits[:, -1].argmax(-1)
    assert first[:, 0].tolist() == ref.tolist()


def test_copy_examples_make_up_the_requested_share():
    base = [Example("eng", HR, f"e{i}", f"a{i}", f"p{i}") for i in range(300)]
    base += [Example(HR, "eng", f"a{i}", f"e{i}", f"p{i}") for i in range(300)]
    copies = copy_examples(base, 0.25, seed=0)
    assert len(copies) == 200                         # 200 / (600 + 200) = 25%
    assert all(c.src == c.tgt == HR and c.src_text == c.tgt_text for c in copies)
    assert {c.src_text for c in copies} <= {f"a{i}" for i in range(300)}
    assert copies == copy_examples(base, 0.25, seed=0) and copies != copy_examples(base, 0.25, seed=1)
    assert copy_examples(base, 0.0, seed=0) == []
    with pytest.raises(ValueError, match="below 1"):
        copy_examples(base, 1.0, seed=0)


def test_base_pairs_lose_their_vowel_marks_but_keep_their_letters():
    assert strip_diacritics("القَلْبِ المُستوي") == "القلب المستوي"
    assert strip_diacritics("كتــاب") == "كتاب"
    frame = load_base_pairs().frame
    assert not frame[HR].str.contains("[\u064B-\u0652]").any()


def test_settings_that_cannot_work_are_refused_before_any_training():
    from explorer.config import preset_config

    with pytest.raises(ValueError, match="num-beams"):
        preset_config("tiny", num_beams=4)
    preset_config("tiny", num_beams=4, aligned_positions=False)       # generate() decodes that model
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("huge")
    with pytest.raises(ValueError, match="--rank"):
        preset_config("tiny", rank=0)
