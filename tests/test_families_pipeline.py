"""The whole pipeline (tiny preset) through every model family, a hub name, and LoRA with activation checkpointing
(issue 11). Slow tier. The data is an invented MADAR folder (3 varieties x 60 sentences), so that each run's cost is
the model path rather than tokenising the embedded corpus."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from model_families import FAMILIES, build_family_model
from test_pipeline import _invented_madar, _results

from explorer.config import preset_config
from explorer.data.varieties import ENG, HR
from explorer.evaluation.single import ModelHandle, translate_text
from explorer.experiment.layout import Experiment
from explorer.experiment.report import summary
from explorer.experiment.run import run_experiment
from explorer.experiment.view import load_experiment
from explorer.files import load_tensors, read_jsonl
from explorer.model import loading

pytestmark = pytest.mark.slow
SMALL_RUN = {"seeds": (0,), "steps": 4, "ckpt_every": 2, "probe_every": 2, "probe_tokens": 400, "probe_steps": 20,
             "eval_size": 2, "max_new_tokens": 4, "analysis_size": 4, "bootstrap_samples": 50}


@pytest.fixture(scope="module")
def madar(tmp_path_factory):
    return _invented_madar(tmp_path_factory.mktemp("madar") / "MADAR_Corpus")


def test_every_family_runs_the_tiny_preset_end_to_end(family_models, madar, tmp_path):
    """Each family: prompts in the instruction style, the decoupled arm with its probe refits, evaluation through
    generate(), representations. The total time is printed (the issue's budget: at most 60 s for all six)."""
    t0 = time.perf_counter()
    for family in sorted(FAMILIES):
        cfg = preset_config("tiny", model=str(family_models[family]), data=f"madar:{madar}", arms=("decoupled",),
                            **SMALL_RUN)
        exp = run_experiment(cfg, tmp_path / family, bar=False)
        s = summary(exp)
        assert s["complete"] and sorted(s["models"]) == ["base", "decoupled.s0"], family
        assert [r["step"] for r in exp.refits("decoupled.s0")] == [0, 2], family
        assert exp.checkpoints("decoupled.s0") == [2, 4]
        hyps = read_jsonl(exp.hyps_path("decoupled.s0"))
        assert {r["direction"] for r in hyps} >= {"arb-cai", "cai-arb", "arb-rab"} and all("hyp" in r for r in hyps)
        view = load_experiment(exp.root)
        x = view.representations("decoupled.s0", 4, view.sites[-1])
        assert x.shape[1] == 32 and torch.isfinite(torch.as_tensor(x)).all(), family
    print(f"\nsix families through the tiny preset: {time.perf_counter() - t0:.1f} s")


def test_a_hub_name_runs_from_the_local_cache_and_is_kept_in_the_config(family_models, madar, tmp_path, monkeypatch):
    snapshot = family_models["qwen2"]

    def cached_only(repo_id, *, allow_patterns=None, local_files_only=False):
        assert local_files_only, "the hub is off: nothing may be downloaded"
        assert repo_id == "Qwen/Qwen-tiny-test"
        return str(snapshot)

    monkeypatch.setattr(loading, "snapshot_download", cached_only)
    cfg = preset_config("tiny", model="Qwen/Qwen-tiny-test", data=f"madar:{madar}", arms=("baseline",), **SMALL_RUN)
    exp = run_experiment(cfg, tmp_path / "hub", bar=False, represent=False)
    assert exp.config().model == "Qwen/Qwen-tiny-test" and summary(exp)["complete"]
    # the same experiment on a machine whose cache lacks the model: it opens; loading the model says how to get it
    monkeypatch.setattr(loading, "snapshot_download", _not_cached)
    view = load_experiment(exp.root)
    assert "baseline.s0" in view.models
    with pytest.raises(loading.ModelLoadError, match="hf download Qwen/Qwen-tiny-test"):
        view.load_model("baseline.s0")


def _not_cached(repo_id, *, allow_patterns=None, local_files_only=False):
    from huggingface_hub.errors import LocalEntryNotFoundError

    raise LocalEntryNotFoundError("not in this machine's cache")


def test_lora_with_checkpointing_stores_adapters_resumes_exactly_and_opens_in_the_app(tmp_path, madar):
    folder = build_family_model("llama", tmp_path / "llama")
    cfg = preset_config("tiny", model=str(folder), data=f"madar:{madar}", arms=("baseline", "decoupled"),
                        lora_rank=4, lora_alpha=8.0, grad_checkpointing=True, **{**SMALL_RUN, "steps": 6})
    assert cfg.lr == 2e-4                                  # a pre-trained model with LoRA gets LoRA's usual rate
    ref = run_experiment(cfg, tmp_path / "ref", bar=False)
    ck = ref.load_checkpoint("decoupled.s0", 6)
    assert ck and all(".lora_" in k for k in ck)           # adapters only, not the base
    assert sum(v.numel() for v in ck.values()) < 0.25 * sum(v.numel() for v in load_tensors(
        next(folder.glob("*.safetensors"))).values())
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path / "cut", bar=False, represent=False, stop_after={"decoupled": 3})
    cut = run_experiment(cfg, tmp_path / "cut", bar=False, represent=False)
    assert cut.manifest()["stages"]["arm:decoupled.s0"]["resumed_from"] == 2
    assert _results(cut.root) == _results(ref.root)
    b = Experiment(cut.root).load_checkpoint("decoupled.s0", 6)
    assert all(torch.equal(ck[k], b[k]) for k in ck)
    # the app's path: the view loads base + adapters, and one sentence translates with the switch on
    view = load_experiment(ref.root)
    reps = {step: view.representations("decoupled.s0", step, view.sites[-1]) for step in (2, 6)}
    assert not np.allclose(reps[2], reps[6])           # each checkpoint's adapters laid over the base
    model, tok = view.load_model("decoupled.s0")
    handle = ModelHandle(model, tok, "decoupled.s0", 6)
    out = translate_text(handle, [*view.varieties, ENG], "ماذا تريد أن تأكل", HR, "cai", max_len=cfg.max_len,
                         max_new_tokens=4,
                         projection=view.projection("decoupled.s0", 6, alpha=1.0))
    assert isinstance(out.text, str) and out.alpha == 1.0
