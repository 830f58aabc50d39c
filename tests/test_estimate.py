"""The run-time estimate (``experiment.estimate``) on invented progress records: it is this machine's measured speed
times the run's remaining work, replaced stage kind by stage kind by what the run has measured."""

from __future__ import annotations

import pytest

from explorer.config import preset_config
from explorer.experiment.estimate import EVAL_STEPS, MIN_STEPS, REPRESENT_STEPS, done_from_manifest, estimate, stages
from explorer.experiment.progress import Progress

CFG = preset_config("default", ckpt_every=50)   # 3 seeds x 3 arms x 200 steps from the shipped base, ckpt every 50
T0 = 1_000_000.0


def record(stage: str, step: int, total: int, *, at: float, stage_started: float, stage_from: int = 0,
           done=(), seconds=None, units=None, status="running") -> dict:
    return {"status": status, "started": T0, "stage": stage, "step": step, "total": total,
            "stage_started": stage_started, "stage_from": stage_from, "done_stages": list(done),
            "stage_seconds": seconds or {}, "stage_units": units or {}, "updated": at}


def test_the_plan_is_the_runs_work():
    plan = stages(CFG)
    assert [n for n, k, _ in plan if k == "train"][:3] == ["baseline.s0", "decoupled.s0", "random.s0"]
    assert sum(u for _, k, u in plan if k == "train") == 9 * 200
    assert sum(1 for _, k, _ in plan if k == "eval") == 10
    assert plan[-1] == ("represent", "represent", 1 + 9 * (CFG.steps // CFG.ckpt_every))   # base + every checkpoint
    assert not any(k == "base" for _, k, _ in plan)                       # default starts from the shipped base
    assert stages(preset_config("tiny"))[0] == ("base", "base", 250.0)


def test_no_estimate_before_the_first_steps():
    p = record("baseline.s0", MIN_STEPS - 1, 200, at=T0 + 30, stage_started=T0 + 20)
    e = estimate(p, CFG, T0 + 30)
    assert e.seconds_left is None and "measuring" in e.basis
    assert estimate(None, CFG, T0).seconds_left is None


def test_first_steps_price_the_whole_run():
    # 10 steps of the first arm in 5 s: 0.5 s per step; everything else priced from it
    p = record("baseline.s0", 10, 200, at=T0 + 25, stage_started=T0 + 20)
    e = estimate(p, CFG, T0 + 25)
    rate = 0.5
    want = rate * 190 + rate * 200 * 8 + rate * EVAL_STEPS * 10 + rate * REPRESENT_STEPS * 37
    assert e.seconds_left == pytest.approx(want)
    assert "0.50 s per training step" in e.basis and "priced from the training speed" in e.basis
    assert e.elapsed == pytest.approx(25) and e.total == pytest.approx(25 + want)
    # the same record on a machine twice as slow: twice the time left
    slow = record("baseline.s0", 10, 200, at=T0 + 30, stage_started=T0 + 20)
    assert estimate(slow, CFG, T0 + 30).seconds_left == pytest.approx(2 * want)


def test_measured_stages_replace_the_priors():
    done = ["prepare", *[f"{a}.s{s}" for s in (0, 1, 2) for a in ("baseline", "decoupled", "random")], "eval base"]
    seconds = {n: 60.0 for n in done[1:-1]} | {"eval base": 4.0}
    units = {n: 200 for n in done[1:-1]} | {"eval base": 720}
    p = record("eval baseline.s0", 360, 720, at=T0 + 600, stage_started=T0 + 598, done=done, seconds=seconds,
               units=units)
    e = estimate(p, CFG, T0 + 600)
    # the current model: 2 s for half of it -> 2 s more; 8 models at the measured 4 s; representations priced
    # from the measured 0.3 s per training step
    assert e.seconds_left == pytest.approx(2 + 8 * 4 + 0.3 * REPRESENT_STEPS * 37)
    assert "4.0 s per evaluated model" in e.basis and "0.30 s per training step" in e.basis
    # once representations are being counted, their own speed replaces the prior
    done2 = [*done, *[f"eval {m}" for m in ("baseline.s0", "baseline.s1", "baseline.s2", "decoupled.s0",
                                            "decoupled.s1", "decoupled.s2", "random.s0", "random.s1", "random.s2")]]
    p2 = record("represent", 10, 37, at=T0 + 700, stage_started=T0 + 680, done=done2, seconds=seconds, units=units)
    e2 = estimate(p2, CFG, T0 + 700)
    assert e2.seconds_left == pytest.approx(20 / 10 * 27)
    done3 = record("represent", 37, 37, at=T0 + 760, stage_started=T0 + 680, done=[*done2, "represent"],
                   status="done")
    assert estimate(done3, CFG, T0 + 760).seconds_left == 0


def test_a_resumed_run_counts_what_its_manifest_marks_done():
    # a run resumed in decoupled.s2 at step 120: its progress knows nothing of the 7 arms before it
    manifest = {f"arm:{a}.s{s}": {"done": True} for s in (0, 1) for a in ("baseline", "decoupled", "random")}
    manifest |= {"arm:baseline.s2": {"done": True}, "prepare": {"done": True}, "arm:decoupled.s2": {"done": False}}
    assert "decoupled.s2" not in done_from_manifest(manifest) and "baseline.s1" in done_from_manifest(manifest)
    p = record("decoupled.s2", 130, 200, at=T0 + 10, stage_started=T0, stage_from=120)
    e = estimate(p, CFG, T0 + 10, done_from_manifest(manifest))
    rate = 1.0                                    # 10 steps since the resume in 10 s (not 130 steps)
    want = rate * 70 + rate * 200 + rate * EVAL_STEPS * 10 + rate * REPRESENT_STEPS * 37
    assert e.seconds_left == pytest.approx(want)


def test_progress_records_stage_times(tmp_path):
    """What the estimate reads is what ``Progress`` writes: per finished stage its seconds and units, and the step a
    resumed stage started from."""
    from explorer.experiment.layout import Experiment

    exp = Experiment(tmp_path / "x")
    exp.root.mkdir()
    prog = Progress(exp, bar=False)
    prog.stage("baseline.s0", total=200)
    for step in (121, 122, 123):                  # resumed after step 120
        prog({"event": "step", "step": step, "total": 200, "loss": 1.0})
    prog.flush(force=True)                        # writes are throttled to one per 0.5 s
    p = exp.progress()
    assert p["stage_from"] == 120 and p["step"] == 123 and p["stage_started"] <= p["updated"]
    prog.finish_stage("baseline.s0")
    prog.stage("eval base", total=40)
    prog({"event": "count", "n": 16})
    prog.finish_stage("eval base")
    p = exp.progress()
    assert p["stage_units"] == {"baseline.s0": 3, "eval base": 16}
    assert set(p["stage_seconds"]) == {"baseline.s0", "eval base"} and all(v >= 0 for v in p["stage_seconds"].values())
