"""The whole experiment as resumable stages: prepare → base → arms → eval → represent → summary."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import RunConfig
from ..data.rundata import load_run_data
from ..files import write_json
from ..names import parse_model
from ..training.distributed import current as current_dist
from ..training.distributed import setup as setup_dist
from .evaluate import stage_eval
from .layout import Experiment, RunLock, training_order
from .preflight import preflight
from .progress import NullProgress, Progress
from .report import summary
from .represent import stage_represent
from .stages import stage_arm, stage_base, stage_prepare


def run_experiment(cfg: RunConfig, out: str | Path, *, bar: bool = True, stop_after: dict | None = None,
                   represent: bool = True) -> Experiment:
    """Run (or resume) every stage. ``stop_after={"decoupled.s0": 5}`` interrupts that arm after 5 steps (tests;
    an arm name without a seed stops that arm of every seed)."""
    preflight(cfg)                 # every setting checked before any work (and before the folder exists)
    exp = Experiment(out)
    torch.manual_seed(cfg.seed)
    dist = setup_dist()            # a no-op unless started by a launcher (distributed.py)
    if not dist.is_main:
        dist.barrier()             # rank 0 checks the folder and writes the manifest first
        _run_training_rank(exp, cfg, stop_after or {})
        return exp
    with RunLock(exp):
        exp.init(cfg)
        progress = Progress(exp, bar=bar)
        try:
            dist.barrier()
            progress.stage("prepare")
            data = load_run_data(cfg)
            stage_prepare(exp, cfg, data)
            progress.finish_stage("prepare")
            dist.barrier()
            stop_after = stop_after or {}
            stage_base(exp, cfg, data, progress, stop_after=stop_after.get("base"))
            for model in training_order(cfg):
                stage_arm(exp, cfg, data, model, progress, stop_after=_stop(stop_after, model))
            stage_eval(exp, cfg, data, progress)
            if represent:
                stage_represent(exp, cfg, data, progress)
            write_json(exp.summary_path, summary(exp))
            progress.end("done")
        except KeyboardInterrupt as e:
            progress.end("interrupted", str(e))
            raise
        except Exception as e:
            progress.end("failed", f"{type(e).__name__}: {e}")
            raise
    return exp


def _run_training_rank(exp: Experiment, cfg: RunConfig, stop_after: dict) -> None:
    """A rank other than 0: train its share of every batch of every stage; rank 0 does all the rest."""
    data = load_run_data(cfg)
    dist = current_dist()
    dist.barrier()                 # rank 0 has prepared (tokenizer)
    progress = NullProgress()
    stage_base(exp, cfg, data, progress, stop_after=stop_after.get("base"))
    for model in training_order(cfg):
        stage_arm(exp, cfg, data, model, progress, stop_after=_stop(stop_after, model))


def _stop(stop_after: dict, model: str) -> int | None:
    """The test hook's step count for ``model`` (keys may name a model, "decoupled.s1", or an arm, "decoupled")."""
    return stop_after.get(model, stop_after.get(parse_model(model)[0]))
