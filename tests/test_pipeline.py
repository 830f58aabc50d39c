"""Integration: the tiny preset end to end, its artefacts, resume after a kill, MADAR and --model paths."""

from __future__ import annotations

import json
import os
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
from explorer.experiment.layout import Experiment
from explorer.experiment.report import summary
from explorer.experiment.run import run_experiment
from explorer.files import StoreError, load_tensors, read_json, read_jsonl

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _results(exp_dir: Path) -> dict:
    s = summary(Experiment(exp_dir))
    return {"models": s["models"], "deltas": s["deltas"], "refits": s["refits"]}


def test_tiny_run_produces_every_artefact(tiny_experiment):
    exp = Experiment(tiny_experiment)
    cfg = exp.config()
    m = exp.manifest()
    for stage in ["prepare", "base", *[f"arm:{a}" for a in cfg.arms], "eval:base", *[f"eval:{a}" for a in cfg.arms]]:
        assert m["stages"][stage]["done"], stage
    assert (exp.base_model_dir / "config.json").exists() and (exp.tokenizer_dir / "tokenizer.json").exists()
    want_ckpts = list(range(cfg.ckpt_every, cfg.steps + 1, cfg.ckpt_every))
    for arm in cfg.arms:
        assert exp.checkpoints(arm) == want_ckpts
        assert exp.stage(arm).resume.location() is None, "finished arms drop their resume state"
        assert len(exp.train_log(arm)) == cfg.steps
    # every probe refit is saved: basis, rank, step, per-variety metrics
    refits = exp.refits("decoupled")
    assert [r["step"] for r in refits] == list(range(0, cfg.steps, cfg.probe_every))
    for r in refits:
        site, rec = next(iter(r["sites"].items()))
        U = load_tensors(exp.refit_file("decoupled", r["index"]))[f"{site}.basis"]
        assert U.shape[1] == rec["rank"] == cfg.rank
        assert torch.allclose(U.T @ U, torch.eye(U.shape[1]), atol=1e-4)
        probe = rec["probe"]
        assert 0 <= probe["accuracy"] <= 1 and probe["code_length_bits"] > 0 and probe["compression"] > 0
        assert set(probe["per_variety"]) == {"arb", "arz", "ary"}
        if r["index"] > 0:
            assert rec["angle_prev_deg"] is not None and 0 <= rec["angle_prev_deg"] <= 90
    assert len(exp.refits("random")) == 1 and exp.refits("random")[0]["sites"]
    assert exp.refits("baseline") == []
    # checkpoints and refit files describe themselves (one file is understood without its neighbours)
    from safetensors import safe_open
    with safe_open(str(exp.checkpoint_file("decoupled", cfg.steps)), framework="pt") as f:
        meta = f.metadata()
    assert meta["stage"] == "decoupled" and meta["kind"] == "arm" and meta["step"] == str(cfg.steps)
    assert meta["fingerprint"] == cfg.fingerprint() and meta["format"].startswith("dde-checkpoint")
    for arm, kind in (("decoupled", "probe"), ("random", "random")):
        with safe_open(str(exp.refit_file(arm, 0)), framework="pt") as f:
            meta = f.metadata()
        assert meta["kind"] == kind == exp.refits(arm)[0]["kind"] and meta["sites"] == ",".join(cfg.sites or ["layer.01"])
        assert meta["fingerprint"] == cfg.fingerprint() and meta["step"] == "0"
    # the penalty was applied in the decoupled arm and not in the baseline
    assert all(r["penalty"] is not None for r in exp.train_log("decoupled"))
    assert all(r["penalty"] is None for r in exp.train_log("baseline"))


def test_stored_chrf_equals_sacrebleu_on_saved_hypotheses(tiny_experiment):
    exp = Experiment(tiny_experiment)
    cfg = exp.config()
    directions = {"arb-arz", "arz-arb", "arb-ary", "ary-arb", "eng-arb", "arb-eng"}
    for key in ["base", *cfg.arms]:
        recs = read_jsonl(exp.hyps_path(key))
        scores = read_json(exp.scores_path(key))
        assert set(scores["directions"]) == directions
        assert scores["signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:2")
        for d in directions:
            rows = [r for r in recs if r["direction"] == d]
            assert len(rows) == cfg.eval_size
            expect = CHRF(word_order=2).corpus_score([r["hyp"] for r in rows], [[r["ref"] for r in rows]]).score
            assert scores["directions"][d]["chrf"] == pytest.approx(expect, abs=1e-3)
    # the copy-the-source reference: chrF++ of each source against its reference, per direction
    copy = read_json(exp.copy_source_path)["directions"]
    rows = [r for r in read_jsonl(exp.hyps_path("base")) if r["direction"] == "arb-arz"]
    expect = CHRF(word_order=2).corpus_score([r["source"] for r in rows], [[r["ref"] for r in rows]]).score
    assert set(copy) == directions and copy["arb-arz"]["chrf"] == pytest.approx(expect, abs=1e-3)
    assert summary(exp)["copy_source"]["arb-arz"] == copy["arb-arz"]
    deltas = read_json(exp.deltas_path)["systems"]
    for key in ("decoupled", "random", "base"):
        for d in directions:
            x = deltas[key][d]
            assert x["low"] <= x["delta"] + 1e-6 and x["delta"] <= x["high"] + 1e-6


