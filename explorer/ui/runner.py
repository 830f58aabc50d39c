"""Start the default experiment from the app as a separate process, and read how it is doing.

The app never trains: the Run button starts ``python -m explorer run --preset default --out <root>/default
--no-bar`` (``$DDE_RUN_PRESET`` picks another preset, for tests) detached from the server (its own session,
output to ``run.log`` in the experiment folder) and the home page polls ``progress.json``. A refresh, a
second tab or a second app process sees the same run: ``start`` takes the folder's run lock and starts the
child holding it (``Experiment.claim``, ``experiment.lock``), so the lock is the child's from its first instant,
the window in which it is still importing torch included, and a second click finds the folder taken.

No Streamlit here: the page draws what ``status`` returns.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig, preset_config
from ..experiment.estimate import Estimate, done_from_manifest, estimate
from ..experiment.layout import Experiment
from ..experiment.lock import RunLockHeld
from ..files import StoreError, locked
from ..version import REPO_ROOT

ENV_PRESET = "DDE_RUN_PRESET"   # tests set it to "tiny": the same button and flow, in seconds instead of minutes


def preset() -> str:
    return os.environ.get(ENV_PRESET, "").strip() or "default"


@dataclass(frozen=True)
class RunStatus:
    folder: Path
    pid: int | None           # live process running the experiment, or None
    state: str                # "running" | "done" | "failed" | "interrupted" | "stopped" | "starting"
    stage: str
    step: int | None
    total: int | None
    loss: float | None
    eta_s: float | None
    probe_accuracy: float | None
    done_stages: tuple[str, ...]
    message: str
    updated: float | None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.step and self.total else 0.0


def default_folder(root: Path) -> Path:
    """Where the Run button puts its experiment: ``<root>/<preset>``, or ``<root>/<preset>-rerun`` when the former
    is the shipped, packed copy (read-only: ``experiment.pack``), so a reproduction never writes over it."""
    folder = Path(root) / preset()
    return folder.with_name(f"{folder.name}-rerun") if Experiment(folder).pack_path.exists() else folder


def status(folder: Path) -> RunStatus | None:
    """What the run in ``folder`` is doing (None when it was never started)."""
    exp = Experiment(folder)
    pid = exp.running_pid()
    p = exp.progress()
    if p is None:
        if pid is None:
            return None
        return RunStatus(exp.root, pid, "starting", "starting", None, None, None, None, None, (), "", None)
    state = p.get("status", "running")
    if state == "running" and pid is None:
        state = "stopped"      # the process is gone without writing an end state (killed, machine restarted)
    return RunStatus(exp.root, pid, state, str(p.get("stage", "")), p.get("step"), p.get("total"), p.get("loss"),
                     p.get("eta_s"), p.get("probe_accuracy"), tuple(p.get("done_stages", ())),
                     str(p.get("message", "")), p.get("updated"))


def command(folder: Path, preset_name: str | None = None) -> list[str]:
    return [sys.executable, "-m", "explorer", "run", "--preset", preset_name or preset(), "--out", str(folder),
            "--no-bar"]


def start(folder: Path, preset_name: str | None = None) -> tuple[int, bool]:
    """Start the run unless one is already alive; returns (pid, started_now)."""
    exp = Experiment(folder)
    with locked(exp.launch_lock_path):      # one launcher at a time, across threads and processes
        pid = exp.running_pid()
        if pid is not None:
            return pid, False
        exp.root.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}   # offline settings come from explorer/__init__.py
        try:
            with open(exp.run_log_path, "ab") as log:   # the child keeps its own copy of the descriptor
                proc = exp.claim(command(exp.root, preset_name), cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        except RunLockHeld:                  # taken between the look above and the claim
            return exp.running_pid() or -1, False
        exp.write_progress(status="running", stage="starting", step=None, total=None, done_stages=[],
                           started=time.time(), pid=proc.pid)
        # reap the child when it ends so it does not linger as a zombie of the server
        threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
        return proc.pid, True


def time_left(folder: Path, now: float | None = None) -> Estimate:
    """The whole run's time left, measured on this machine from its progress records (``experiment.estimate``)."""
    exp = Experiment(folder)
    try:
        manifest = exp.manifest()
        cfg = RunConfig.from_dict(manifest["config"])
    except (StoreError, FileNotFoundError, KeyError, TypeError):
        return Estimate(None, None, "measuring: the run has not written its settings yet")
    return estimate(exp.progress(), cfg, time.time() if now is None else now,
                    done_from_manifest(manifest.get("stages", {})))


def work(preset_name: str | None = None) -> str:
    """What the Run button's run trains and evaluates, in words (the time it takes is measured, not promised)."""
    cfg = preset_config(preset_name or preset())
    n_arms = len(cfg.all_arms) * len(cfg.seeds)
    return (f"{len(cfg.seeds)} seeds × {len(cfg.all_arms)} arms = {n_arms} trainings of {cfg.steps} steps"
            + (f" after a {cfg.base_steps}-step base" if cfg.base_steps else " from the shipped base")
            + f", then {n_arms + 1} models evaluated and their representations computed")


def log_tail(folder: Path, n: int = 15) -> str:
    try:
        lines = Experiment(folder).run_log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(lines[-n:])


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = round(seconds)
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"
