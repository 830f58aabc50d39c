"""The whole experiment as resumable stages: prepare → base → arms → eval → represent → summary."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import torch

from ..config import RunConfig
from ..data.rundata import load_run_data
from ..files import file_status, write_json
from ..names import parse_model
from ..training.distributed import current as current_dist
from ..training.distributed import setup as setup_dist
from .evaluate import relabel, stage_eval
from .integrity import plan_repairs
from .layout import Experiment, RunLock, training_order
from .models import run_precision
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
    exp.refuse_if_packed("a run")  # a shipped copy is read-only (experiment.pack): refused before its lock is taken
    torch.manual_seed(cfg.seed)
    dist = setup_dist()            # a no-op unless started by a launcher (distributed.py)
    if not dist.is_main:
        dist.barrier()             # rank 0 checks the folder and writes the manifest first
        _run_training_rank(exp, cfg, stop_after or {})
        return exp
    with RunLock(exp), stop_on_sigterm():
        exp.init(cfg)
        _check_progress(exp)
        precision = run_precision(exp, cfg)
        exp.record("precision", precision.to_dict())
        print(precision.line(), file=sys.stderr, flush=True)
        progress = Progress(exp, bar=bar)
        try:
            repairs = plan_repairs(exp, cfg)   # a finished stage whose files are damaged or missing is redone
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
            if repairs.relabel:
                relabel(exp, cfg, data)
            if represent:
                stage_represent(exp, cfg, data, progress, force_check=repairs.represent)
            write_json(exp.summary_path, summary(exp))
            progress.end("done", "; ".join(f"rebuilt: {line}" for line in repairs.lines))
        except KeyboardInterrupt as e:
            progress.end("interrupted", f"{e or 'interrupted (Ctrl-C)'}: rerun the same command to resume "
                                        "from the last checkpoint")
            raise
        except Exception as e:
            progress.end("failed", f"{type(e).__name__}: {e}")
            raise
    return exp


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the run stops, progress says "interrupted", the same command resumes it."""


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` in the main thread (elsewhere it is left as it is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated("stopped by SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_progress(exp: Experiment) -> None:
    """A garbled progress.json is reported (the run rewrites it at once; nothing in it is trusted)."""
    status = file_status(exp.progress_path)
    if status.state == "damaged":
        print(f"resume: {exp.progress_path.name} was damaged and is rewritten: "
              f"{status.detail.split(' It cannot be used')[0]}", file=sys.stderr)


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
