"""Writing and reading the files every stage produces: atomic writes, JSON, JSON lines, tensors, file locks,
and a check of every artefact on read.

Every write goes to a temporary file in the same folder and is renamed over the target, so a reader (or a run
killed mid-write) sees the old file or the new one, never half of one.

**Verification.** Every file written by ``write_json``, ``write_jsonl``, ``append_jsonl``, ``save_tensors``,
``save_npy`` and ``save_npz`` gets a *check record* at write time: a hidden sidecar ``.<name>.check`` next to it
holding the file's size and hash: XXH3-64 (xxHash, ~30 GB/s, so that verifying a checkpoint costs a fraction of
loading it), or CRC-32 for append-only logs, which it extends line by line. A checksum against damage, not a
defence against tampering. Their readers
(``read_json``, ``read_jsonl``, ``load_tensors``, ``load_npy``, ``load_npz``) compare the file with its record
before using a byte of it, so a truncated, garbled or torn file raises ``StoreError`` naming the file and saying
what to do, instead of being misread or silently shortened. safetensors has no checksum of its own and JSON lines
cut at a line end still parse: the record is what catches those. ``file_status(path)`` answers "is this file
intact?" without raising, for stages that decide what to rebuild.

- A file with no record (a folder written before records existed, or a file written by other code) is
  *unverified*, not damaged: it is read as before, with the format's own checks (JSON syntax, safetensors
  header, every JSON line parsing).
- The record is replaced before the file is renamed into place and keeps the record of the version it replaces,
  so a crash between the two renames leaves a file that matches one of them; writes and reads of one folder
  take the folder's ``flock`` (exclusive to write, shared to read) so a reader never pairs a file with the
  record of another version.
- **Append-only logs** (``append_jsonl``): each append writes one line and then extends the record, both under
  the folder's lock. A reader therefore never sees the live tail of a run being written: a complete line after
  the recorded end (a writer killed between its append and its record) is accepted; an incomplete last line was
  left by a writer that died in mid-line, or by damage, and is *reported* (``StoreError``), never dropped. The
  one caller that may drop it is resuming a stage (``read_jsonl(..., drop_torn_tail=True)``): a torn line is
  always newer than the checkpoint the stage resumes from, so it would be redone anyway.
"""

from __future__ import annotations

import fcntl
import io
import json
import mmap
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .filecheck import (  # noqa: F401  (StoreError, damaged, check_path: part of this module's API)
    FileStatus,
    Record,
    StoreError,
    _folder_lock,
    _hash,
    _load_record,
    _matches,
    _mismatch,
    _update_record_in_place,
    _write_record,
    check_path,
    damaged,
)


# ---------------------------------------------------------------- writing


def atomic_write(path: Path, write: Callable[[Path], None], *, record: bool = False) -> None:
    """Let ``write`` fill a temporary file next to ``path``, flush it to disk, then rename it over ``path``.

    The one way this project writes a file: a reader never sees half of one, and a run killed mid-write leaves
    the previous version (or nothing) behind, plus at worst a hidden ``.tmp`` file. ``record`` also writes the
    check record that the readers below verify."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
            new = _record_of_handle(f) if record else None
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; caches are meant to be shared
        if new is None:
            os.replace(tmp, path)
            return
        with _folder_lock(path.parent, exclusive=True):
            _write_record(path, new, _on_disk_record(path))
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _record_of_handle(f) -> Record:
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        return Record.of(b"")
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return Record.of(m)


def _on_disk_record(path: Path) -> Record | None:
    """The record of the version now at ``path`` (kept as "previous" while it is replaced), found by size."""
    try:
        size = path.stat().st_size
        rec = _load_record(path)
    except (FileNotFoundError, StoreError):
        return None
    if rec is None:
        return None
    return next((r for r in rec if r is not None and r.bytes == size), None)


def _with_handle(write: Callable[[IO[bytes]], None]) -> Callable[[Path], None]:
    def to_path(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)
    return to_path


def atomic_write_text(path: Path, text: str) -> None:
    """An unrecorded text file (a file people may edit by hand, such as annotations.json)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(text.encode("utf-8")))


def _write_recorded_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data), record=True)


