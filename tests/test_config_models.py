"""The options and presets of issue 11: they validate, a pre-trained model gets a fine-tuning learning rate, the
`gpu` and `full` presets are coherent, and bad values are refused with the option's name."""

from __future__ import annotations

import argparse

import pytest

from explorer.config import PRESETS, PRETRAINED_LR, preset_config
from explorer.options import add_config_options, overrides_from_args


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_validates_alone_and_with_a_model(name):
    cfg = preset_config(name)
    assert cfg.lr == PRESETS[name].get("lr", 1e-3)
    assert cfg.base_steps > 0 or (name == "default" and not cfg.model)     # default starts from data/base/
    with_model = preset_config(name, model="google/gemma-3-1b-pt")
    assert with_model.base_steps == 0 and with_model.lr == PRETRAINED_LR["full"]
    assert preset_config(name, model="x/y", lora_rank=16).lr == PRETRAINED_LR["lora"]
    assert preset_config(name, model="x/y", lr=5e-5).lr == 5e-5          # an explicit --lr wins


def test_gpu_and_full_presets_are_sized_as_documented():
    gpu, full = preset_config("gpu"), preset_config("full")
    assert gpu.base_steps + len(gpu.seeds) * len(gpu.arms) * gpu.steps == 3900
    assert gpu.steps % gpu.ckpt_every == 0 and gpu.steps % gpu.probe_every == 0
    assert full.steps % full.ckpt_every == 0 and full.probe_every == 500 and full.eval_size == 0
    assert not full.model and full.prompt_style == "auto"


@pytest.mark.parametrize("bad,match", [({"prompt_style": "poem"}, "--prompt-style"),
                                       ({"prompt_style": "chat"}, "pre-trained model given with --model"),
                                       ({"lora_rank": -1}, "--lora-rank"),
                                       ({"comet": "/no/such/comet-model"}, "--comet /no/such/comet-model")])
def test_bad_values_name_their_option(bad, match):
    with pytest.raises(ValueError, match=match):
        preset_config("tiny", **bad)


def test_new_options_parse_from_the_command_line_with_help():
    p = argparse.ArgumentParser()
    add_config_options(p)
    args = p.parse_args(["--model", "m", "--lora-rank", "8", "--lora-targets", "q_proj,v_proj", "--grad-checkpointing",
                         "true", "--prompt-style", "chat"])
    o = overrides_from_args(args)
    assert o["lora_rank"] == 8 and o["lora_targets"] == ("q_proj", "v_proj") and o["grad_checkpointing"] is True
    assert "LoRA adapters" in p.format_help() and "chat template" in p.format_help()
