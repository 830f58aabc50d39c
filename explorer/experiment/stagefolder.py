"""Where a training stage hands what it produces (``training.loop.Sink``): its log, checkpoints, refits and resume
state, stored at the paths ``experiment.layout`` gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from ..files import append_jsonl, read_jsonl, remove_file, save_tensors, write_jsonl
from ..method.decoupler import Refit
from ..training.resume import ResumeState
from ..version import code_version
from .layout import Experiment

CHECKPOINT_FORMAT = "dde-checkpoint/1"


class StageFolder:
    """One training stage's products (``training.loop.Sink``): log, checkpoints, refits and resume state.

    Checkpoints and refit files describe themselves in their safetensors metadata (format, kind, stage, step,
    config fingerprint, code version), so one file can be understood without its neighbours."""

    def __init__(self, exp: Experiment, name: str):
        self.exp = exp
        self.name = name
        self.root = exp.stage_dir(name)
        self.resume = ResumeState(self.root / "state")

    @property
    def _log_path(self) -> Path:
        return self.root / "log.jsonl"

    @property
    def _refits_path(self) -> Path:
        return self.root / "refits.jsonl"

    def _meta(self, **extra) -> dict[str, str]:
        return {"format": CHECKPOINT_FORMAT, "stage": self.name, "fingerprint": self.exp.fingerprint,
                "code_version": code_version(), **{k: str(v) for k, v in extra.items()}}

    def begin(self, resume_step: int | None) -> None:
        if resume_step is None:       # a fresh start: nothing a previous attempt left may survive
            for stale in (self._log_path, self._refits_path):
                remove_file(stale)
            shutil.rmtree(self.root / "refits", ignore_errors=True)
            shutil.rmtree(self.root / "checkpoints", ignore_errors=True)
            return
        # resuming from the state saved after step ``resume_step``: its log line was written before that state and
        # stays; refits at ``resume_step`` or later happen after it and will be redone. A torn last line (a kill in
        # mid-line) is always newer than the state resumed from, so it is dropped with the rest (files.py).
        write_jsonl(self._log_path, [r for r in read_jsonl(self._log_path, drop_torn_tail=True)
                                     if r["step"] <= resume_step])
        write_jsonl(self._refits_path, [r for r in read_jsonl(self._refits_path, drop_torn_tail=True)
                                        if r["step"] < resume_step])

    def log(self, record: dict) -> None:
        append_jsonl(self._log_path, record)

    def checkpoint(self, step: int, tensors: dict[str, torch.Tensor]) -> None:
        """fp16 weights for analysis and evaluation (half the disk of fp32; resume uses the fp32 state)."""
        kind = "base" if self.name == "base" else "arm"
        save_tensors(self.exp.checkpoint_file(self.name, step), tensors, self._meta(kind=kind, step=step))

    def refit(self, refit: Refit) -> dict:
        index = len(read_jsonl(self._refits_path))
        record = {"index": index, **refit.record}
        save_tensors(self.exp.refit_file(self.name, index), refit.tensors,
                     self._meta(kind=record["kind"], step=record["step"], index=index,
                                sites=",".join(record["sites"]), arm=record["arm"]))
        append_jsonl(self._refits_path, record)
        return record

    def finish(self) -> None:
        """The stage is done: its resume state is no longer needed."""
        self.resume.drop()