def write_json(path: Path, obj: Any) -> None:
    _write_recorded_bytes(path, (json.dumps(obj, indent=1, ensure_ascii=False, default=_json_default) + "\n")
                          .encode("utf-8"))


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _jsonl_line(record: dict) -> bytes:
    return (json.dumps(record, ensure_ascii=False, default=_json_default) + "\n").encode("utf-8")


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    _write_recorded_bytes(path, b"".join(_jsonl_line(r) for r in records))


def append_jsonl(path: Path, record: dict) -> None:
    """Append one line to an append-only log and extend its check record (module docstring)."""
    path = Path(path)
    line = _jsonl_line(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(path.parent, exclusive=True):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        try:
            rec = _load_record(path) if size else None
        except StoreError:
            rec = None       # an unreadable record: what is on disk is checked below, then recorded afresh
        if size == 0:
            base = Record(0, 0, "crc32")   # a new log (a record left by a deleted one is stale)
        elif rec is not None and rec[0].bytes == size and rec[0].algo == "crc32":
            base = rec[0]                  # the usual case: the file ends where its record does
        else:                              # written otherwise (whole, or outside this protocol): check, then extend
            data = path.read_bytes()
            _parse_jsonl(path, data, rec, drop_torn_tail=False)
            base = Record.of(data, "crc32")
        with open(path, "ab") as f:
            f.write(line)
        _update_record_in_place(path, base.extended(line))


def save_npy(path: Path, a: np.ndarray) -> None:
    atomic_write(path, _with_handle(lambda f: np.save(f, a, allow_pickle=False)), record=True)


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    atomic_write(path, _with_handle(lambda f: np.savez(f, **arrays)), record=True)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    seen: set[int] = set()
    flat = {}
    for k, v in tensors.items():
        v = v.detach().contiguous().cpu()
        if v.data_ptr() in seen:  # safetensors refuses shared storage: copy aliases
            v = v.clone()
        seen.add(v.data_ptr())
        flat[k] = v
    atomic_write(path, lambda tmp: save_file(flat, str(tmp), metadata=metadata), record=True)


def record_file(path: Path) -> None:
    """Write the check record of a file another library wrote in place (``save_pretrained``), so that later
    reads and ``file_status`` can tell it intact from damaged."""
    path = Path(path)
    with open(path, "rb") as f:
        new = _record_of_handle(f)
    with _folder_lock(path.parent, exclusive=True):
        _write_record(path, new, None)


def remove_file(path: Path) -> None:
    """Delete a file and its check record (missing ones are fine)."""
    Path(path).unlink(missing_ok=True)
    check_path(path).unlink(missing_ok=True)


# ---------------------------------------------------------------- reading


def _read_checked(path: Path) -> tuple[bytes, tuple[Record, Record | None] | None]:
    """The bytes of ``path`` and its record, read together under the folder's shared lock."""
    path = Path(path)
    with _folder_lock(path.parent, exclusive=False):
        data = path.read_bytes()     # FileNotFoundError propagates: a missing file is not a damaged one
        return data, _load_record(path)


def _verified(path: Path) -> bytes:
    """The bytes of a whole-file artefact, after checking them against its record (if it has one)."""
    data, rec = _read_checked(path)
    if rec is not None and not _matches(data, rec):
        raise damaged(path, _mismatch(len(data), rec))
    return data


def read_json(path: Path) -> Any:
    path = Path(path)
    data = _verified(path)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise damaged(path, f"it is not valid JSON ({e})") from e


def read_jsonl(path: Path, *, drop_torn_tail: bool = False) -> list[dict]:
    """Every record of a JSON-lines file ([] when there is none). Damage of any kind, a torn last line included,
    raises StoreError; ``drop_torn_tail`` is for resuming a stage only (module docstring)."""
    path = Path(path)
    try:
        data, rec = _read_checked(path)
    except FileNotFoundError:
        return []
    return _parse_jsonl(path, data, rec, drop_torn_tail=drop_torn_tail)


def _parse_jsonl(path: Path, data: bytes, rec, *, drop_torn_tail: bool) -> list[dict]:
    if rec is not None and not _matches(data, rec):
        current, _ = rec
        head = data[: current.bytes]
        if len(data) < current.bytes or _hash(head, current.algo) != current.digest:
            raise damaged(path, _mismatch(len(data), rec))
        # the recorded part is intact; what follows was appended but not recorded (module docstring)
    text = _decode(path, data)
    lines = text.split("\n")
    last = lines.pop()               # "" when the file ends with a line end
    out = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise damaged(path, f"line {i} is not a JSON record ({e})") from e
    if last.strip() and not drop_torn_tail:
        raise damaged(path, f"its last line ({len(lines) + 1}) is incomplete: it has no line end "
                            f"({'it does not parse' if not _parses(last) else 'it may be cut short'})")
    return out


def _parses(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except json.JSONDecodeError:
        return False


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise damaged(path, f"line {line} holds bytes that are not UTF-8 (cut in the middle of a character?)") \
            from None


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, checked against its record first (safetensors has no checksum)."""
    path = Path(path)
    with _folder_lock(path.parent, exclusive=False):   # the file cannot be replaced between check and load
        with open(path, "rb") as f:
            rec = _load_record(path)
            if rec is not None:
                size = os.fstat(f.fileno()).st_size
                if size == 0:
                    ok = any(r is not None and r.bytes == 0 for r in rec)
                else:
                    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:   # no copy of the bytes
                        ok = _matches(m, rec)
                if not ok:
                    raise damaged(path, _mismatch(size, rec))
        try:
            return load_file(str(path))
        except FileNotFoundError:
            raise
        except Exception as e:
            raise damaged(path, f"it is not a readable safetensors file ({e})") from e


def _verify_bytes(path: Path) -> None:
    """``damaged`` unless ``path`` matches its check record (read through mmap: no copy of a large file)."""
    with _folder_lock(path.parent, exclusive=False), open(path, "rb") as f:
        rec = _load_record(path)
        size = os.fstat(f.fileno()).st_size
        if rec is None:
            return
        if size == 0:
            ok = any(r is not None and r.bytes == 0 for r in rec)
        else:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                ok = _matches(m, rec)
        if not ok:
            raise damaged(path, _mismatch(size, rec))


def load_npy(path: Path) -> np.ndarray:
    path = Path(path)
    data = _verified(path)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise damaged(path, f"it is not a readable .npy file ({e})") from e


def load_npz(path: Path) -> dict[str, np.ndarray]:
    path = Path(path)
    data = _verified(path)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # zipfile raises several types for a damaged archive
        raise damaged(path, f"it is not a readable .npz file ({e})") from e


def file_status(path: Path) -> FileStatus:
    """Is this file intact? Never raises for a damaged file: stages ask this to decide what to rebuild.

    "intact": it matches its check record; "unverified": it has none (written before records existed) but reads
    as its format; "damaged": it does not match its record or does not read; "missing"."""
    path = Path(path)
    readers: dict[str, Callable[[Path], Any]] = {".json": read_json, ".jsonl": read_jsonl,
                                                 ".safetensors": load_tensors, ".npy": load_npy, ".npz": load_npz}
    if not path.exists():     # read_jsonl reads a missing log as empty: say "missing" before any reader runs
        return FileStatus(path, "missing", f"{path} does not exist")
    try:
        rec = _load_record(path)
        read = readers.get(path.suffix)
        if rec is not None and path.suffix in (".safetensors", ".npy", ".npz"):
            _verify_bytes(path)       # bytes as written were readable: the hash says it all (no tensor decoded)
        elif read is not None:
            read(path)
        else:
            _verified(path)
    except FileNotFoundError:
        return FileStatus(path, "missing", f"{path} does not exist")
    except StoreError as e:
        return FileStatus(path, "damaged", str(e))
    except OSError as e:
        return FileStatus(path, "damaged", f"{path} cannot be read ({e.strerror})")
    if rec is None:
        return FileStatus(path, "unverified", "it has no check record (written before records existed)")
    return FileStatus(path, "intact")


def is_intact(path: Path) -> bool:
    """True when ``path`` exists and is usable: it matches its check record, or has none and reads."""
    return file_status(path).usable


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

