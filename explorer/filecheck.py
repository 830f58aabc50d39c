"""Check records: the size and hash of every file ``files.py`` writes, kept in a hidden sidecar ``.<name>.check``
beside it, and the primitives both writing and reading use (a durable replace, the folder's ``flock``, matching a
file's bytes against its record). ``files.py`` explains how they are used; only it should call the private helpers.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xxhash

CHECK_FORMAT = "dde-check/1"


class StoreError(ValueError):
    """A stored file or folder that cannot be used as it is; the message names it and says what to do."""


def damaged(path: Path, why: str) -> StoreError:
    """The one wording of "this file is damaged": what is wrong, and what to do."""
    return StoreError(f"{path} is damaged: {why}. It cannot be used as it is: rerun the command that wrote it to "
                      "rebuild it (for an experiment, the same `python -m explorer run ...`: it checks what every "
                      "finished stage left and redoes the stages whose files are damaged or missing).")


@dataclass(frozen=True)
class Record:
    """Size and hash of a file's bytes: XXH3-64 for files written whole; CRC-32 for append-only logs, whose
    hash must be extended line by line (``zlib.crc32(line, previous)``; logs are small, so its speed is moot)."""

    bytes: int
    digest: int
    algo: str = "xxh3"

    @classmethod
    def of(cls, data, algo: str = "xxh3") -> Record:
        return cls(len(data), _hash(data, algo), algo)

    def extended(self, data: bytes) -> Record:
        """The record of this file with ``data`` appended (CRC-32 records only)."""
        assert self.algo == "crc32", "only a CRC-32 record can be extended"
        return Record(self.bytes + len(data), zlib.crc32(data, self.digest) & 0xFFFFFFFF, "crc32")

    def to_json(self) -> dict:
        return {"bytes": self.bytes, self.algo: f"{self.digest:0{16 if self.algo == 'xxh3' else 8}x}"}

    @classmethod
    def from_json(cls, d: Any) -> Record:
        algo = next((a for a in ("xxh3", "crc32") if isinstance(d, dict) and isinstance(d.get(a), str)), None)
        if algo is None or not isinstance(d.get("bytes"), int):
            raise TypeError("not a record")
        return cls(d["bytes"], int(d[algo], 16), algo)


def _hash(data, algo: str) -> int:
    return xxhash.xxh3_64_intdigest(data) if algo == "xxh3" else zlib.crc32(data) & 0xFFFFFFFF


@dataclass(frozen=True)
class FileStatus:
    """What ``file_status`` found: ``state`` is "intact" (matches its record), "unverified" (no record, but it
    reads), "damaged" or "missing"; ``detail`` says why."""

    path: Path
    state: str
    detail: str = ""

    @property
    def usable(self) -> bool:
        return self.state in ("intact", "unverified")


def check_path(path: Path) -> Path:
    """The hidden sidecar holding ``path``'s check record."""
    path = Path(path)
    return path.with_name(f".{path.name}.check")


def _load_record(path: Path) -> tuple[Record, Record | None] | None:
    """(current, previous) from the sidecar of ``path``; None when there is no usable record (no sidecar, or one
    written by a newer format). A sidecar that is itself unreadable is damage, reported as such."""
    side = check_path(path)
    try:
        raw = side.read_bytes()
    except FileNotFoundError:
        return None
    try:
        d = json.loads(raw)
        if d.get("format") != CHECK_FORMAT:
            return None
        prev = d.get("previous")
        return Record.from_json(d), (Record.from_json(prev) if prev else None)
    except (ValueError, TypeError, AttributeError) as e:
        raise StoreError(f"the check record {side} of {path.name} is unreadable ({e}). Delete the record to read "
                         f"{path.name} unverified, or delete both and rerun to rebuild them.") from None


def _record_bytes(current: Record, previous: Record | None) -> bytes:
    body = {"format": CHECK_FORMAT, **current.to_json(), "previous": previous.to_json() if previous else None}
    return (json.dumps(body) + "\n").encode()


def _write_record(path: Path, current: Record, previous: Record | None) -> None:
    _replace(check_path(path), _record_bytes(current, previous), durable=True)


def _update_record_in_place(path: Path, current: Record) -> None:
    """The record of an append-only log, rewritten in place by one small write (a temporary file and a rename
    cost a millisecond on every line); only ever under the folder's exclusive lock, so no reader sees it half
    written."""
    data = _record_bytes(current, None)
    fd = os.open(check_path(path), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _replace(path: Path, data: bytes, *, durable: bool) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _folder_lock(folder: Path, *, exclusive: bool) -> Iterator[None]:
    """The kernel's ``flock`` on a folder: exclusive while a file and its record are replaced, shared while they
    are read. Released when the block ends (or the process dies)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError as e:   # a file system without flock (some network mounts): go on unlocked
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
                raise
        yield
    finally:
        os.close(fd)   # closing releases the lock


def _matches(data, rec: tuple[Record, Record | None] | None) -> bool:
    current, previous = rec
    for r in (current, previous):
        if r is not None and len(data) == r.bytes and _hash(data, r.algo) == r.digest:
            return True
    return False


def _mismatch(size: int, rec: tuple[Record, Record | None]) -> str:
    current, _ = rec
    if size != current.bytes:
        how = "truncated" if size < current.bytes else "longer than written"
        return f"it has {size} bytes where {current.bytes} were written ({how})"
    return "its bytes changed since it was written (checksum mismatch)"
