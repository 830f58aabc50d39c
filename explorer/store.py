"""Experiment folders: layout, manifest, atomic writes, format versioning, progress and run lock.

Layout of one experiment (``cache/<name>/``)::

    manifest.json              format version, code version, config, stage status
    progress.json              live progress (the app follows it), rewritten atomically
    run.lock                   pid of the process running the experiment (one run at a time)
    tokenizer/  base/model/    stage 1 (save_pretrained folders)
    arms/<arm>/checkpoints/step-000100/weights.safetensors   fp16 weights at that step
    arms/<arm>/state/          resume state of an unfinished arm (fp32 weights, optimiser, step)
    arms/<arm>/refits/refit-0003.safetensors + arms/<arm>/refits.jsonl   every probe refit
    arms/<arm>/log.jsonl       training log (step, losses, time)
    eval/<model>/hyps.jsonl    every decoded test sentence;  eval/scores.json, eval/deltas.json
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

FORMAT_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_ROOT = REPO_ROOT / "cache"


class StoreError(ValueError):
    """An experiment folder that cannot be used as it is, with what to do."""


def code_version() -> str:
    """The git commit of the code (with '+dirty' when the tree has changes), or the package version."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        if sha:
            return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from . import __version__
    return __version__


# ---------------------------------------------------------------- atomic writes


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; caches are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreError(f"{path} is damaged ({e}). Delete it and rerun the same command to rebuild it.") from e


def append_jsonl(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False, default=_json_default) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSON-lines file; a torn last line (a run killed mid-write) is dropped, not misread."""
    if not path.exists():
        return []
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                break
            raise StoreError(f"{path} line {i + 1} is damaged ({e}); delete the file to rebuild it") from e
    return out


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n"
                                    for r in records))


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    seen: set[int] = set()
    flat = {}
    for k, v in tensors.items():
        v = v.detach().contiguous().cpu()
        if v.data_ptr() in seen:  # safetensors refuses shared storage: copy aliases
            v = v.clone()
        seen.add(v.data_ptr())
        flat[k] = v
    save_file(flat, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise
    except Exception as e:
        raise StoreError(f"{path} is damaged or truncated ({e}). Delete it and rerun to rebuild.") from e


# ---------------------------------------------------------------- the experiment folder


class Experiment:
    """Paths and manifest of one experiment folder. Cheap to construct; reads lazily."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()

    # paths
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def progress_path(self) -> Path:
        return self.root / "progress.json"

    @property
    def lock_path(self) -> Path:
        return self.root / "run.lock"

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"

    @property
    def base_dir(self) -> Path:
        return self.root / "base"

    @property
    def base_model_dir(self) -> Path:
        return self.root / "base" / "model"

    def arm_dir(self, arm: str) -> Path:
        return self.root / "arms" / arm

    def checkpoint_dir(self, arm: str, step: int) -> Path:
        return self.arm_dir(arm) / "checkpoints" / f"step-{step:06d}"

    def checkpoints(self, arm: str) -> list[int]:
        """Steps of the complete checkpoints of an arm, ascending."""
        d = self.arm_dir(arm) / "checkpoints"
        if not d.exists():
            return []
        steps = []
        for c in d.iterdir():
            if c.name.startswith("step-") and (c / "weights.safetensors").exists():
                steps.append(int(c.name[5:]))
        return sorted(steps)

    def refits(self, arm: str) -> list[dict]:
        return read_jsonl(self.arm_dir(arm) / "refits.jsonl")

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    # manifest
    def exists(self) -> bool:
        return self.manifest_path.exists()

    def manifest(self) -> dict:
        if not self.manifest_path.exists():
            raise StoreError(f"{self.root} is not an experiment folder (no manifest.json). "
                             "Create one with `python -m explorer run --out DIR`.")
        m = read_json(self.manifest_path)
        v = m.get("format_version")
        if v != FORMAT_VERSION:
            raise StoreError(f"{self.root} was written by format version {v}; this code reads version "
                             f"{FORMAT_VERSION}. Rerun the experiment into a new folder (--out NEW).")
        return m

    def config(self):
        from .config import RunConfig
        return RunConfig.from_dict(self.manifest()["config"])

    def init(self, config) -> dict:
        """Create the manifest, or check that an existing one was made by the same config."""
        if self.manifest_path.exists():
            m = self.manifest()
            if m["fingerprint"] != config.fingerprint():
                old = m["config"]
                diff = {k: (old.get(k), v) for k, v in config.to_dict().items() if old.get(k) != v}
                raise StoreError(
                    f"{self.root} holds an experiment made with different settings {diff} "
                    "(old, new). Use --out with a new folder, or delete this one to start over.")
            return m
        m = {"format_version": FORMAT_VERSION, "code_version": code_version(), "fingerprint": config.fingerprint(),
             "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "config": config.to_dict(), "stages": {}}
        write_json(self.manifest_path, m)
        return m

    def stage_done(self, stage: str) -> bool:
        return self.exists() and self.manifest().get("stages", {}).get(stage, {}).get("done", False)

    def mark_stage(self, stage: str, **info) -> None:
        m = self.manifest()
        m.setdefault("stages", {})[stage] = {"done": True, "code_version": code_version(),
                                             "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
        write_json(self.manifest_path, m)

    # progress
    def write_progress(self, **fields) -> None:
        fields.setdefault("updated", time.time())
        fields.setdefault("pid", os.getpid())
        write_json(self.progress_path, fields)

    def progress(self) -> dict | None:
        try:
            return read_json(self.progress_path)
        except (FileNotFoundError, StoreError):
            return None

    # lock
    def running_pid(self) -> int | None:
        """The pid of a live process running this experiment, or None."""
        try:
            pid = int(self.lock_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still "exists"; treat it as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


class RunLock:
    """One run per experiment folder: a second ``run`` while one is alive is refused."""

    def __init__(self, exp: Experiment):
        self.exp = exp

    def __enter__(self):
        pid = self.exp.running_pid()
        if pid is not None and pid != os.getpid():
            raise StoreError(f"{self.exp.root} is already being run by process {pid}; "
                             "wait for it or stop it first.")
        self.exp.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.exp.lock_path, str(os.getpid()))
        return self

    def __exit__(self, *exc):
        try:
            if self.exp.lock_path.read_text().strip() == str(os.getpid()):
                self.exp.lock_path.unlink()
        except FileNotFoundError:
            pass
        return False


def list_experiments(root: Path = CACHE_ROOT) -> list[Path]:
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if (p / "manifest.json").exists())
