"""Data-parallel training through Accelerate (distributed.py), with two CPU processes over gloo.

The launcher is torch's own (``python -m torch.distributed.run``); Accelerate joins its process group."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from explorer.experiment.layout import Experiment, arm_models
from explorer.files import read_jsonl

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def _launch(args: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with socket.socket() as sock:                # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), *args]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_process_tiny_run_writes_each_artefact_once(tmp_path):
    out = tmp_path / "ddp"
    done = _launch(["-m", "explorer", "run", "--preset", "tiny", "--out", str(out), "--no-bar", "--seeds", "0,"],
                   tmp_path)
    assert done.stdout.count("chrF++ signature") == 1            # rank 0 alone reports
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
