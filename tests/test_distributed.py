"""Data-parallel training through Accelerate (distributed.py), with two CPU processes over gloo.

The launcher is torch's own (``python -m torch.distributed.run``); Accelerate joins its process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil  # installed with accelerate
import pytest
import torch
from test_pipeline import _results

from explorer.experiment.layout import Experiment, arm_models
from explorer.experiment.stagefolder import StageFolder
from explorer.files import read_jsonl

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


# the two-process runs of this module: arms baseline and decoupled, 32 steps, one seed
RUN = ["-m", "explorer", "run", "--preset", "tiny", "--no-bar", "--steps", "32", "--arms", "baseline,decoupled",
       "--seeds", "1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def _command(args: list[str]) -> list[str]:
    with socket.socket() as sock:                # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(port), *args]


def _launch(args: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(_command(args), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """An uninterrupted two-process run: (its folder, its stdout)."""
    out = tmp_path_factory.mktemp("ddp") / "ddp"
    done = _launch([*RUN, "--out", str(out)], out.parent)
    return out, done.stdout


def test_two_process_tiny_run_writes_each_artefact_once(ddp_run):
    out, stdout = ddp_run
    assert stdout.count("chrF++ signature") == 1            # rank 0 alone reports
    exp = Experiment(out)
    cfg = exp.config()
    models = arm_models(cfg)
    for stage in ["prepare", "base", *[f"arm:{a}" for a in models], *[f"eval:{k}" for k in ["base", *models]]]:
        assert exp.stage_done(stage), stage
    for model in models:
        assert len(exp.train_log(model)) == cfg.steps   # one line per step, not two
        assert exp.checkpoints(model)[-1] == cfg.steps
    refits = exp.refits("decoupled.s0")
    assert [r["step"] for r in refits] == list(range(0, cfg.steps, cfg.probe_every))
    assert [r["index"] for r in refits] == list(range(len(refits)))
    # the base saw the global batches: as many tokens as a one-process run of the same schedule
    assert exp.manifest()["stages"]["base"]["tokens"] > 0


def test_a_killed_two_process_run_resumes_to_the_same_results(ddp_run, tmp_path):
    """SIGKILL to the launcher's process group mid-arm; the workers (torchrun gives each a session of its own) stop
    with it; the same command resumes from the last resume state and ends with the uninterrupted run's results."""
    out = tmp_path / "killed"
    cmd = _command([*RUN, "--out", str(out)])
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    workers: list[psutil.Process] = []
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            p = Experiment(out).progress() or {}
            if p.get("stage") == "decoupled.s0" and (p.get("step") or 0) >= 10:   # past the checkpoint at step 8
                break
            if proc.poll() is not None:
                pytest.fail("the run ended before it could be killed")
            time.sleep(0.02)
        workers = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert len(workers) >= 2
    _gone, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, f"workers outlived their launcher: {alive}"
    exp = Experiment(out)
    assert not exp.stage_done("arm:decoupled.s0") and StageFolder(exp, "decoupled.s0").resume.location() is not None
    assert exp.running_pid() is None                      # the lock died with its holders
    _launch([*RUN, "--out", str(out)], tmp_path, timeout=600)
    assert exp.manifest()["stages"]["arm:decoupled.s0"]["resumed_from"] >= 8
    assert _results(out) == _results(ddp_run[0])
    a, b = exp.load_checkpoint("decoupled.s0", 32), Experiment(ddp_run[0]).load_checkpoint("decoupled.s0", 32)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_refits_are_broadcast_so_every_rank_penalises_the_same_subspace(tmp_path, tiny_models):
    script = tmp_path / "refit.py"
    script.write_text(textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from explorer.training.distributed import setup
        from explorer.data.examples import collate, Encoder, Example
        from explorer.model.loading import load_model
        from explorer.files import append_jsonl
        from explorer.method.decoupler import Decoupler, DecoupleSettings

        dist = setup()
        torch.manual_seed(100 + dist.rank)        # a fit on each rank would differ; the broadcast must win
        model, tok = load_model({str(tiny_models["llama"])!r})
        codes = ["arb", "arz", "eng"]
        enc = Encoder(tok, codes, 24)
        exs = [Example("arb", "arz", "مرحبا بالعالم هذا اختبار", "عامل ايه يا صاحبي")] * 8
        exs += [Example("arz", "arb", "عامل ايه يا صاحبي", "ما هو اسمك؟")] * 8
        batches = [collate(enc.encode_all(exs), tok.pad_token_id)]
        out = Path({str(tmp_path)!r})
        for arm in ("decoupled", "random"):
            s = DecoupleSettings(arm=arm, kind="random" if arm == "random" else "probe", sites=("layer.01",),
                                 lam=0.01, rank=1, probe_every=1, probe_tokens=500, probe_steps=20, squared=False,
                                 penalty_tokens="all", penalty_form="norm", mode="penalty", gate=0.0, seed=dist.rank)
            d = Decoupler(s, 32, codes, lambda step: batches, dist=dist)
            refit = d.refit(model, 0, None)
            if refit is not None:                     # only rank 0 gets something to store
                append_jsonl(out / arm / "refits.jsonl", refit.record)
            torch.save(d.current["layer.01"].basis, out / f"{{arm}}-rank{{dist.rank}}.pt")
        dist.barrier()
    """))
    _launch([str(script)], tmp_path)
    for arm in ("decoupled", "random"):
        u0, u1 = (torch.load(tmp_path / f"{arm}-rank{r}.pt") for r in (0, 1))
        assert u0.shape == (32, 1) and torch.equal(u0, u1)
        assert len(read_jsonl(tmp_path / arm / "refits.jsonl")) == 1      # stored by rank 0 only
