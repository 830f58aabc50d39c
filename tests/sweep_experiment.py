"""A λ sweep made from a finished tiny experiment, as ``run --sweep 0.1`` lays it out, without training again: the
decoupled arm is copied as a second decoupled arm at λ = 0.1 (checkpoints, scores), and deltas.json gets its rows
with the Δ raised by 1.0 so the two arms can be told apart. Written with the real writers (check records)."""

from __future__ import annotations

import shutil
from pathlib import Path

from explorer.files import read_json, write_json

ARM = "decoupled-lam0.1"


def make_sweep(tiny: Path, out: Path) -> Path:
    shutil.copytree(tiny, out)
    shutil.copytree(out / "arms" / "decoupled", out / "arms" / ARM)
    man = read_json(out / "manifest.json")
    man["config"]["sweep"] = [0.1]
    for seed in man["config"]["seeds"]:
        shutil.copytree(out / "eval" / f"decoupled.s{seed}", out / "eval" / f"{ARM}.s{seed}")
        for stage in ("arm", "eval"):
            man["stages"][f"{stage}:{ARM}.s{seed}"] = man["stages"][f"{stage}:decoupled.s{seed}"]
    write_json(out / "manifest.json", man)
    deltas = read_json(out / "eval" / "deltas.json")

    def raised(x: dict) -> dict:
        return {**x, "delta": x["delta"] + 1.0, "low": x["low"] + 1.0, "high": x["high"] + 1.0}
    deltas["systems"][ARM] = {d: raised(x) for d, x in deltas["systems"]["decoupled"].items()}
    deltas["aggregate"][ARM] = {k: raised(x) for k, x in deltas["aggregate"]["decoupled"].items()}
    write_json(out / "eval" / "deltas.json", deltas)
    return out
