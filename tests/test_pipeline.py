"""Integration: the tiny preset end to end, its artefacts, resume after a kill, MADAR and --model paths."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sacrebleu.metrics import CHRF

from explorer.__main__ import main as cli_main
from explorer.config import preset_config
from explorer.experiment.layout import Experiment, arm_models
from explorer.experiment.report import summary
from explorer.experiment.run import run_experiment
from explorer.experiment.stagefolder import StageFolder
from explorer.files import StoreError, load_tensors, read_json, read_jsonl, remove_file, write_json, write_jsonl

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _results(exp_dir: Path) -> dict:
    s = summary(Experiment(exp_dir))
    return {"models": s["models"], "deltas": s["deltas"], "refits": s["refits"]}


def test_tiny_run_produces_every_artefact(tiny_experiment):
    exp = Experiment(tiny_experiment)
    cfg = exp.config()
    m = exp.manifest()
    assert m["format_version"] == 2 and len(cfg.seeds) == 2
    models = arm_models(cfg)
    assert len(models) == len(cfg.arms) * len(cfg.seeds)
    for stage in ["prepare", "base", *[f"arm:{a}" for a in models], "eval:base", *[f"eval:{a}" for a in models]]:
        assert m["stages"][stage]["done"], stage
    assert (exp.base_model_dir / "config.json").exists() and (exp.tokenizer_dir / "tokenizer.json").exists()
    want_ckpts = list(range(cfg.ckpt_every, cfg.steps + 1, cfg.ckpt_every))
    for model in models:
        assert exp.checkpoints(model) == want_ckpts
        assert StageFolder(exp, model).resume.location() is None, "finished arms drop their resume state"
        assert [r["step"] for r in exp.train_log(model)] == list(range(1, cfg.steps + 1))
        assert (tiny_experiment / "arms" / model.split(".s")[0] / f"seed-{model.split('.s')[1]}").is_dir()
    # seeds differ only in the stage-2 batch order: same arm, different seeds -> different weights
    a, b = (exp.load_checkpoint(f"baseline.s{s}", cfg.steps) for s in cfg.seeds)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    # every probe refit is saved: basis, rank, step, the gate's decision, per-variety metrics
    refits = exp.refits("decoupled.s0")
    assert [r["step"] for r in refits] == list(range(0, cfg.steps, cfg.probe_every))
    for r in refits:
        site, rec = next(iter(r["sites"].items()))
        assert rec["gate"]["accepted"] and r["accepted"]           # the tiny preset runs without a gate
        U = load_tensors(exp.refit_file("decoupled.s0", r["index"]))[f"{site}.basis"]
        assert U.shape[1] == rec["rank"] == cfg.rank
        assert torch.allclose(U.T @ U, torch.eye(U.shape[1]), atol=1e-4)
        probe = rec["probe"]
        assert 0 <= probe["accuracy"] <= 1 and probe["code_length_bits"] > 0 and probe["compression"] > 0
        assert set(probe["per_variety"]) == {"arb", "arz", "ary"}
        if r["index"] > 0:
            assert rec["angle_prev_deg"] is not None and 0 <= rec["angle_prev_deg"] <= 90
    # the matched control redraws exactly when its decoupled arm accepted a new U, one independent draw per site
    for seed in cfg.seeds:
        accepted = [r["step"] for r in exp.refits(f"decoupled.s{seed}") if r["accepted"]]
        assert [r["step"] for r in exp.refits(f"random.s{seed}")] == accepted
    u0, u8 = (load_tensors(exp.refit_file("random.s0", i))["layer.01.basis"] for i in (0, 1))
    assert not torch.allclose(u0, u8), "the random control is redrawn at every refit of the decoupled arm"
    assert exp.refits("baseline.s0") == []
    # checkpoints and refit files describe themselves (one file is understood without its neighbours)
    from safetensors import safe_open
    with safe_open(str(exp.checkpoint_file("decoupled.s1", cfg.steps)), framework="pt") as f:
        meta = f.metadata()
    assert meta["stage"] == "decoupled.s1" and meta["kind"] == "arm" and meta["step"] == str(cfg.steps)
    assert meta["fingerprint"] == exp.fingerprint and meta["format"].startswith("dde-checkpoint")
    for model, kind in (("decoupled.s0", "probe"), ("random.s0", "random")):
        with safe_open(str(exp.refit_file(model, 0)), framework="pt") as f:
            meta = f.metadata()
        assert meta["kind"] == kind == exp.refits(model)[0]["kind"] and meta["sites"] == ",".join(cfg.sites or ["layer.01"])
        assert meta["fingerprint"] == exp.fingerprint and meta["step"] == "0"
    # the penalty was applied in the decoupled and random arms and not in the baseline
    assert all(r["penalty"] is not None for m in ("decoupled.s0", "random.s1") for r in exp.train_log(m))
    assert all(r["penalty"] is None for r in exp.train_log("baseline.s0"))


def test_stored_chrf_equals_sacrebleu_on_saved_hypotheses(tiny_experiment):
    exp = Experiment(tiny_experiment)
    cfg = exp.config()
    directions = {"arb-arz", "arz-arb", "arb-ary", "ary-arb", "eng-arb", "arb-eng"}
    nonzero = 0
    for key in ["base", *arm_models(cfg)]:
        recs = read_jsonl(exp.hyps_path(key))
        scores = read_json(exp.scores_path(key))
        assert set(scores["directions"]) == directions
        assert scores["signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:2")
        assert sum(bool(r["hyp"]) for r in recs) > len(recs) / 2, f"{key}: the models must write real text"
        for d in directions:
            rows = [r for r in recs if r["direction"] == d]
            assert len(rows) == cfg.eval_size
            expect = CHRF(word_order=2).corpus_score([r["hyp"] for r in rows], [[r["ref"] for r in rows]]).score
            assert scores["directions"][d]["chrf"] == pytest.approx(expect, abs=1e-3)
            nonzero += expect > 1.0
    assert nonzero > len(directions), "stored-vs-recomputed must compare real scores, not 0.00 = 0.00"
    base = read_json(exp.scores_path("base"))["directions"]
    assert base["arb-arz"]["chrf"] > 5 and base["arb-ary"]["chrf"] > 5, "the tiny base copies MSA"
    # the copy-the-source reference: chrF++ of each source against its reference, per direction
    copy = read_json(exp.copy_source_path)["directions"]
    rows = [r for r in read_jsonl(exp.hyps_path("base")) if r["direction"] == "arb-arz"]
    expect = CHRF(word_order=2).corpus_score([r["source"] for r in rows], [[r["ref"] for r in rows]]).score
    assert set(copy) == directions and copy["arb-arz"]["chrf"] == pytest.approx(expect, abs=1e-3)
    assert summary(exp)["copy_source"]["arb-arz"] == copy["arb-arz"]
    doc = read_json(exp.deltas_path)
    deltas = doc["systems"]
    assert doc["interval"] == "seeds+sentences" and doc["seeds"] == list(cfg.seeds)
    for key in ("decoupled", "random", "base"):
        for d in directions:
            x = deltas[key][d]
            assert x["low"] <= x["delta"] + 1e-6 and x["delta"] <= x["high"] + 1e-6
            assert len(x["per_seed"]) == len(cfg.seeds) and x["reading"] in ("better", "worse", "within noise")
            assert x["delta"] == pytest.approx(sum(x["per_seed"]) / len(x["per_seed"]), abs=1e-3)
    # the noise floor: the two baseline seeds' chrF++ apart, per direction
    for d in directions:
        s0, s1 = (read_json(exp.scores_path(f"baseline.s{s}"))["directions"][d]["chrf"] for s in cfg.seeds)
        assert doc["noise_floor"][d]["max_abs"] == pytest.approx(abs(s1 - s0), abs=1e-3)


def test_summary_json_cli(tiny_experiment, capsys):
    assert cli_main(["summary", str(tiny_experiment), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["complete"] and s["refits"]["decoupled.s0"]["total"] >= 1
    assert set(s["models"]) == {"base", *(f"{a}.s{i}" for a in ("baseline", "decoupled", "random") for i in (0, 1))}
    assert set(s["arms"]) == {"baseline", "decoupled", "random"} and s["arms"]["baseline"]["arb-arz"]["sd"] is not None
    assert "delta" in s["deltas"]["decoupled"]["arb-arz"] and s["signature"].startswith("nrefs:1")
    # the noise floor is the two baseline seeds' chrF++ apart, from their own score files
    exp = Experiment(tiny_experiment)
    s0, s1 = (read_json(exp.scores_path(f"baseline.s{i}"))["directions"]["arb-arz"]["chrf"] for i in (0, 1))
    assert s["noise_floor"]["arb-arz"]["max_abs"] == pytest.approx(abs(s1 - s0), abs=1e-3)
    assert s["interval"] == "seeds+sentences"
    # what the outputs look like, recounted from the stored outputs with the stored classifiers
    from explorer.experiment.view import load_experiment

    view = load_experiment(tiny_experiment)
    hyps = [r["hyp"] for r in read_jsonl(exp.hyps_path("baseline.s0")) if r["direction"] == "arb-arz"]
    looks = s["looks_like"]["baseline.s0"]["directions"]["arb-arz"]
    assert looks["n"] == len(hyps) > 0
    assert looks["as_requested"] == pytest.approx(
        sum(p.variety == "arz" for p in view.classifier().predict(hyps)) / len(hyps), abs=1e-4)
    assert looks["called_msa"] == pytest.approx(
        sum(p.variety == "arb" for p in view.msa_classifier().predict(hyps)) / len(hyps), abs=1e-4)
    assert s["classifiers"]["msa_vs_dialect"]["balanced_accuracy"] > 0.5


def test_resume_after_interrupt_gives_the_same_numbers(tiny_experiment, tmp_path):
    cfg = preset_config("tiny")
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, out, bar=False, stop_after={"decoupled.s1": 10})
    exp = Experiment(out)
    assert exp.progress()["status"] == "interrupted"
    assert StageFolder(exp, "decoupled.s1").resume.location() is not None
    run_experiment(cfg, out, bar=False)
    stage = exp.manifest()["stages"]["arm:decoupled.s1"]
    assert stage["resumed_from"] == 8
    assert _results(out) == _results(tiny_experiment)
    assert any(v["chrf"] > 1.0 for v in _results(out)["models"]["decoupled.s1"].values()), "compare real numbers"
    ref = Experiment(tiny_experiment)
    a = exp.load_checkpoint("decoupled.s1", cfg.steps)
    b = ref.load_checkpoint("decoupled.s1", cfg.steps)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # identical in every recorded field, timings aside: the log, the refits, the token count
    untimed = [{k: v for k, v in r.items() if k != "elapsed"} for r in exp.train_log("decoupled.s1")]
    assert untimed == [{k: v for k, v in r.items() if k != "elapsed"} for r in ref.train_log("decoupled.s1")]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in exp.refits("decoupled.s1")] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in ref.refits("decoupled.s1")]
    assert stage["tokens"] == ref.manifest()["stages"]["arm:decoupled.s1"]["tokens"]


def test_killed_process_resumes_with_the_same_numbers(tmp_path):
    """SIGKILL a real `python -m explorer run` mid-arm, rerun the same command, compare with an uninterrupted run.

    The arms run 96 steps here so that the kill lands inside the decoupled arm even on a fast machine
    (progress.json is rewritten at most twice a second)."""
    extra = ["--steps", "96", "--arms", "baseline,decoupled", "--seeds", "0,"]
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "explorer", "run", "--preset", "tiny", "--out", str(out), "--no-bar", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            p = Experiment(out).progress() or {}
            if p.get("stage") == "decoupled.s0" and (p.get("step") or 0) >= 20:
                break
            if proc.poll() is not None:
                pytest.fail("the run ended before it could be killed")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not Experiment(out).stage_done("arm:decoupled.s0")
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Experiment(out).manifest()["stages"]["arm:decoupled.s0"]["resumed_from"] > 0
    ref = run_experiment(preset_config("tiny", steps=96, arms=("baseline", "decoupled"), seeds=(0,)), tmp_path / "ref",
                         bar=False, represent=False)
    assert _results(out) == _results(ref.root)
    assert any(v["chrf"] > 1.0 for v in _results(out)["models"]["decoupled.s0"].values()), "compare real numbers"


def test_second_run_in_the_same_folder_is_refused_and_other_settings_rejected(tiny_experiment, tmp_path):
    exp = Experiment(tiny_experiment)
    with pytest.raises(StoreError, match="different settings"):
        run_experiment(preset_config("tiny", lam=0.5), tiny_experiment, bar=False)
    # a live process holding the lock (experiment/lock.py; tests/test_lock.py has the races and stale files)
    holder = ("import sys, time; from explorer.experiment.lock import RunLock; RunLock(sys.argv[1]).acquire(); "
              "print('held', flush=True); time.sleep(60)")
    sleeper = subprocess.Popen([sys.executable, "-c", holder, str(exp.lock_path)], cwd=REPO, stdout=subprocess.PIPE,
                               text=True)
    try:
        assert sleeper.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=f"already being run by process {sleeper.pid}"):
            run_experiment(preset_config("tiny"), tiny_experiment, bar=False)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_manifest_from_another_format_version_is_detected(tmp_path):
    d = tmp_path / "old"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"format_version": 0, "config": {}}))
    with pytest.raises(StoreError, match="format version 0"):
        Experiment(d).manifest()
    assert cli_main(["summary", str(d)]) == 2


# ---------------------------------------------------------------- other data and models through the same path

WORDS = {
    "MSA": ["ماذا", "تريد", "أن", "تأكل", "اليوم", "في", "المطعم", "الكبير", "قرب", "البيت"],
    "Cairo": ["عايز", "تاكل", "ايه", "النهارده", "في", "المطعم", "الكبير", "جنب", "البيت"],
    "Rabat": ["شنو", "بغيتي", "تاكل", "اليوم", "فالمطعم", "الكبير", "حدا", "الدار"],
}


def _invented_madar(folder: Path, n: int = 60) -> Path:
    """An invented folder in the MADAR release format (never real MADAR text)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    size = min(len(w) for w in WORDS.values())
    picks = [rng.choice(size, size=5, replace=False) for _ in range(n)]
    for city, words in WORDS.items():
        lines = ["sentID.BTEC\tsplit\tlang\tsent"]
        for i, p in enumerate(picks):
            split = "train" if i < n - 20 else "dev" if i < n - 10 else "test"
            lines.append(f"{1000 + i}\tcorpus-26-{split}\t{city[:3].upper()}\t{' '.join(words[j] for j in p)}")
        (folder / f"MADAR.corpus.{city}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_madar_folder_runs_end_to_end(tmp_path):
    folder = _invented_madar(tmp_path / "MADAR_Corpus")
    cfg = preset_config("tiny", data=f"madar:{folder}", varieties=(), base_steps=8, steps=8, ckpt_every=4,
                        probe_every=4, eval_size=4, seeds=(0,))
    exp = run_experiment(cfg, tmp_path / "exp", bar=False, represent=False)
    s = summary(exp)
    assert set(s["models"]["decoupled.s0"]) >= {"arb-cai", "cai-arb", "arb-rab", "rab-arb", "eng-arb", "arb-eng"}
    per_var = exp.refits("decoupled.s0")[0]["sites"]
    assert set(next(iter(per_var.values()))["probe"]["per_variety"]) == {"arb", "cai", "rab"}


def test_bring_your_own_model_skips_stage_one(tiny_models, tmp_path):
    for arch in ("llama", "gpt2"):
        cfg = preset_config("tiny", model=str(tiny_models[arch]), steps=4, ckpt_every=2, probe_every=2,
                            eval_size=2, max_new_tokens=4, arms=("baseline", "decoupled"), seeds=(0,))
        assert cfg.base_steps == 0
        exp = run_experiment(cfg, tmp_path / arch, bar=False, represent=False)
        assert not exp.base_model_dir.exists()
        assert exp.checkpoints("decoupled.s0") == [2, 4]
        assert summary(exp)["complete"]


def test_unknown_variety_and_bad_model_are_clear_errors(tmp_path, capsys):
    rc = cli_main(["run", "--preset", "tiny", "--out", str(tmp_path / "a"), "--varieties", "xyz", "--no-bar"])
    assert rc == 2 and "xyz" in capsys.readouterr().err
    rc = cli_main(["run", "--preset", "tiny", "--out", str(tmp_path / "b"), "--model", str(tmp_path), "--no-bar"])
    assert rc == 2 and "config.json" in capsys.readouterr().err


def _as_format_1(src: Path, dst: Path) -> Path:
    """A copy of a tiny experiment in the layout of format 1 (one seed per arm, written before --seeds existed):
    arms/<arm>/, eval/<arm>/, stage keys without seeds, a config without the fields added since, a representation
    cache of format 1."""
    shutil.copytree(src, dst)
    m = read_json(dst / "manifest.json")
    for arm in ("baseline", "decoupled", "random"):
        shutil.rmtree(dst / "arms" / arm / "seed-1")
        for child in (dst / "arms" / arm / "seed-0").iterdir():
            child.rename(dst / "arms" / arm / child.name)
        (dst / "arms" / arm / "seed-0").rmdir()
        shutil.rmtree(dst / "eval" / f"{arm}.s1")
        (dst / "eval" / f"{arm}.s0").rename(dst / "eval" / arm)
    for path in (dst / "arms" / "decoupled" / "refits.jsonl", dst / "arms" / "random" / "refits.jsonl"):
        rows = read_jsonl(path)                                            # format 1 had no gate, no kind
        for r in rows:
            r.pop("kind", None)
            r.pop("accepted", None)
            for v in r["sites"].values():
                v.pop("gate", None)
        write_jsonl(path, rows)                   # through files.py: the check records follow the edit
    stages = {}
    for k, v in m["stages"].items():
        if k.endswith(".s1"):
            continue
        stages[k.removesuffix(".s0")] = v
    for new_field in ("seeds", "n_dialects", "penalty_form", "gate", "sweep", "tag_init"):
        m["config"].pop(new_field)
    m["config"]["varieties"] = ["arz", "ary"]
    m.update(format_version=1, stages=stages)
    write_json(dst / "manifest.json", m)
    rm = read_json(dst / "represent" / "manifest.json")
    rm["format_version"] = 1
    write_json(dst / "represent" / "manifest.json", rm)
    remove_file(dst / "eval" / "deltas.json")
    return dst


def test_a_single_seed_folder_of_format_1_still_opens(tiny_experiment, tmp_path):
    from explorer.experiment.view import load_experiment

    old = _as_format_1(tiny_experiment, tmp_path / "old")
    v = load_experiment(old)
    assert v.models == ("base", "baseline.s0", "decoupled.s0", "random.s0") and v.seeds == (0,)
    assert v.checkpoints("decoupled.s0") == [8, 16]
    assert set(v.scores()["model"]) == set(v.models) and "hyp_decoupled.s0" in v.hypotheses()
    r = v.refits("decoupled.s0")
    assert r["accepted"].all() and (r["gate_reason"] == "no gate (format 1)").all()
    assert v.subspace("decoupled.s0", 16, "layer.01").kind == "probe"
    s = summary(Experiment(old))
    assert s["format_version"] == 1 and set(s["arms"]) == {"baseline", "decoupled", "random"}
    with pytest.raises(StoreError, match="representation format version 1.*explorer represent"):
        v.representations("decoupled.s0", 16, "layer.01")
    assert cli_main(["represent", str(old)]) == 0                 # the advice works
    v = load_experiment(old)
    assert v.representations("decoupled.s0", 16, "layer.01").shape[0] > 0 and v.complete
    with pytest.raises(StoreError, match="format version 1.*cannot continue"):
        run_experiment(Experiment(old).config(), old, bar=False)


def test_summary_table_ends_each_kind_with_its_mean(tiny_experiment, capsys):
    """The CLI table's "mean m→d" row: the baseline's mean over the MSA→dialect directions (per seed, then over
    seeds), the same number as the mean of the per-seed means, and the Δ of that mean from the aggregate."""
    from explorer.experiment.report import summary as summary_of
    assert cli_main(["summary", str(tiny_experiment)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("mean m→d"))
    s = summary_of(Experiment(tiny_experiment))
    dirs = [d for d in s["arms"]["baseline"] if d.startswith("arb-") and d != "arb-eng"]
    per_seed = [np.mean([s["arms"]["baseline"][d]["per_seed"][k] for d in dirs]) for k in ("0", "1")]
    assert f"{np.mean(per_seed):.2f}±{np.std(per_seed, ddof=1):.1f}" in line
    assert f"{s['aggregate']['decoupled']['msa_to_dialect']['delta']:+6.2f}" in line
    assert any(x.startswith("mean d→m") for x in out.splitlines())
    # the post-hoc probes at the penalised site, per arm over seeds
    probe = next(x for x in out.splitlines() if x.startswith("post-hoc probe at "))
    site = probe.split()[3].rstrip(",")
    acc = [s["posthoc"][f"baseline.s{k}"][site] for k in (0, 1)]
    assert f"baseline {np.mean(acc):.2f}±{np.std(acc, ddof=1):.2f}" in probe and f"base {s['posthoc']['base'][site]:.2f}" in probe
