"""Live progress of a run: ``progress.json`` for the app (throttled) and a tqdm bar for people.

Besides the current stage and step it records when the stage started (``stage_started``), the step it started
from (``stage_from``: a resumed stage does not start at 0) and, for every stage finished, its seconds and units
(``stage_seconds``, ``stage_units``): what ``experiment.estimate`` turns into the time left."""

from __future__ import annotations

import sys
import time

from .layout import Experiment


class Progress:
    """Writes ``progress.json`` (throttled) for the app and draws a tqdm bar on stderr for people."""

    def __init__(self, exp: Experiment, *, bar: bool = True):
        self.exp = exp
        self.bar_enabled = bar and sys.stderr.isatty() or bar == "force"
        self.bar = None
        self.state: dict = {"status": "running", "started": time.time(), "stage": "prepare", "done_stages": [],
                            "stage_started": time.time(), "stage_from": 0, "stage_seconds": {}, "stage_units": {}}
        self._last = 0.0

    def stage(self, name: str, total: int | None = None, **extra) -> None:
        self._close_bar()
        self.state.update({"stage": name, "step": 0, "total": total, "loss": None, "eta_s": None,
                           "stage_started": time.time(), "stage_from": None, **extra})
        if self.bar_enabled and total:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=name, unit="step", leave=True, dynamic_ncols=True)
        self.flush(force=True)

    def finish_stage(self, name: str) -> None:
        self._close_bar()
        self.state["done_stages"] = [*self.state["done_stages"], name]
        if self.state.get("stage") == name:
            first, step = self.state.get("stage_from"), self.state.get("step")
            self.state["stage_seconds"] = {**self.state["stage_seconds"],
                                           name: round(time.time() - self.state["stage_started"], 3)}
            self.state["stage_units"] = {**self.state["stage_units"],
                                         name: (step - first) if first is not None and step is not None else 0}
        self.flush(force=True)

    def __call__(self, ev: dict) -> None:
        if ev.get("event") == "refit":
            sites = ev["refit"]["sites"]
            accs = [s["probe"]["accuracy"] for s in sites.values() if s.get("probe")]
            if accs:
                self.state["probe_accuracy"] = accs[0]
            self.state["refits"] = ev["refit"]["index"] + 1
        elif ev.get("event") == "step":
            prev = self.state.get("step") or 0
            if self.state.get("stage_from") is None:
                self.state["stage_from"] = ev["step"] - 1      # a resumed stage starts after its resume step
            self.state.update({k: ev.get(k) for k in ("step", "total", "loss", "penalty", "eta_s",
                                                       "tokens_per_s", "probe_accuracy")})
            if self.bar is not None:
                self.bar.update(ev["step"] - prev if ev["step"] >= prev else ev["step"])
                self.bar.set_postfix(loss=f"{ev['loss']:.3f}")
        elif ev.get("event") == "count":
            if self.state.get("stage_from") is None:
                self.state["stage_from"] = self.state.get("step") or 0
            self.state["step"] = (self.state.get("step") or 0) + ev["n"]
            if self.bar is not None:
                self.bar.update(ev["n"])
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last > 0.5:
            self._last = now
            self.exp.write_progress(**self.state)

    def end(self, status: str, message: str = "") -> None:
        self._close_bar()
        self.state.update({"status": status, "message": message, "finished": time.time()})
        self.flush(force=True)

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class NullProgress:
    """What ranks other than 0 report to: nothing (rank 0 writes progress.json)."""

    def stage(self, *a, **k) -> None: ...
    def finish_stage(self, *a, **k) -> None: ...
    def __call__(self, *a, **k) -> None: ...
    def end(self, *a, **k) -> None: ...
