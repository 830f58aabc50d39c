"""Shared fixtures: tiny random models saved to temp folders like a user's model (two with this tool's tokenizer,
and one per supported family with a tokenizer shaped like that family's real one), and the tiny experiment."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

TEXTS = ["hello world this is a test", "مرحبا بالعالم هذا اختبار", "عامل ايه يا صاحبي", "ما هو اسمك؟"] * 20


def _tokenizer():
    from explorer.model.tokenizer import prepare_tokenizer, train_tokenizer

    tok = train_tokenizer(TEXTS, vocab_size=300, tags=["arb", "arz", "eng"])
    prepare_tokenizer(tok)
    return tok


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{"llama": path, "gpt2": path}: random tiny causal LMs with tokenizers, saved with save_pretrained."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    tok = _tokenizer()
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    gpt2 = GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=256, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    out = {}
    for name, m in (("llama", llama), ("gpt2", gpt2)):
        d = root / name
        m.save_pretrained(d)
        tok.save_pretrained(d)
        out[name] = d
    return out


from model_families import FAMILIES, build_family_model


@pytest.fixture(scope="session")
def family_models(tmp_path_factory):
    """{family: folder} for every family in ``FAMILIES`` (random weights, about a second for all six)."""
    root = tmp_path_factory.mktemp("families")
    return {f: build_family_model(f, root / f) for f in FAMILIES}


@pytest.fixture(scope="session")
def tiny_experiment(tmp_path_factory):
    """Path of a finished ``tiny`` experiment (every stage, representations included), built once per session.

    Shared by several test modules: treat it as read-only and ``shutil.copytree`` it before changing anything."""
    from explorer.config import preset_config
    from explorer.experiment.run import run_experiment

    out = tmp_path_factory.mktemp("tiny-experiment") / "tiny"
    run_experiment(preset_config("tiny"), out, bar=False)
    return out


def pytest_collection_modifyitems(config, items):
    """Every test that needs a finished tiny experiment (directly or through another fixture) is ``slow``: the
    fast tier (``-m "not slow and not browser"``) never trains."""
    for item in items:
        if "tiny_experiment" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
