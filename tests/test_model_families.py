"""Any causal LM of the common families through --model (issue 11): tiny random-weight Llama, Qwen2, Qwen3, Gemma 3
(text), Mistral and GPT-2 models built from their config classes, saved like a user's folder, with tokenizers shaped
like the real ones (no pad token, no bos, chat templates). Fast tier: a second or two for all six."""

from __future__ import annotations

import pytest
import torch
from model_families import FAMILIES

from explorer.data.examples import IGNORE, Encoder, Example, collate
from explorer.data.varieties import HR
from explorer.evaluation.decoding import translate
from explorer.method.decoupler import penalty
from explorer.method.hooks import capture, count_hooks, project
from explorer.method.subspace import random_subspace
from explorer.model.loading import load_model
from explorer.model.sites import all_sites, find_decoder_layers, hidden_size
from explorer.model.prompts import encoder_for, prompt_style
from explorer.training.loop import lm_loss

CODES = [HR, "arz", "eng"]
FAMS = sorted(FAMILIES)
EXAMPLES = [Example(HR, "arz", "مرحبا بالعالم هذا اختبار", "عامل ايه يا صاحبي"),
            Example("arz", HR, "عامل ايه يا صاحبي", "ما هو اسمك؟"),
            Example("eng", HR, "hello world this is a test", "مرحبا بالعالم")]


@pytest.fixture(scope="module", params=FAMS)
def loaded(request, family_models):
    model, tok = load_model(family_models[request.param])
    return request.param, model, tok


def test_every_family_loads_with_its_layers_and_a_pad_token(loaded):
    family, model, tok = loaded
    assert type(model).__name__ == {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                                    "qwen3": "Qwen3ForCausalLM", "gemma3": "Gemma3ForCausalLM",
                                    "mistral": "MistralForCausalLM", "gpt2": "GPT2LMHeadModel"}[family]
    assert len(find_decoder_layers(model)) == 2 and all_sites(model) == ("layer.00", "layer.01")
    assert hidden_size(model) == 32
    assert tok.pad_token_id is not None and tok.padding_side == "left"
    assert prompt_style(model, tok) == "instruction"        # a pre-trained model gets the natural-language prompt


def test_instruction_prompt_names_both_varieties_and_labels_only_the_texts(loaded):
    _family, model, tok = loaded
    enc = encoder_for(model, tok, CODES, 16)
    ids, labels, var = enc.example(EXAMPLES[0])
    p_ids, p_var = enc.prompt(HR, "arz", EXAMPLES[0].src_text)
    assert ids[: len(p_ids)] == p_ids and var[: len(p_ids)] == p_var
    text = tok.decode(p_ids)
    assert "Translate from Modern Standard Arabic to Egyptian Arabic:\nModern Standard Arabic: مرحبا" in text
    assert text.endswith("\nEgyptian Arabic:")
    assert (tok.bos_token is not None) == text.startswith(tok.bos_token or "\0")
    # the instruction's words are -1 like tags; the source's tokens are MSA (0), the target's Egyptian (1)
    src_tokens = [i for i, v in zip(p_ids, p_var) if v == 0]
    assert tok.decode(src_tokens).strip() == EXAMPLES[0].src_text
    assert set(p_var) == {-1, 0}
    assert set(var[len(p_ids):-1]) == {1} and var[-1] == -1 and ids[-1] == tok.eos_token_id
    assert all(x == IGNORE for x in labels[: len(p_ids)]) and labels[len(p_ids):] == ids[len(p_ids):]


def test_hooks_capture_and_project_then_go_away(loaded):
    _, model, tok = loaded
    enc = encoder_for(model, tok, CODES, 16)
    batch = collate(enc.encode_all(EXAMPLES), tok.pad_token_id)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    model.eval()
    with torch.no_grad():
        plain = model(**inputs).logits
        with capture(model, ["layer.01"]) as st:
            again = model(**inputs).logits
        assert st["layer.01"].shape == (*batch["input_ids"].shape, 32)
        assert torch.equal(plain, again) and count_hooks(model) == 0
        sub = random_subspace(32, 2, site="layer.00", seed=3)
        with project(model, {"layer.00": sub}, alpha=1.0):
            assert count_hooks(model) == 1
            projected = model(**inputs).logits
    assert count_hooks(model) == 0
    assert not torch.allclose(plain, projected)


