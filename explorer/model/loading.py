"""Loading any local Hugging Face causal LM, offline, with errors that say what to fix."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from .sites import ModelLoadError, find_decoder_layers
from .tokenizer import prepare_tokenizer

hf_logging.disable_progress_bar()  # "Loading weights" bars on every checkpoint load are noise here


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