def test_summary_json_cli(tiny_experiment, capsys):
    assert cli_main(["summary", str(tiny_experiment), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["complete"] and s["refits"]["decoupled"] >= 1
    assert set(s["models"]) == {"base", "baseline", "decoupled", "random"}
    assert "delta" in s["deltas"]["decoupled"]["arb-arz"] and s["signature"].startswith("nrefs:1")


def test_resume_after_interrupt_gives_the_same_numbers(tiny_experiment, tmp_path):
    cfg = preset_config("tiny")
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, out, bar=False, stop_after={"decoupled": 10})
    exp = Experiment(out)
    assert exp.progress()["status"] == "interrupted"
    assert exp.stage("decoupled").resume.location() is not None
    run_experiment(cfg, out, bar=False)
    assert exp.manifest()["stages"]["arm:decoupled"]["resumed_from"] == 8
    assert _results(out) == _results(tiny_experiment)
    a = exp.load_checkpoint("decoupled", cfg.steps)
    b = Experiment(tiny_experiment).load_checkpoint("decoupled", cfg.steps)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_killed_process_resumes_with_the_same_numbers(tmp_path):
    """SIGKILL a real `python -m explorer run` mid-arm, rerun the same command, compare with an uninterrupted run.

    The arms run 96 steps here so that the kill lands inside the decoupled arm even on a fast machine
    (progress.json is rewritten at most twice a second)."""
    extra = ["--steps", "96", "--arms", "baseline,decoupled"]
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "explorer", "run", "--preset", "tiny", "--out", str(out), "--no-bar", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            p = Experiment(out).progress() or {}
            if p.get("stage") == "decoupled" and (p.get("step") or 0) >= 20:
                break
            if proc.poll() is not None:
                pytest.fail("the run ended before it could be killed")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not Experiment(out).stage_done("arm:decoupled")
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Experiment(out).manifest()["stages"]["arm:decoupled"]["resumed_from"] > 0
    ref = run_experiment(preset_config("tiny", steps=96, arms=("baseline", "decoupled")), tmp_path / "ref",
                         bar=False, represent=False)
    assert _results(out) == _results(ref.root)


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
                        probe_every=4, eval_size=4)
    exp = run_experiment(cfg, tmp_path / "exp", bar=False, represent=False)
    s = summary(exp)
    assert set(s["models"]["decoupled"]) >= {"arb-cai", "cai-arb", "arb-rab", "rab-arb", "eng-arb", "arb-eng"}
    per_var = exp.refits("decoupled")[0]["sites"]
    assert set(next(iter(per_var.values()))["probe"]["per_variety"]) == {"arb", "cai", "rab"}


def test_bring_your_own_model_skips_stage_one(tiny_models, tmp_path):
    for arch in ("llama", "gpt2"):
        cfg = preset_config("tiny", model=str(tiny_models[arch]), steps=4, ckpt_every=2, probe_every=2,
                            eval_size=2, max_new_tokens=4, arms=("baseline", "decoupled"))
        assert cfg.base_steps == 0
        exp = run_experiment(cfg, tmp_path / arch, bar=False, represent=False)
        assert not exp.base_model_dir.exists()
        assert exp.checkpoints("decoupled") == [2, 4]
        assert summary(exp)["complete"]


def test_unknown_variety_and_bad_model_are_clear_errors(tmp_path, capsys):
    rc = cli_main(["run", "--preset", "tiny", "--out", str(tmp_path / "a"), "--varieties", "xyz", "--no-bar"])
    assert rc == 2 and "xyz" in capsys.readouterr().err
    rc = cli_main(["run", "--preset", "tiny", "--out", str(tmp_path / "b"), "--model", str(tmp_path), "--no-bar"])
    assert rc == 2 and "config.json" in capsys.readouterr().err
