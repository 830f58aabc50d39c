"""Tokenizer and model: build the small default decoder, load any local causal LM, name its sites.

A *site* is the residual-stream output of one decoder layer. It has one name everywhere (hooks,
cache files, selectboxes, plot labels): ``site_name(2) == "layer.02"``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

hf_logging.disable_progress_bar()  # "Loading weights" bars on every checkpoint load are noise here

SPECIALS = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>"}


class ModelLoadError(ValueError):
    """A model folder that cannot be used, with what to do about it."""


# ---------------------------------------------------------------- sites

_SITE_RE = re.compile(r"^layer\.(\d+)$")


def site_name(layer: int) -> str:
    return f"layer.{layer:02d}"


def parse_site(site: str) -> int:
    m = _SITE_RE.match(site)
    if not m:
        raise ValueError(f"site {site!r} is not of the form 'layer.NN' (e.g. 'layer.02')")
    return int(m.group(1))


def n_layers(model: nn.Module) -> int:
    return len(find_decoder_layers(model))


def all_sites(model: nn.Module) -> tuple[str, ...]:
    return tuple(site_name(i) for i in range(n_layers(model)))


def default_sites(model: nn.Module) -> tuple[str, ...]:
    """The middle decoder layer: far enough from the embeddings to be shared across varieties."""
    return (site_name(n_layers(model) // 2),)


def find_decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The ModuleList of decoder blocks, found generically (Llama/Gemma/Qwen ``model.layers``,
    GPT-2 ``transformer.h``, ...): the longest ModuleList whose length is the config's layer count."""
    cfg = getattr(model, "config", None)
    want = None
    if cfg is not None:
        text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        want = getattr(text_cfg, "num_hidden_layers", None) or getattr(text_cfg, "n_layer", None)
    candidates = [m for _, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if want is not None:
        exact = [m for m in candidates if len(m) == want]
        if exact:
            return exact[0]
    if not candidates:
        raise ModelLoadError(f"could not find the decoder layers of {type(model).__name__}")
    return max(candidates, key=len)


def hidden_size(model: nn.Module) -> int:
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(getattr(cfg, "hidden_size", None) or cfg.n_embd)


# ---------------------------------------------------------------- tokenizer


def variety_tag(code: str) -> str:
    """The tag that marks a segment's variety in a prompt, e.g. ``<arz>``."""
    return f"<{code}>"


def train_tokenizer(texts: list[str], *, vocab_size: int, tags: list[str]) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on the corpus (no unknown tokens: any input encodes).

    The variety tags are added as special tokens so each is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(SPECIALS.values()) + [variety_tag(t) for t in tags]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=SPECIALS["pad"], bos_token=SPECIALS["bos"],
        eos_token=SPECIALS["eos"], unk_token=SPECIALS["unk"],
    )
    fast.add_special_tokens({"additional_special_tokens": [variety_tag(t) for t in tags]})
    return fast


def prepare_tokenizer(tok) -> None:
    """Make a tokenizer usable for batched training and left-padded generation."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    tok.padding_side = "left"


# ---------------------------------------------------------------- models


def target_position(model_or_config) -> int | None:
    """The position id at which the target side starts, for a model trained with aligned positions; else None.

    Our small model is trained with the target tag always at this position, whatever the source length, so
    that target token j sits at a fixed distance from source token j. Translation between close varieties is
    mostly monotone, and a fixed offset lets rotary attention learn "copy what is across" in a few hundred
    steps; with contiguous positions the offset changes with every source length and a model this small needs
    thousands of steps to learn to copy at all (README, "Why aligned positions"). Pre-trained models keep
    their own contiguous positions (None)."""
    cfg = getattr(model_or_config, "config", model_or_config)
    value = getattr(cfg, "dde_target_position", None)
    return int(value) if value is not None else None


def build_small_model(tok, *, d_model: int, n_layers: int, n_heads: int, d_ff: int, max_len: int,
                      seed: int, aligned_positions: bool = True) -> LlamaForCausalLM:
    """A small Llama-style decoder sized for a CPU (DESIGN.md §4: the embedded default)."""
    extra = {"dde_target_position": max_len + 8} if aligned_positions else {}
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=d_model, intermediate_size=d_ff, num_hidden_layers=n_layers,
        num_attention_heads=n_heads, num_key_value_heads=n_heads, max_position_embeddings=4 * max_len + 16,
        tie_word_embeddings=True, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, rms_norm_eps=1e-5, **extra,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    return model


def check_model_dir(path: str | Path) -> Path:
    """Fail early, and clearly, for a folder that is not a local Hugging Face model."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"model folder {p} does not exist. Pass a local Hugging Face model folder "
                             "(one with config.json and weights); nothing is downloaded.")
    if not p.is_dir():
        raise ModelLoadError(f"{p} is a file, not a model folder: pass the folder holding config.json.")
    if not (p / "config.json").is_file():
        raise ModelLoadError(f"{p} has no config.json, so it is not a Hugging Face model folder. "
                             "Point --model at the folder save_pretrained() wrote.")
    try:
        json.loads((p / "config.json").read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{p / 'config.json'} is not valid JSON ({e}).") from e
    weights = list(p.glob("*.safetensors")) + list(p.glob("*.bin"))
    if not weights:
        raise ModelLoadError(f"{p} has a config.json but no weights (*.safetensors or *.bin).")
    return p


def load_model(path: str | Path, *, dtype: torch.dtype = torch.float32):
    """Load a local causal LM and its tokenizer, offline. Returns (model, tokenizer)."""
    p = check_model_dir(path)
    try:
        tok = AutoTokenizer.from_pretrained(p, local_files_only=True)
    except Exception as e:
        raise ModelLoadError(f"could not load a tokenizer from {p}: {e}. The folder needs the tokenizer "
                             "files saved next to the model (tokenizer.json or similar).") from e
    try:
        model = AutoModelForCausalLM.from_pretrained(p, local_files_only=True, dtype=dtype)
    except Exception as e:
        raise ModelLoadError(f"could not load a causal language model from {p}: {e}") from e
    prepare_tokenizer(tok)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    find_decoder_layers(model)  # fail now, not mid-run
    return model, tok
