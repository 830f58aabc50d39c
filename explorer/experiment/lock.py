"""The run lock: one run per experiment folder, immune to pid reuse and to two runs starting at once.

The lock is the kernel's ``flock`` on ``run.lock``, held for as long as the running process lives (it is released
when that process exits or dies, whatever kills it), so a lock can never go stale: a left-over ``run.lock``
whose pid now belongs to some other process blocks nothing. Taking it is one atomic ``flock(LOCK_EX|LOCK_NB)``,
so of two processes claiming a folder at the same moment exactly one wins.

The file's content only says *who* holds it: pid, the process's start time (``/proc/<pid>/stat``, so a reused
pid is recognised as another process) and when it was taken. It is rewritten in place, never replaced (a
replaced file would carry no lock), and the file is never deleted (deleting a lock file lets two processes lock
two different files).

The app's Run button claims the lock *for* the child it starts (``RunLock.start_child``): it takes the lock, starts
the child with the locked descriptor inherited, and lets go of its own copy. The lock then lives exactly as long
as the child; the child adopts it when its own ``RunLock`` is entered (``DDE_RUN_LOCK_FD``), so there is no window
in which the folder looks free while the child is still importing torch.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from ..files import StoreError

ENV_FD = "DDE_RUN_LOCK_FD"       # "<fd>:<lock path>" handed to a child started by start_child
_RECORD_BYTES = 160              # the holder record, padded: one small in-place write replaces it whole
_BUSY_RETRY_S = 0.5              # how long a claim or a look retries a lock that is held only for an instant


class RunLockHeld(StoreError):
    """Another live process runs this folder."""


@dataclass(frozen=True)
class Holder:
    """Who holds a run lock: pid, its process start time (clock ticks since boot, from /proc) and the time the
    lock was taken. ``pid`` is None when the lock is held but the holder has not written its record yet."""

    pid: int | None
    start: int | None = None
    since: float | None = None

    def describe(self) -> str:
        if self.pid is None:
            return "a process that is just starting"
        when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(self.since)) if self.since else ""
        return f"process {self.pid}{when}"


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (field 22 of /proc/<pid>/stat), or None if there is no such process.

    (pid, start time) names one process for the life of the machine: a pid reused later has another start."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()   # the command name may hold spaces and parentheses
    if not fields or fields[0] == "Z":             # a zombie has finished
        return None
    return int(fields[19])


def _alive(h: Holder) -> bool:
    return h.pid is not None and process_start(h.pid) is not None and (h.start is None
                                                                       or process_start(h.pid) == h.start)


class RunLock:
    """``with RunLock(exp):`` holds the folder's run lock for the block; ``RunLockHeld`` if another process does.

    ``exp`` is an ``Experiment`` (anything with ``lock_path`` and ``root``) or the lock file's path."""

    def __init__(self, exp):
        if isinstance(exp, (str, os.PathLike)):
            self.path = Path(exp)
            self.root = self.path.parent
        else:
            self.path, self.root = Path(exp.lock_path), Path(exp.root)
        self._fd: int | None = None

    # ------------------------------------------------------------ who holds it
    def holder(self) -> Holder | None:
        """The live holder, or None when the folder is free (whatever pid the file names)."""
        if self._fd is not None:
            return _read_record(self._fd) or Holder(os.getpid())
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            deadline = time.monotonic() + _BUSY_RETRY_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass                       # held: by whom?
                else:
                    return None                # nobody holds it (a stale file is just a file)
                h = _read_record(fd)
                if h is not None and _alive(h):
                    return h
                if time.monotonic() > deadline:  # held, but its record names no live process yet
                    return h if h is not None and h.pid is not None and process_start(h.pid) else Holder(None)
                time.sleep(0.02)
        finally:
            os.close(fd)

    def running_pid(self) -> int | None:
        h = self.holder()
        return None if h is None else h.pid

    # ------------------------------------------------------------ taking it
    def acquire(self) -> None:
        """Take the lock for this process (or adopt the one a parent took for it); RunLockHeld if it is taken."""
        if self._fd is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd = self._inherited()
        if fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                os.close(fd)
                h = self.holder() or Holder(None)
                raise RunLockHeld(f"{self.root} is already being run by {h.describe()}; wait for it to finish "
                                  f"or stop it first" + (f" (kill {h.pid})" if h.pid else "") + ".")
        self._fd = fd
        _write_record(fd, Holder(os.getpid(), process_start(os.getpid()), time.time()))

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)          # nobody: the file stays (see the module docstring)
        finally:
            os.close(self._fd)                 # closing our last copy releases the kernel lock
            self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc) -> bool:
        self.release()
        return False

    def _inherited(self) -> int | None:
        """The descriptor a parent locked for this process (``start_child``), if it is this folder's lock."""
        value = os.environ.get(ENV_FD, "")
        fd_text, _, path = value.partition(":")
        if not fd_text.isdigit() or Path(path) != self.path.resolve():
            return None
        fd = int(fd_text)
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(self.path))
        except OSError:
            return None
        if not same:
            return None
        os.environ.pop(ENV_FD, None)       # adopted once; grandchildren must take their own
        os.set_inheritable(fd, False)      # and must not keep it alive after this process ends
        return fd

    # ------------------------------------------------------------ for a child
    def start_child(self, cmd: list[str], **popen) -> subprocess.Popen:
        """Take the lock, start ``cmd`` holding it (inherited descriptor), record the child as the holder and let
        go of this process's copy: the lock is then the child's, released when the child ends.

        RunLockHeld (and nothing started) if another process holds the folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                h = self.holder() or Holder(None)
                raise RunLockHeld(f"{self.root} is already being run by {h.describe()}.")
            env = {**popen.pop("env", os.environ), ENV_FD: f"{fd}:{self.path.resolve()}"}
            proc = subprocess.Popen(cmd, pass_fds=(fd,), env=env, **popen)
            _write_record(fd, Holder(proc.pid, process_start(proc.pid), time.time()))
            return proc
        finally:
            os.close(fd)   # the child's inherited copy keeps the lock


def _try_lock(fd: int) -> bool:
    """flock(LOCK_EX|LOCK_NB), retried briefly: a look by ``holder`` holds a shared lock for an instant."""
    deadline = time.monotonic() + _BUSY_RETRY_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _write_record(fd: int, h: Holder) -> None:
    body = json.dumps({"pid": h.pid, "start": h.start, "since": h.since})
    os.pwrite(fd, body.ljust(_RECORD_BYTES - 1).encode("ascii") + b"\n", 0)
    os.ftruncate(fd, _RECORD_BYTES)


def _read_record(fd: int) -> Holder | None:
    """The holder a lock file names: a JSON record, or a bare pid (files written by older code); None if empty."""
    try:
        text = os.pread(fd, 4096, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    if not text:
        return None
    if text.isdigit():
        return Holder(int(text))
    try:
        d = json.loads(text)
        return Holder(int(d["pid"]), d.get("start"), d.get("since"))
    except (ValueError, KeyError, TypeError):
        return None
