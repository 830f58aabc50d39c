"""What --model refuses, and how it tells a folder from a hub name (issue 11). Offline: no test downloads anything;
the hub is replaced by a stand-in that records what it was asked."""

from __future__ import annotations

import json
import os
import re

import pytest
import torch
from model_families import build_family_model

from explorer.model import loading
from explorer.model.errors import ModelLoadError
from explorer.model.loading import is_hub_id, load_model, offline_help, resolve_model


def _save(model, folder, tok_from):
    model.save_pretrained(folder)
    for f in tok_from.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            (folder / f.name).write_bytes(f.read_bytes())
    return folder


def test_an_encoder_only_bert_folder_is_refused_by_name(tmp_path, family_models):
    from transformers import BertConfig, BertForMaskedLM

    bert = BertForMaskedLM(BertConfig(vocab_size=400, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=64))
    folder = _save(bert, tmp_path / "bert", family_models["llama"])
    with pytest.raises(ModelLoadError, match=r"BertForMaskedLM \(bert\).*not a decoder-only causal language model"):
        load_model(folder)


def test_an_encoder_decoder_folder_is_refused(tmp_path, family_models):
    from transformers import T5Config, T5ForConditionalGeneration

    t5 = T5ForConditionalGeneration(T5Config(vocab_size=400, d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16))
    folder = _save(t5, tmp_path / "t5", family_models["llama"])
    with pytest.raises(ModelLoadError, match="T5ForConditionalGeneration.*encoder-decoders such as T5"):
        load_model(folder)


def test_remote_code_is_refused_and_never_run(tmp_path, family_models):
    folder = build_family_model("llama", tmp_path / "custom")
    marker = tmp_path / "ran.txt"
    (folder / "modeling_custom.py").write_text(f"open({str(marker)!r}, 'w').write('remote code ran')\n")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match=r"auto_map.*never runs code from a model folder"):
        load_model(folder)
    assert not marker.exists()
    cfg["model_type"] = "my-own-architecture"
    del cfg["auto_map"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="'my-own-architecture' is unknown to the installed transformers"):
        load_model(folder)
    assert not marker.exists()


def test_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="no model_type"):
        load_model(tmp_path)
    with pytest.raises(ModelLoadError, match="does not exist.*or a hub name"):
        load_model(tmp_path / "missing-folder")


@pytest.mark.parametrize("spec,hub", [("google/gemma-3-1b-pt", True), ("Qwen/Qwen2.5-0.5B", True),
                                      ("./google/gemma", False), ("/models/gemma-3-1b-pt", False),
                                      ("~/models/x", False), ("gemma-3-1b-pt", False), ("a/b/c", False)])
def test_hub_names_and_folders_are_told_apart(spec, hub):
    assert is_hub_id(spec) is hub


def test_an_existing_folder_is_a_folder_even_when_it_looks_like_a_hub_name(tmp_path, family_models, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build_family_model("qwen2", tmp_path / "org" / "name")
    assert not is_hub_id("org/name")
    assert resolve_model("org/name") == (tmp_path / "org" / "name").resolve()


class FakeHub:
    """Stands in for huggingface_hub.snapshot_download: a cache holding ``cached`` and a hub holding ``remote``."""

    def __init__(self, cached=None, remote=None):
        self.cached, self.remote, self.calls = cached or {}, remote or {}, []

    def __call__(self, repo_id, *, allow_patterns=None, local_files_only=False):
        from huggingface_hub.errors import LocalEntryNotFoundError

        self.calls.append((repo_id, local_files_only))
        if repo_id in self.cached:
            return str(self.cached[repo_id])
        if local_files_only:
            raise LocalEntryNotFoundError("not in the cache")
        return str(self.remote[repo_id])


def test_offline_a_hub_name_says_exactly_how_to_get_the_folder(monkeypatch):
    hub = FakeHub()
    monkeypatch.setattr(loading, "snapshot_download", hub)
    monkeypatch.setattr(loading, "hub_online", lambda: False)
    with pytest.raises(ModelLoadError) as err:
        resolve_model("google/gemma-3-1b-pt")
    msg = str(err.value)
    assert "hf download google/gemma-3-1b-pt --local-dir models/gemma-3-1b-pt" in msg
    assert "--model models/gemma-3-1b-pt" in msg and "HF_HUB_OFFLINE=0" in msg
    assert hub.calls == [("google/gemma-3-1b-pt", True)]          # looked in the cache only
    assert offline_help("google/gemma-3-1b-pt") in msg


def test_a_cached_hub_name_loads_offline_and_online_it_is_fetched_into_the_cache(monkeypatch, family_models):
    hub = FakeHub(cached={"org/cached": family_models["gemma3"]}, remote={"org/remote": family_models["qwen3"]})
    monkeypatch.setattr(loading, "snapshot_download", hub)
    monkeypatch.setattr(loading, "hub_online", lambda: False)
    model, _ = load_model("org/cached")
    assert type(model).__name__ == "Gemma3ForCausalLM" and hub.calls == [("org/cached", True)]
    with pytest.raises(ModelLoadError, match="hf download org/remote"):
        resolve_model("org/remote")
    monkeypatch.setattr(loading, "hub_online", lambda: True)
    hub.calls.clear()
    assert resolve_model("org/remote") == family_models["qwen3"].resolve()
    assert hub.calls == [("org/remote", True), ("org/remote", False)]    # the cache first, then the hub


def test_the_real_hub_client_stays_offline_by_default():
    """Without the stand-in: this package's default HF_HUB_OFFLINE=1 makes a name missing from the cache an error
    with the instructions, and no request is made (huggingface_hub refuses to connect when offline)."""
    assert os.environ.get("HF_HUB_OFFLINE") == "1" and not loading.hub_online()
    with pytest.raises(ModelLoadError, match="hf download dde-tests/surely-not-cached-anywhere"):
        resolve_model("dde-tests/surely-not-cached-anywhere")


def test_load_dtype_and_prompt_style_are_recorded(family_models):
    model, _ = load_model(family_models["mistral"], dtype=torch.bfloat16, prompt_style="instruction")
    assert next(model.parameters()).dtype == torch.bfloat16 and model.config.dde_prompt_style == "instruction"
    with pytest.raises(ModelLoadError, match="unknown prompt style"):
        load_model(family_models["mistral"], prompt_style="poetry")


def test_a_tokenizer_larger_than_the_embedding_is_refused_before_any_work(tmp_path, capsys):
    """A Qwen2-style folder whose tokenizer has one token more than the model has embedding rows (what transformers
    5.x makes of a Qwen2 folder that gains a pad token) is refused with both sizes, by the loader and by the checks
    before a run, which create nothing."""
    from explorer.__main__ import main
    from explorer.config import preset_config
    from explorer.experiment.preflight import preflight
    from explorer.model.loading import tokenizer_size
    from transformers import AutoTokenizer

    folder = build_family_model("qwen2", tmp_path / "short", missing_rows=1)
    n = tokenizer_size(AutoTokenizer.from_pretrained(folder))
    sizes = f"has {n} tokens (ids 0 to {n - 1}) but the model's embedding has only {n - 1} rows"
    with pytest.raises(ModelLoadError, match=re.escape(sizes)) as err:
        load_model(folder)
    assert "resize_token_embeddings" in str(err.value)
    with pytest.raises(ModelLoadError, match=re.escape(sizes)):
        preflight(preset_config("tiny", model=str(folder)))
    out = tmp_path / "exp"
    assert main(["run", "--preset", "tiny", "--model", str(folder), "--out", str(out), "--no-bar"]) == 2
    assert sizes in capsys.readouterr().err and not out.exists()

