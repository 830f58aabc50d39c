"""The run lock (explorer/experiment/lock.py): pid reuse, stale files and races."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from explorer.experiment.layout import Experiment
from explorer.experiment.lock import RunLock, RunLockHeld, process_start

REPO = Path(__file__).resolve().parent.parent
HOLD = ("import sys, time; from explorer.experiment.lock import RunLock; RunLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); time.sleep(60)")


@pytest.fixture
def exp(tmp_path) -> Experiment:
    return Experiment(tmp_path / "exp")


def _holder_process(lock_path: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_stale_lock_naming_a_live_process_does_not_block(exp):
    """A run.lock left behind whose pid now belongs to another live process (here: this test process, then a
    sleeping child) names nobody: only a held lock blocks."""
    exp.root.mkdir()
    exp.lock_path.write_text(str(os.getpid()))                # the old format: a bare pid
    assert exp.running_pid() is None
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        exp.lock_path.write_text(f'{{"pid": {sleeper.pid}, "start": {process_start(sleeper.pid)}}}')
        assert exp.running_pid() is None
        with RunLock(exp):                                     # taken without complaint
            assert exp.running_pid() == os.getpid()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert exp.running_pid() is None and exp.lock_path.exists()   # released, and the file stays


def test_a_held_lock_blocks_and_names_its_holder(exp):
    exp.root.mkdir()
    holder = _holder_process(exp.lock_path)
    try:
        assert exp.running_pid() == holder.pid
        with pytest.raises(RunLockHeld, match=rf"already being run by process {holder.pid} since .*kill {holder.pid}"):
            RunLock(exp).acquire()
    finally:
        holder.kill()
        holder.wait()
    assert exp.running_pid() is None                           # a killed holder frees the folder at once
    with RunLock(exp):
        pass


@pytest.mark.slow   # three Python processes importing torch
def test_two_concurrent_claimers_one_wins(exp):
    """Processes that claim the folder at the same instant (released together from a pipe): exactly one wins."""
    exp.root.mkdir()
    script = ("import sys, time; from explorer.experiment.lock import RunLock, RunLockHeld\n"
              "l = RunLock(sys.argv[1]); print('ready', flush=True); sys.stdin.readline()\n"
              "try:\n    l.acquire(); print('won', flush=True); time.sleep(2)\n"
              "except RunLockHeld:\n    print('lost', flush=True)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(exp.lock_path)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert sorted(outs) == ["lost", "lost", "won"], outs


def test_threads_racing_in_one_process(exp):
    exp.root.mkdir()
    barrier = threading.Barrier(6)
    won: list[RunLock] = []

    def claim():
        lock = RunLock(exp)
        barrier.wait()
        try:
            lock.acquire()
            won.append(lock)
        except RunLockHeld:
            pass

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    won[0].release()


def test_the_app_claims_the_lock_for_its_child(exp):
    """start_child: the folder is the child's from its first instant, and it adopts the lock it inherited."""
    exp.root.mkdir()
    child = exp.claim([sys.executable, "-c",
                       ("import os, sys, time; from explorer.experiment.lock import RunLock\n"
                       "l = RunLock(sys.argv[1]); l.acquire()\n"      # adopts, does not refuse itself
                       "print(os.getpid(), flush=True); time.sleep(60)"), str(exp.lock_path)],
                      cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert exp.running_pid() == child.pid                  # before the child has even started Python
        assert int(child.stdout.readline()) == child.pid
        assert exp.running_pid() == child.pid
        with pytest.raises(RunLockHeld):
            RunLock(exp).acquire()
        with pytest.raises(RunLockHeld):                       # a second Run click
            exp.claim([sys.executable, "-c", "pass"])
    finally:
        child.kill()
        child.wait()
    assert exp.running_pid() is None


def test_process_start_tells_processes_apart():
    assert process_start(os.getpid()) is not None
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert process_start(p.pid) is None                        # gone (reaped)