def test_training_steps_with_the_penalty_lower_the_objective(family_models):
    """One family after another (fresh models): a few AdamW steps of translation loss + λ·penalty on one batch lower
    both; the penalty's gradient reaches the weights (the objective with λ > 0 trains differently from λ = 0)."""
    for family in FAMS:
        objectives, grads = [], {}
        for lam in (1.0, 0.0):
            model, tok = load_model(family_models[family])
            enc = encoder_for(model, tok, CODES, 16)
            batch = collate(enc.encode_all(EXAMPLES), tok.pad_token_id)
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
            sub = random_subspace(32, 1, site="layer.00", seed=0)
            opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
            model.train()
            values = []
            for step in range(4):
                with capture(model, ["layer.00"]) as st:
                    loss = lm_loss(model, inputs)
                pen = penalty(st, {"layer.00": sub}, batch["attention_mask"].bool())
                opt.zero_grad()
                (loss + lam * pen).backward()
                if step == 0:
                    grads[lam] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
                opt.step()
                values.append((loss + lam * pen).item())
            assert count_hooks(model) == 0, family
            objectives.append(values)
        assert objectives[0][-1] < objectives[0][0], (family, objectives[0])
        assert not torch.allclose(grads[1.0], grads[0.0]), family


def test_greedy_decoding_goes_through_generate_and_matches_it(loaded):
    _, model, tok = loaded
    enc = encoder_for(model, tok, CODES, 16)
    assert not enc.aligned
    items = [(HR, "arz", EXAMPLES[0].src_text), ("arz", HR, EXAMPLES[1].src_text)]
    out = translate(model, tok, enc, items, max_new_tokens=6, batch_size=2)
    assert len(out) == 2 and all(isinstance(x, str) for x in out)
    ids, _ = enc.prompt(*items[1])
    ref = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=6, do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    assert out[1] == tok.decode(ref[0, len(ids):], skip_special_tokens=True).strip()


@pytest.mark.parametrize("family", ["qwen2", "gemma3"])
def test_chat_style_wraps_the_instruction_in_the_chat_template(family_models, family):
    model, tok = load_model(family_models[family], prompt_style="chat")
    assert prompt_style(model, tok) == "chat"
    enc = encoder_for(model, tok, CODES, 16)
    p_ids, p_var = enc.prompt(HR, "arz", "مرحبا بالعالم")
    text = tok.decode(p_ids)
    if family == "gemma3":
        assert text.startswith("<bos><start_of_turn>user\nTranslate from Modern Standard Arabic to Egyptian Arabic:")
        assert text.endswith("<end_of_turn>\n<start_of_turn>model\n") and text.count("<bos>") == 1
    else:
        assert text.startswith("<|im_start|>user\nTranslate from Modern Standard Arabic to Egyptian Arabic:")
        assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert tok.decode([i for i, v in zip(p_ids, p_var) if v == 0]).strip() == "مرحبا بالعالم"
    row = enc.example(EXAMPLES[0])
    assert row[0][: len(p_ids)] != [] and set(row[2][len(enc.prompt(HR, "arz", EXAMPLES[0].src_text)[0]):-1]) == {1}


def test_chat_style_without_a_template_and_tags_style_are_explicit(family_models):
    model, tok = load_model(family_models["llama"])
    with pytest.raises(ValueError, match="needs a tokenizer with a chat template.*--prompt-style instruction"):
        Encoder(tok, CODES, 16, style="chat")
    model, tok = load_model(family_models["llama"], prompt_style="tags")
    enc = encoder_for(model, tok, CODES, 16)
    assert enc.style == "tags" and tok.decode(enc.prompt(HR, "arz", "مرحبا")[0]).endswith("<arz>")
