"""COMET beside chrF++ (optional; ``--comet PATH``): a learned MT metric scoring (source, hypothesis, reference)
triples (Rei et al. 2020, "COMET: A Neural Framework for MT Evaluation"; e.g. Unbabel/wmt22-comet-da).

The ``unbabel-comet`` package pins versions this project cannot share (transformers 4.x, numpy 1.x, an older
huggingface_hub), so it usually lives in an environment of its own (``requirements-comet.txt``). Two scorers, one
interface (``Scorer``: ``score(triples) -> list[float]``):

- ``InProcessComet``: when ``import comet`` works in this environment;
- ``WorkerComet``: otherwise, a worker process run by the COMET environment's Python (``DDE_COMET_PYTHON``), started
  once per evaluation stage so the model (2 GB for wmt22-comet-da) is read once (``comet_worker.py``).

``load_scorer`` picks one and says what to install when neither is possible. Tests use a stand-in with the same
interface, and a stand-in ``comet`` package for the worker, so nothing here needs the package or its weights.

COMET checkpoints are PyTorch Lightning files read with pickle: point ``--comet`` only at a model from a source you
trust (Unbabel's own releases).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

WORKER = Path(__file__).with_name("comet_worker.py")
PYTHON_ENV = "DDE_COMET_PYTHON"


class CometError(ValueError):
    """COMET cannot run as asked, with what to do about it."""


class Scorer(Protocol):
    name: str

    def score(self, triples: Sequence[tuple[str, str, str]]) -> list[float]:
        """One score per (source, hypothesis, reference), in order."""


def checkpoint_in(folder: str | Path) -> Path:
    """The ``.ckpt`` file of a local COMET model folder (the layout of Unbabel's releases: checkpoints/model.ckpt)."""
    p = Path(folder).expanduser()
    if p.is_file() and p.suffix == ".ckpt":
        return p
    for c in (p / "checkpoints" / "model.ckpt", p / "model.ckpt"):
        if c.is_file():
            return c
    raise CometError(f"--comet {p}: no COMET checkpoint there (expected {p}/checkpoints/model.ckpt). Download a "
                     "model folder first, e.g. `hf download Unbabel/wmt22-comet-da --local-dir models/wmt22-comet-da`, "
                     "and pass --comet models/wmt22-comet-da")


def _triples_as_samples(triples: Sequence[tuple[str, str, str]]) -> list[dict]:
    return [{"src": s, "mt": h, "ref": r} for s, h, r in triples]


class InProcessComet:
    """COMET loaded in this process (``comet.load_from_checkpoint``)."""

    def __init__(self, folder: str | Path, *, batch_size: int = 16, gpus: int | None = None):
        from comet import load_from_checkpoint  # optional dependency: only imported when asked for

        ckpt = checkpoint_in(folder)
        self.name = Path(folder).expanduser().name
        self.model = load_from_checkpoint(str(ckpt))
        self.batch_size = batch_size
        self.gpus = _gpus() if gpus is None else gpus

    def score(self, triples: Sequence[tuple[str, str, str]]) -> list[float]:
        if not triples:
            return []
        out = self.model.predict(_triples_as_samples(triples), batch_size=self.batch_size, gpus=self.gpus,
                                 progress_bar=False)
        return [float(x) for x in out.scores]


class WorkerComet:
    """COMET in a worker process run by another environment's Python: one JSON request line in, one JSON answer out.

    Use as a context manager (the worker is stopped on exit)."""

    def __init__(self, folder: str | Path, python: str, *, batch_size: int = 16, gpus: int | None = None,
                 env: dict | None = None):
        ckpt = checkpoint_in(folder)
        self.name = Path(folder).expanduser().name
        self.proc = subprocess.Popen(
            [python, str(WORKER), str(ckpt), str(batch_size), str(_gpus() if gpus is None else gpus)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})})
        self._finalizer = weakref.finalize(self, _stop, self.proc)   # stopped when dropped, even without close()
        ready = _json_line(self.proc.stdout.readline())
        if ready.get("ready") is not True:
            self.close()
            why = ready.get("error") or self.proc.stderr.read()[-2000:].strip() or "no answer"
            raise CometError(f"the COMET worker ({python}) did not start: {why}. Check that {PYTHON_ENV} points "
                             "at a Python with requirements-comet.txt installed, and the --comet folder.")

    def score(self, triples: Sequence[tuple[str, str, str]]) -> list[float]:
        if not triples:
            return []
        self.proc.stdin.write(json.dumps({"samples": _triples_as_samples(triples)}, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()
        answer = _json_line(self.proc.stdout.readline())
        if "error" in answer:
            raise CometError(f"COMET failed: {answer['error']}")
        scores = [float(x) for x in answer["scores"]]
        if len(scores) != len(triples):
            raise CometError(f"COMET returned {len(scores)} scores for {len(triples)} sentences")
        return scores

    def close(self) -> None:
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.stdin.close()         # the worker ends when its input ends
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _json_line(line: str) -> dict:
    try:
        return json.loads(line) if line.strip() else {"error": "the worker ended without an answer"}
    except json.JSONDecodeError:
        return {"error": f"unreadable answer {line[:200]!r}"}


def _gpus() -> int:
    try:
        import torch
        return 1 if torch.cuda.is_available() else 0
    except ImportError:
        return 0


def load_scorer(folder: str | Path, *, batch_size: int = 16) -> Scorer:
    """A COMET scorer for the model in ``folder``: in this process when ``comet`` is installed here, else a worker
    run by ``$DDE_COMET_PYTHON``; otherwise a ``CometError`` saying how to set that up."""
    checkpoint_in(folder)      # a wrong folder is reported before anything is started
    if importlib.util.find_spec("comet") is not None:
        return InProcessComet(folder, batch_size=batch_size)
    python = os.environ.get(PYTHON_ENV)
    if python:
        return WorkerComet(folder, python, batch_size=batch_size)
    raise CometError(
        "--comet needs the unbabel-comet package, which is not installed here, and its pins (transformers 4.x, "
        "numpy 1.x) conflict with this project's. Give it an environment of its own and point to its Python:\n"
        "  python -m venv .venv-comet && .venv-comet/bin/pip install -r requirements-comet.txt\n"
        f"  export {PYTHON_ENV}=$PWD/.venv-comet/bin/python\n"
        "or run without --comet.")


def comet_by_direction(scorer: Scorer, records: list[dict]) -> dict:
    """Score evaluation records (``source``, ``hyp``, ``ref``, ``direction``) in one call; add each sentence's
    score to its record (``comet``) and return the mean per direction: {direction: {"comet": mean, "n": n}}."""
    scores = scorer.score([(r["source"], r["hyp"], r["ref"]) for r in records])
    by: dict[str, list[float]] = {}
    for r, s in zip(records, scores):
        r["comet"] = round(float(s), 4)
        by.setdefault(r["direction"], []).append(float(s))
    return {d: {"comet": round(float(np.mean(v)), 4), "n": len(v)} for d, v in by.items()}


def describe(scorer: Scorer) -> dict:
    """What goes beside the scores: the COMET model's folder name and how it ran."""
    return {"model": scorer.name, "runner": type(scorer).__name__}
