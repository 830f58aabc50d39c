"""How long a run has left, measured on this machine from its own progress records (no Streamlit here).

The run's stages are known from its config: stage 1 (``base``, when it trains one), every arm model in training
order, the evaluation of the base and of each model, the representations. ``progress.json`` (``Progress``) records
when the current stage started, its step, and the seconds and units of every stage finished. From those:

- **training** costs its measured seconds per optimiser step: over the training stages finished, else over the
  steps of the current one (after ``MIN_STEPS``; before that there is no estimate, only "measuring");
- **evaluation** costs its measured seconds per model once one model is evaluated, **representations** their
  measured seconds per checkpoint once the stage has counted one; until then each is priced from the measured
  training speed by a ratio (``EVAL_STEPS``, ``REPRESENT_STEPS``: what one evaluated model and one checkpoint's
  representations cost in training steps, measured on the ``default`` preset; README "Benchmarks"), so the
  estimate is this machine's speed times the run's work, and each ratio is replaced by a measurement as soon as
  the run gets there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import RunConfig
from .layout import arm_models, training_order

MIN_STEPS = 3                  # training steps of the current stage before its speed is trusted
EVAL_STEPS = 39.0              # one evaluated model (eval_size 40) = 39 training steps (default: 10.2 s / 0.26 s)
REPRESENT_STEPS = 11.0         # one checkpoint's representations (analysis_size 100) = 11 steps (2.84 s / 0.26 s)


@dataclass(frozen=True)
class Estimate:
    seconds_left: float | None     # None: not measured yet (the first steps have not run)
    elapsed: float | None
    basis: str                     # what the figure rests on, in words

    @property
    def total(self) -> float | None:
        return None if self.seconds_left is None or self.elapsed is None else self.elapsed + self.seconds_left


def stages(cfg: RunConfig) -> list[tuple[str, str, float]]:
    """(progress name, kind, units) of every stage of a run: kind "base" (stage 1) or "train" (an arm; units:
    steps), "eval" (models), "represent" (checkpoints)."""
    out = [("base", "base", float(cfg.base_steps))] if cfg.base_steps and not cfg.model else []
    out += [(m, "train", float(cfg.steps)) for m in training_order(cfg)]
    out += [(f"eval {m}", "eval", 1.0) for m in ("base", *arm_models(cfg))]
    per_arm = math.ceil(cfg.steps / cfg.ckpt_every)
    out.append(("represent", "represent", float(1 + per_arm * len(arm_models(cfg)))))
    return out


def done_from_manifest(stages_record: dict) -> set[str]:
    """The progress names of the stages a manifest marks done (``arm:X`` -> X, ``eval:X`` -> "eval X")."""
    out = set()
    for key, info in (stages_record or {}).items():
        if not (isinstance(info, dict) and info.get("done")):
            continue
        kind, _, name = key.partition(":")
        out.add(name if kind == "arm" else f"eval {name}" if kind == "eval" else key)
    return out


def _prior(kind: str, cfg: RunConfig) -> float:
    """Units of a stage kind in training steps, before it is measured."""
    if kind == "eval":
        return EVAL_STEPS * (cfg.eval_size or 100) / 40
    if kind == "represent":
        return REPRESENT_STEPS * (cfg.analysis_size or 100) / 100
    return 1.0


def estimate(progress: dict | None, cfg: RunConfig, now: float, done: set[str] = frozenset()) -> Estimate:
    """Time left for the run that wrote ``progress`` (``progress.json``), at time ``now``; ``done`` adds the stages
    a manifest marks done (a resumed run skips them without reporting them)."""
    if not progress:
        return Estimate(None, None, "not started")
    started = progress.get("started")
    elapsed = now - started if started else None
    seconds = dict(progress.get("stage_seconds") or {})
    units = dict(progress.get("stage_units") or {})
    plan = stages(cfg)
    kinds = {name: kind for name, kind, _ in plan}
    finished = set(progress.get("done_stages") or ()) | set(done)
    current = progress.get("stage")
    if current in finished or progress.get("status") == "done":
        current = None
    step, total, first = progress.get("step"), progress.get("total"), progress.get("stage_from")
    t_stage = now - progress["stage_started"] if progress.get("stage_started") else None
    ran = (step - first) if step is not None and first is not None else 0

    rate: dict[str, float] = {}        # seconds per unit of each kind, measured (a stage's loading included)
    for kind in ("base", "train", "eval", "represent"):
        s = sum(seconds[n] for n in seconds if kinds.get(n) == kind)
        u = sum(units.get(n) or 0 for n in seconds if kinds.get(n) == kind)
        if s > 0 and u > 0:
            rate[kind] = s / (u if kind != "eval" else sum(1 for n in seconds if kinds.get(n) == "eval"))
    cur_kind = kinds.get(current)
    if cur_kind in ("base", "train") and cur_kind not in rate and ran >= MIN_STEPS and t_stage:
        rate[cur_kind] = t_stage / ran
    if "train" not in rate and "base" in rate:
        rate["train"] = rate["base"]   # stage 2 priced by stage 1's speed until an arm has run its first steps
    if cur_kind == "represent" and "represent" not in rate and ran >= 1 and t_stage:
        rate["represent"] = t_stage / ran
    if "train" not in rate:
        if any(k in rate for k in ("eval", "represent")) or progress.get("status") == "done":
            rate["train"] = 0.0        # training is over: nothing left to price with it
        else:
            return Estimate(None, elapsed, "measuring: the first training steps give the speed")
    basis = [f"{rate['train']:.2f} s per training step"] if rate["train"] else []
    rate.setdefault("base", rate["train"])

    def cost(kind: str, n: float) -> float:
        if kind in rate:
            return rate[kind] * n
        return rate["train"] * _prior(kind, cfg) * n

    left = 0.0
    if current in kinds:
        n_units = next(u for name, _, u in plan if name == current)
        if cur_kind == "eval" and total and step is not None and ran > 0 and t_stage:
            left += t_stage / ran * (total - step)
        elif cur_kind in ("base", "train", "represent") and ran >= (1 if cur_kind == "represent" else MIN_STEPS) \
                and t_stage:
            left += t_stage / ran * max(0, (total or n_units) - step)
        else:
            left += max(0.0, cost(cur_kind, n_units) - (t_stage or 0.0))
    for name, kind, n in plan:
        if name != current and name not in finished:
            left += cost(kind, n)
    for kind, word in (("eval", "per evaluated model"), ("represent", "per checkpoint's representations")):
        if kind in rate:
            basis.append(f"{rate[kind]:.1f} s {word}")
    if "eval" not in rate or "represent" not in rate:
        basis.append("the stages not reached yet priced from the training speed")
    return Estimate(left, elapsed, "measured on this machine: " + "; ".join(basis))
