"""Fitting bigger models (issue 11): LoRA adapters through peft, activation checkpointing, the weights' dtype.

The properties checked are the ones the method relies on: a fresh adapter leaves the model unchanged; the penalty
acts on the adapted model's hidden states and its gradient reaches the adapters; checkpoints hold only the adapters
and rebuild the arm exactly; activation checkpointing changes no gradient."""

from __future__ import annotations

import pytest
import torch

from explorer.data.examples import Example, collate
from explorer.data.varieties import HR
from explorer.method.decoupler import penalty
from explorer.method.hooks import capture, count_hooks
from explorer.method.subspace import random_subspace
from explorer.model.adapt import Adaptation, adapt, is_lora, trainable_share, weights_dtype
from explorer.model.loading import load_model
from explorer.model.errors import ModelLoadError
from explorer.model.sites import all_sites, hidden_size
from explorer.model.prompts import encoder_for
from explorer.model.weights import load_weights, weight_tensors
from explorer.training.loop import lm_loss

CODES = [HR, "arz", "eng"]
EXAMPLES = [Example(HR, "arz", "مرحبا بالعالم هذا اختبار", "عامل ايه يا صاحبي"),
            Example("arz", HR, "عامل ايه يا صاحبي", "ما هو اسمك؟")] * 2
LORA = Adaptation(lora_rank=4, lora_alpha=8.0)


def _batch(model, tok):
    return collate(encoder_for(model, tok, CODES, 16).encode_all(EXAMPLES), tok.pad_token_id)


def _inputs(batch):
    return {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}


def _train(model, batch, steps=3, lam=1.0):
    sub = random_subspace(hidden_size(model), 1, site="layer.01", seed=0)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    model.train()
    for _ in range(steps):
        with capture(model, ["layer.01"]) as st:
            loss = lm_loss(model, _inputs(batch))
        pen = penalty(st, {"layer.01": sub}, batch["attention_mask"].bool())
        opt.zero_grad()
        (loss + lam * pen).backward()
        opt.step()
    return pen


@pytest.mark.parametrize("family", ["llama", "gemma3", "gpt2"])
def test_lora_starts_equal_to_the_base_trains_only_adapters_and_round_trips(family_models, family):
    base, tok = load_model(family_models[family])
    batch = _batch(base, tok)
    base.eval()
    with torch.no_grad():
        before = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    model = adapt(base, LORA)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert is_lora(model) and all_sites(model) == ("layer.00", "layer.01")       # layers found through the wrapper
    trainable, total = trainable_share(model)
    assert 0 < trainable < total / 4
    model.eval()
    with torch.no_grad():                      # B starts at zero: the wrapped model is the base
        assert torch.allclose(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                              before, atol=1e-6)
    pen = _train(model, batch)
    assert pen.grad_fn is not None and count_hooks(model) == 0
    # the base weights did not move; only adapters did
    params = dict(model.named_parameters())
    assert frozen and not [n for n, v in frozen.items() if not torch.equal(params[n], v)]
    saved = weight_tensors(model, torch.float32)
    assert saved and all(".lora_" in k for k in saved)
    assert sum(v.numel() for v in saved.values()) == trainable
    model.eval()
    with torch.no_grad():
        after = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert not torch.allclose(after, before, atol=1e-4)
    # a fresh base + adapters from the checkpoint rebuilds the arm exactly
    again, _ = load_model(family_models[family])
    again = adapt(again, LORA, training=False)
    load_weights(again, saved)
    again.eval()
    with torch.no_grad():
        assert torch.allclose(again(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                              after, atol=1e-6)


def test_the_penalty_sees_the_adapted_hidden_states(family_models):
    """The captured states change when only the adapters change: the probe and the penalty see the adapted model."""
    model, tok = load_model(family_models["qwen3"])
    model = adapt(model, LORA)
    batch = _batch(model, tok)
    model.eval()
    with torch.no_grad(), capture(model, ["layer.01"], detach=True) as st:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    h0 = st["layer.01"].clone()
    _train(model, batch, steps=2)
    model.eval()
    with torch.no_grad(), capture(model, ["layer.01"], detach=True) as st:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert not torch.allclose(st["layer.01"], h0, atol=1e-4)


def test_checkpoints_of_the_wrong_kind_are_refused_with_a_reason(family_models):
    plain, _ = load_model(family_models["llama"])
    full = weight_tensors(plain)
    lora = adapt(load_model(family_models["llama"])[0], LORA)
    with pytest.raises(ValueError, match="holds full weights.*--lora-rank"):
        load_weights(lora, full)
    with pytest.raises(ValueError, match="LoRA"):
        load_weights(plain, weight_tensors(lora))
    other = adapt(load_model(family_models["llama"])[0], Adaptation(lora_rank=4, lora_targets=("q_proj",)))
    with pytest.raises(ValueError, match="same --lora-rank and --lora-targets"):
        load_weights(other, weight_tensors(lora))
    with pytest.raises(ModelLoadError, match="--lora-targets"):
        adapt(load_model(family_models["llama"])[0], Adaptation(lora_rank=2, lora_targets=("no_such_proj",)))


@pytest.mark.parametrize("family,lora", [("llama", False), ("gpt2", False), ("mistral", True)])
def test_activation_checkpointing_leaves_every_gradient_unchanged(family_models, family, lora):
    grads = []
    for ckpt in (False, True):
        model, tok = load_model(family_models[family])
        model = adapt(model, Adaptation(grad_checkpointing=ckpt, lora_rank=4 if lora else 0))
        if lora:   # adapters start at B = 0; give them a value so that their gradients are not trivially equal
            torch.manual_seed(1)
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.data.normal_(0, 0.1)
        batch = _batch(model, tok)
        model.train()
        sub = random_subspace(hidden_size(model), 1, site="layer.00", seed=0)
        torch.manual_seed(0)      # GPT-2 has dropout: the same draws in both runs (the recompute replays them)
        with capture(model, ["layer.00"]) as st:
            loss = lm_loss(model, _inputs(batch))
        pen = penalty(st, {"layer.00": sub}, batch["attention_mask"].bool())
        (loss + pen).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        if ckpt:
            assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-5, rtol=1e-4), n


def test_adapters_start_the_same_for_the_same_seed(family_models):
    a = weight_tensors(adapt(load_model(family_models["llama"])[0], LORA))
    b = weight_tensors(adapt(load_model(family_models["llama"])[0], LORA))
    c = weight_tensors(adapt(load_model(family_models["llama"])[0], Adaptation(lora_rank=4, lora_alpha=8.0, seed=1)))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if "lora_A" in k)


def test_weights_dtype_is_fp32_on_cpu_and_bf16_on_cuda_where_it_is_safe():
    full, lora = Adaptation(), Adaptation(lora_rank=8)
    assert weights_dtype("cpu", lora, training=False) == torch.float32
    assert weights_dtype("cuda", full, training=False) == torch.bfloat16      # inference
    assert weights_dtype("cuda", lora, training=True) == torch.bfloat16       # frozen LoRA base
    assert weights_dtype("cuda", full, training=True) == torch.float32        # fp32 master weights for AdamW
    assert weights_dtype("cuda", Adaptation(bf16=False), training=False) == torch.float32
