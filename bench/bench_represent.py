"""Benchmarks of issue 3 (representation and geometry caches) on one experiment folder.

    python bench/bench_represent.py                 # cache/default if it exists, else a tiny run in bench/out/
    python bench/bench_represent.py --exp cache/default --repeats 50

Measures, against the issue's targets:
- loading one (model, checkpoint, site) matrix from a warm disk cache (median; target < 50 ms);
- loading a cached UMAP (median; target < 50 ms);
- a fresh UMAP of about 2,000 points after a first fit in the process (target < 5 s);
- the representation stage's wall time for the whole experiment (rebuilt from scratch in a scratch copy that
  links to the experiment's checkpoints) against the run's training and total wall time (target: adds <= 20%);
- the experiment folder's size on disk (target < 500 MB for `default`).
Prints a markdown table and writes bench/out/represent.json. The experiment folder itself is only read (the
UMAP cache it gains is the one the app would write).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "out"


def folder_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def median_ms(fn, repeats: int) -> float:
    fn()  # warm: page cache, imports, manifest memo
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def pick_experiment(arg: str | None) -> Path:
    from explorer.experiment.layout import CACHE_ROOT

    if arg:
        return Path(arg)
    default = CACHE_ROOT / "default"
    if (default / "manifest.json").exists():
        return default
    tiny = OUT / "tiny"
    if not (tiny / "manifest.json").exists() or not _complete(tiny):
        from explorer.config import preset_config
        from explorer.experiment.run import run_experiment

        print(f"no cache/default: building the tiny preset into {tiny}", file=sys.stderr)
        run_experiment(preset_config("tiny"), tiny, bar=False)
    return tiny


def _complete(root: Path) -> bool:
    from explorer.experiment.view import load_experiment
    return load_experiment(root).complete


def umap_points(view, site: str, n: int = 2000) -> tuple[np.ndarray, str]:
    """About n real pooled vectors at one site (stacking checkpoints), or clustered synthetic ones if too few."""
    mats, have = [], 0
    for model in view.models:
        for step in view.checkpoints(model):
            mats.append(view.representations(model, step, site))
            have += len(mats[-1])
            if have >= n:
                return np.concatenate(mats)[:n], f"real: {site}, stacked checkpoints"
    rng = np.random.default_rng(0)
    d = 256
    centres = rng.normal(size=(9, d)) * 2
    x = centres[rng.integers(0, 9, size=n)] + rng.normal(size=(n, d))
    return x, f"synthetic: 9 Gaussian clusters, d={d} (the experiment has only {have} points)"


def base_step_seconds(root: Path) -> float | None:
    """Median wall time of one base-stage optimiser step, from base/log.jsonl (the first step, warm-up, left out)."""
    from explorer.files import read_jsonl

    elapsed = [r["elapsed"] for r in read_jsonl(root / "base" / "log.jsonl")]
    if len(elapsed) < 3:
        return None
    return float(np.median(np.diff(elapsed[1:])))


def rebuild_seconds(root: Path) -> tuple[float, float]:
    """(stage_represent wall time, load_run_data time) for a from-scratch build in a scratch copy of the folder."""
    from explorer.data.rundata import load_run_data
    from explorer.experiment.layout import Experiment
    from explorer.experiment.progress import Progress
    from explorer.experiment.represent import stage_represent

    shadow = OUT / "represent-scratch" / root.name
    shutil.rmtree(shadow.parent, ignore_errors=True)
    shadow.mkdir(parents=True)
    try:
        for item in root.iterdir():
            if item.name in ("represent", "manifest.json", "progress.json", "run.lock"):
                continue
            (shadow / item.name).symlink_to(item.resolve())
        shutil.copy2(root / "manifest.json", shadow / "manifest.json")
        exp = Experiment(shadow)
        cfg = exp.config()
        t = time.perf_counter()
        data = load_run_data(cfg)
        t_data = time.perf_counter() - t
        t = time.perf_counter()
        stage_represent(exp, cfg, data, Progress(exp, bar=False), force_check=True)
        return time.perf_counter() - t, t_data
    finally:
        shutil.rmtree(shadow.parent, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", help="experiment folder (default: cache/default, else a tiny run in bench/out)")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--skip-rebuild", action="store_true", help="do not time a from-scratch stage_represent")
    args = ap.parse_args(argv)

    from explorer.analysis.geometry import UmapParams, umap_2d
    from explorer.experiment.view import load_experiment

    root = pick_experiment(args.exp).resolve()
    view = load_experiment(root)
    if not (root / "represent" / "manifest.json").exists():
        raise SystemExit(f"{root} has no representation cache: run `python -m explorer represent {root}` first")
    model = "decoupled" if "decoupled" in view.arms else view.models[-1]
    step = view.checkpoints(model)[-1]
    site = (view.penalised_sites or view.sites)[0]
    n_rows, d = view.representations(model, step, site).shape
    res: dict = {"experiment": str(root), "preset": view.config.preset, "n_rows": n_rows, "d": d,
                 "sites": len(view.sites), "files": sum(len(view.checkpoints(m)) for m in view.models),
                 "slice": f"{model} step {step} {site}", "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}

    res["matrix_load_ms"] = median_ms(lambda: view.representations(model, step, site), args.repeats)
    res["matrix_load_fresh_view_ms"] = median_ms(
        lambda: load_experiment(root).representations(model, step, site), args.repeats)

    t = time.perf_counter()
    view.umap(model, step, site)  # computed now unless the app already cached it
    res["umap_first_call_s"] = time.perf_counter() - t
    res["umap_cached_ms"] = median_ms(lambda: view.umap(model, step, site), args.repeats)

    x, what = umap_points(view, site)
    umap_2d(x[:300], UmapParams())  # the process's first fit (numba compilation) is not what is measured
    t = time.perf_counter()
    umap_2d(x, UmapParams())
    res["umap_fresh_s"] = time.perf_counter() - t
    res["umap_fresh_points"] = f"{len(x)}x{x.shape[1]} ({what})"

    stages = view.manifest.get("stages", {})
    train_s = stages.get("base", {}).get("wall_s", 0.0) + sum(
        stages.get(f"arm:{a}", {}).get("wall_s", 0.0) for a in view.config.arms)
    eval_s = sum(stages.get(f"eval:{m}", {}).get("seconds", 0.0) for m in ("base", *view.config.arms))
    res["training_s"] = train_s
    res["run_s"] = train_s + eval_s
    res["represent_recorded_s"] = stages.get("represent", {}).get("seconds")
    if not args.skip_rebuild:
        rep_s, data_s = rebuild_seconds(root)
        res["represent_rebuild_s"] = rep_s
        res["load_run_data_s"] = data_s
        res["represent_share_of_training"] = rep_s / train_s if train_s else None
        res["represent_share_of_run"] = rep_s / (train_s + eval_s) if train_s else None

        # load-independent view: the stage in units of one base training step (median of the log's step times),
        # projected onto the default preset's step count (training only: eval and refits would lower the share)
        step_s = base_step_seconds(root)
        if step_s:
            from explorer.config import preset_config
            dflt = preset_config("default")
            default_steps = dflt.base_steps + len(dflt.arms) * dflt.steps
            res["base_step_s"] = step_s
            res["represent_in_base_steps"] = rep_s / step_s
            res["projected_share_of_default_training"] = rep_s / (step_s * default_steps)

    res["folder_mb"] = folder_bytes(root) / 1e6
    res["represent_mb"] = folder_bytes(root / "represent") / 1e6

    rows = [
        ("load one matrix, warm (median)", f"{res['matrix_load_ms']:.2f} ms", "< 50 ms"),
        ("  same, new ExperimentView each time", f"{res['matrix_load_fresh_view_ms']:.2f} ms", ""),
        ("cached UMAP load (median)", f"{res['umap_cached_ms']:.2f} ms", "< 50 ms"),
        (f"fresh UMAP, {res['umap_fresh_points']}", f"{res['umap_fresh_s']:.2f} s", "< 5 s"),
        ("training wall time (base + arms)", f"{train_s:.1f} s", ""),
        ("run wall time (training + eval)", f"{res['run_s']:.1f} s", ""),
    ]
    if not args.skip_rebuild:
        rows += [("stage_represent, from scratch", f"{res['represent_rebuild_s']:.1f} s",
                  f"<= 20% of run ({100 * (res['represent_share_of_run'] or 0):.1f}% of this run)")]
        if "base_step_s" in res:
            rows += [(f"  in base training steps (median step {res['base_step_s']:.2f} s)",
                      f"{res['represent_in_base_steps']:.0f} steps",
                      f"{100 * res['projected_share_of_default_training']:.1f}% of default's training steps")]
    rows += [("experiment folder", f"{res['folder_mb']:.1f} MB", "< 500 MB (default)"),
             ("  of which represent/", f"{res['represent_mb']:.1f} MB", "")]
    print(f"\n{root} ({res['preset']} preset; {n_rows} rows x {d}, {res['sites']} sites, {res['files']} files; "
          f"{res['machine']})\n")
    print("| measure | value | target |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "represent.json").write_text(json.dumps(res, indent=1) + "\n")
    print(f"\nwritten: {OUT / 'represent.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
