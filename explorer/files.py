"""Writing and reading the files every stage produces: atomic writes, JSON, JSON lines, tensors, file locks.

Every write goes to a temporary file in the same folder and is renamed over the target, so a reader (or a run
killed mid-write) sees the old file or the new one, never half of one. Damage found on read raises
``StoreError`` naming the file and saying what to do.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file


class StoreError(ValueError):
    """A stored file or folder that cannot be used as it is; the message names it and says what to do."""


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Let ``write`` fill a temporary file next to ``path``, flush it to disk, then rename it over ``path``.

    The one way this project writes a file: a reader never sees half of one, and a run killed mid-write leaves
    the previous version (or nothing) behind, plus at worst a hidden ``.tmp`` file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; caches are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _with_handle(write: Callable[[IO[bytes]], None]) -> Callable[[Path], None]:
    def to_path(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)
    return to_path


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(text.encode("utf-8")))


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


def save_npy(path: Path, a: np.ndarray) -> None:
    atomic_write(path, _with_handle(lambda f: np.save(f, a, allow_pickle=False)))


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    atomic_write(path, _with_handle(lambda f: np.savez(f, **arrays)))


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    seen: set[int] = set()
    flat = {}
    for k, v in tensors.items():
        v = v.detach().contiguous().cpu()
        if v.data_ptr() in seen:  # safetensors refuses shared storage: copy aliases
            v = v.clone()
        seen.add(v.data_ptr())
        flat[k] = v
    atomic_write(path, lambda tmp: save_file(flat, str(tmp), metadata=metadata))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise
    except Exception as e:
        raise StoreError(f"{path} is damaged or truncated ({e}). Delete it and rerun to rebuild.") from e


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the duration of the block.

    The lock is the kernel's (``flock``): it is released when the holder exits or dies, so a crash can never
    leave a folder locked."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
