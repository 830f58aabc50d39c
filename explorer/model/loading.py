"""Loading any Hugging Face causal LM (a local folder, or a hub name already in the local cache), with errors that
say what to fix. Code shipped inside a model folder (``auto_map``) is never run.

``--model`` takes either a folder (``/models/gemma-3-1b-pt``) or a hub name (``google/gemma-3-1b-pt``). A hub name
is looked up in the usual Hugging Face cache; it is downloaded there only when the user has switched the hub on
(``HF_HUB_OFFLINE=0``: this package sets ``HF_HUB_OFFLINE=1`` by default, so nothing is ever fetched by accident),
and offline the error gives the exact commands that fetch the folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import snapshot_download
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
from transformers.utils import logging as hf_logging

from ..data.examples import PROMPT_STYLES
from .errors import ModelLoadError
from .sites import find_decoder_layers
from .tokenizer import prepare_tokenizer

hf_logging.disable_progress_bar()  # "Loading weights" bars on every checkpoint load are noise here

# a hub name: "org/name" (letters, digits, '-', '_', '.'), not a path that starts with '.', '/' or '~'
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# what a run needs from a hub repository (weights, config, tokenizer); not other formats' duplicates
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
# encoder-only (masked) LMs that transformers can nevertheless load with a causal-LM head
_ENCODER_ONLY = {"bert", "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "electra", "ernie", "rembert",
                 "roc_bert", "megatron-bert", "data2vec-text", "xmod", "bert-generation", "modernbert"}


def is_hub_id(spec: str) -> bool:
    """Whether ``--model`` names a hub repository (``org/name``) rather than a folder.

    A path that exists is always a folder; so is anything starting with ``.``, ``/`` or ``~``."""
    s = str(spec)
    return not Path(s).expanduser().exists() and bool(_HUB_ID.match(s))


def hub_online() -> bool:
    """True when the user switched the hub on (``HF_HUB_OFFLINE=0``; read by huggingface_hub at import)."""
    return not hub_constants.HF_HUB_OFFLINE


def offline_help(repo_id: str) -> str:
    """What to do when a hub model is not in the local cache and the hub is off: the exact commands."""
    folder = f"models/{repo_id.split('/')[-1]}"
    return (f"{repo_id} is a Hugging Face hub name, and it is not in the local Hugging Face cache; this tool runs "
            "offline and downloads nothing unless you switch the hub on. Either\n"
            f"  1. download it once:  hf download {repo_id} --local-dir {folder}\n"
            f"     (older huggingface_hub: huggingface-cli download {repo_id} --local-dir {folder})\n"
            f"     and pass the folder:  --model {folder}\n"
            f"  2. or let this run fetch it into the cache:  HF_HUB_OFFLINE=0 python -m explorer run --model {repo_id} ...\n"
            "Gated models (Gemma, Llama) also need their licence accepted on the model page and `hf auth login`.")


def resolve_model(spec: str | Path) -> Path:
    """The local folder ``--model`` means: the folder itself, or a hub name's snapshot in the local cache
    (downloaded into the cache first only when the hub is switched on). Raises ``ModelLoadError`` otherwise."""
    s = str(spec)
    if not is_hub_id(s):
        return check_model_dir(s)
    try:
        return check_model_dir(snapshot_download(s, allow_patterns=HUB_FILES, local_files_only=True))
    except ModelLoadError:
        raise
    except Exception as cached_error:  # not in the cache (LocalEntryNotFoundError and friends)
        if not hub_online():
            raise ModelLoadError(f"--model {s}: no folder of that name exists here, and\n{offline_help(s)}"
                                 ) from cached_error
    try:
        return check_model_dir(snapshot_download(s, allow_patterns=HUB_FILES))
    except ModelLoadError:
        raise
    except Exception as e:
        raise ModelLoadError(f"could not download {s} from the Hugging Face hub ({type(e).__name__}: {e}). Check "
                             "the name, your network, and for a gated model that you accepted its licence and ran "
                             f"`hf auth login`. Or download it yourself:\n  hf download {s} --local-dir "
                             f"models/{s.split('/')[-1]}\nand pass --model models/{s.split('/')[-1]}") from e


def check_model_dir(path: str | Path) -> Path:
    """Fail early, and clearly, for a folder that is not a local Hugging Face causal LM this tool can run."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"model folder {p} does not exist. Pass a local Hugging Face model folder "
                             "(one with config.json and weights), or a hub name such as google/gemma-3-1b-pt.")
    if not p.is_dir():
        raise ModelLoadError(f"{p} is a file, not a model folder: pass the folder holding config.json.")
    if not (p / "config.json").is_file():
        raise ModelLoadError(f"{p} has no config.json, so it is not a Hugging Face model folder. "
                             "Point --model at the folder save_pretrained() wrote.")
    try:
        config = json.loads((p / "config.json").read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{p / 'config.json'} is not valid JSON ({e}).") from e
    weights = list(p.glob("*.safetensors")) + list(p.glob("*.bin"))
    if not weights:
        raise ModelLoadError(f"{p} has a config.json but no weights (*.safetensors or *.bin).")
    check_architecture(config, p)
    return p.resolve()


def check_architecture(config: dict, p: Path) -> None:
    """Refuse what this tool cannot or will not run: remote code, unknown architectures, encoder(-decoder)s."""
    remote = [f for f in ("config.json", "tokenizer_config.json")
              if (p / f).is_file() and "auto_map" in _json_or_empty(p / f)]
    if remote:
        raise ModelLoadError(
            f"{p} needs code shipped inside the model folder ('auto_map' in {', '.join(remote)}), i.e. "
            "trust_remote_code. This tool never runs code from a model folder. Use a model whose architecture "
            "transformers implements itself (Llama, Qwen2/3, Gemma 3, Mistral, GPT-2, ...).")
    kind = config.get("model_type")
    if not kind:
        raise ModelLoadError(f"{p / 'config.json'} has no model_type, so transformers cannot tell which "
                             "architecture it is; it is not a complete Hugging Face model folder.")
    if kind not in CONFIG_MAPPING_NAMES:
        raise ModelLoadError(f"{p}: architecture {kind!r} is unknown to the installed transformers; it would need "
                             "remote code (never run here) or a newer transformers.")
    archs = config.get("architectures") or []
    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if config.get("is_encoder_decoder") or kind in _ENCODER_ONLY or kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES \
            or (archs and not any(a in causal for a in archs)):
        what = archs[0] if archs else kind
        raise ModelLoadError(
            f"{p} holds a {what} ({kind}), which is not a decoder-only causal language model. --model needs one "
            "that generates text left to right (Llama, Qwen2/3, Gemma 3, Mistral, GPT-2, ...); encoder-only models "
            "such as BERT and encoder-decoders such as T5 are not supported.")


def _json_or_empty(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}


def tokenizer_size(tok) -> int:
    """How many embedding rows the tokenizer's ids need: its largest id + 1 (added tokens included)."""
    return max(tok.get_vocab().values()) + 1


def check_vocab(tok, rows: int | None, where: str | Path) -> None:
    """Refuse a tokenizer whose ids reach past the model's embedding (``rows``): such a model would fail deep in
    training with ``IndexError: index out of range``. Say both sizes and what to do."""
    need = tokenizer_size(tok)
    if rows is not None and need > rows:
        raise ModelLoadError(
            f"the tokenizer in {where} has {need} tokens (ids 0 to {need - 1}) but the model's embedding has only "
            f"{rows} rows, so ids {rows} to {need - 1} have no embedding. This happens when a token was added to "
            "the tokenizer (a pad token, for instance) without resizing the model. Resize the embeddings and save "
            "the folder again (in Python: model.resize_token_embeddings(len(tokenizer)); "
            "model.save_pretrained(folder); tokenizer.save_pretrained(folder)), or use the tokenizer the model was "
            "trained with.")


def load_tokenizer_of(p: Path):
    """The tokenizer of a model folder (offline, no remote code), ready for batching."""
    try:
        tok = AutoTokenizer.from_pretrained(p, local_files_only=True, trust_remote_code=False)
    except Exception as e:
        raise ModelLoadError(f"could not load a tokenizer from {p}: {e}. The folder needs the tokenizer "
                             "files saved next to the model (tokenizer.json or similar).") from e
    prepare_tokenizer(tok)
    return tok


def load_model(spec: str | Path, *, dtype: torch.dtype = torch.float32, prompt_style: str = "auto"):
    """Load a causal LM and its tokenizer (``spec``: a folder or a cached hub name), offline, without remote code.
    Returns (model, tokenizer).

    ``prompt_style`` other than ``auto`` is recorded in the model's config (``dde_prompt_style``), where
    ``model.prompts.encoder_for`` reads it, so training, probe buffers, decoding and the app use the same prompts."""
    p = resolve_model(spec)
    if prompt_style != "auto" and prompt_style not in PROMPT_STYLES:
        raise ModelLoadError(f"unknown prompt style {prompt_style!r}; choose auto or one of {list(PROMPT_STYLES)}")
    tok = load_tokenizer_of(p)
    try:
        model = AutoModelForCausalLM.from_pretrained(p, local_files_only=True, dtype=dtype, trust_remote_code=False)
    except Exception as e:
        raise ModelLoadError(f"could not load a causal language model from {p}: {e}") from e
    check_vocab(tok, model.get_input_embeddings().num_embeddings, p)
    if tok.pad_token_id is None:
        raise ModelLoadError(f"the tokenizer in {p} has no pad, eos or unk token to pad batches with.")
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if prompt_style != "auto":
        model.config.dde_prompt_style = prompt_style
    find_decoder_layers(model)  # fail now, not mid-run
    return model, tok
