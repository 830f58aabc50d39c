"""Benchmark the pipeline (issue 2 targets): tiny end to end, default end to end, decoupled/baseline cost.

    python bench/bench_pipeline.py                 # tiny run (fresh) + figures of cache/default if present
    python bench/bench_pipeline.py --run-default   # also (re)run the default preset into bench/out/default

Wall times come from the stage records each run writes into its manifest, so the arms are compared
side by side within one run. Writes bench/out/pipeline.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np

from bench.cpuinfo import cpu_info, cpu_line
from explorer.experiment.layout import Experiment
from explorer.names import parse_model
from explorer.experiment.report import summary


def timed_run(preset: str, out: Path, extra: list[str] = ()) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "explorer", "run", "--preset", preset, "--out", str(out), "--no-bar",
                    *extra], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def figures(exp_dir: Path) -> dict:
    """The benchmark's figures of one finished experiment, from its manifest (stage times) and its summary."""
    exp = Experiment(exp_dir)
    m = exp.manifest()
    st = m["stages"]
    s = summary(exp)
    f = {"experiment": str(Path(exp_dir).resolve()), "code_version": m["code_version"], "seeds": len(s["seeds"]),
         "precision": (m.get("precision") or {}).get("reason", "not recorded")}
    if "base" in st:
        f["base_wall_s"] = st["base"]["wall_s"]
    walls: dict[str, list[float]] = {}
    for key, v in st.items():
        if key.startswith("arm:"):
            walls.setdefault(parse_model(key[4:])[0], []).append(v["wall_s"])
    for arm, w in walls.items():
        f[f"{arm}_wall_s_median"] = round(float(np.median(w)), 2)
        f[f"{arm}_wall_s_total"] = round(float(np.sum(w)), 1)
    # ratios measured side by side within one run: per seed, then the median over seeds
    for arm in ("decoupled", "random"):
        ratios = [st[f"arm:{arm}.s{seed}"]["wall_s"] / st[f"arm:baseline.s{seed}"]["wall_s"] for seed in s["seeds"]
                  if f"arm:{arm}.s{seed}" in st and f"arm:baseline.s{seed}" in st]
        if ratios:
            f[f"{arm}_over_baseline"] = round(float(np.median(ratios)), 3)
    f["train_s"] = round(sum(v.get("wall_s", 0) for k, v in st.items() if k.startswith("arm:")), 1)
    f["eval_s"] = round(sum(v.get("seconds", 0) for k, v in st.items() if k.startswith("eval:")), 1)
    f["represent_s"] = st.get("represent", {}).get("seconds")
    # what one seed costs, from the same run's stage records: stage 1 (if any), the first seed's arms and the
    # evaluation of the base and of the first seed's models (representations and start-up not included)
    s0 = min(s["seeds"]) if s["seeds"] else 0

    def first_seed(key: str) -> bool:
        name = key.split(":", 1)[1] if ":" in key else key
        return name == "base" or name.endswith(f".s{s0}")

    f["first_seed_stages_s"] = round(st.get("base", {}).get("wall_s", 0) + sum(
        v.get("wall_s", v.get("seconds", 0)) for k, v in st.items()
        if k.startswith(("arm:", "eval:")) and first_seed(k)), 1)
    refit_s = [r["seconds"] for seed in s["seeds"] for r in exp.refits(f"decoupled.s{seed}")]
    f["refits"] = len(refit_s)
    f["refits_accepted"] = sum(v["accepted"] for k, v in s["refits"].items() if k.startswith("decoupled."))
    f["refit_s_median"] = round(float(np.median(refit_s)), 3) if refit_s else None

    def mean_over(model_or_arm: str, kind: str) -> float | None:
        if model_or_arm == "base":
            dirs = s["models"].get("base", {})
            vals = [v["chrf"] for d, v in dirs.items() if _kind(d) == kind]
        else:
            vals = [v["mean"] for d, v in s["arms"].get(model_or_arm, {}).items() if _kind(d) == kind]
        return round(float(np.mean(vals)), 2) if vals else None

    f["base_chrf_eng_arb"] = s["models"].get("base", {}).get("eng-arb", {}).get("chrf")
    f["base_chrf_arb_eng"] = s["models"].get("base", {}).get("arb-eng", {}).get("chrf")
    for key in ("base", "baseline", "decoupled", "random"):
        f[f"{key}_chrf_msa_to_dialect_mean"] = mean_over(key, "msa_to_dialect")
        f[f"{key}_chrf_dialect_to_msa_mean"] = mean_over(key, "dialect_to_msa")
    copy = [v["chrf"] for d, v in s["copy_source"].items() if _kind(d) == "msa_to_dialect"]
    f["copy_source_chrf_msa_to_dialect_mean"] = round(float(np.mean(copy)), 2) if copy else None
    for arm in ("decoupled", "random"):
        x = s.get("aggregate", {}).get(arm, {}).get("msa_to_dialect")
        if x:
            f[f"{arm}_delta_msa_to_dialect"] = f"{x['delta']:+.2f} [{x['low']:+.2f}, {x['high']:+.2f}] {x['reading']}"
    floor = s.get("aggregate_noise_floor", {}).get("msa_to_dialect")
    f["noise_floor_msa_to_dialect"] = floor["max_abs"] if floor else None
    for key in ("base", "baseline", "decoupled", "random"):
        models = [m for m in s["looks_like"] if (m == key if key == "base" else m.startswith(key + "."))]
        looks = [v for m in models for v in s["looks_like"][m]["directions"].values()]
        if looks:
            f[f"{key}_as_requested"] = round(float(np.mean([v["as_requested"] for v in looks])), 3)
            f[f"{key}_called_msa"] = round(float(np.mean([v["called_msa"] for v in looks])), 3)
    ref = s.get("classifiers", {}).get("references")
    if ref:
        f["references_as_requested"] = round(float(np.mean([v["as_requested"] for v in ref["directions"].values()])), 3)
    import resource  # the largest child process so far (Linux: ru_maxrss in KiB)
    f["peak_rss_mb_children"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    f["created"] = m.get("created")
    return f


def _kind(direction: str) -> str:
    src, tgt = direction.split("-", 1)
    if src == "arb" and tgt not in ("arb", "eng"):
        return "msa_to_dialect"
    if tgt == "arb" and src not in ("arb", "eng"):
        return "dialect_to_msa"
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-default", action="store_true")
    ap.add_argument("--default-dir", default=str(REPO / "cache" / "default"))
    ap.add_argument("--bf16", default="", help="pass --bf16 auto|true|false to the default run (default: the preset's)")
    ap.add_argument("--skip-tiny", action="store_true", help="do not time the tiny preset")
    ap.add_argument("--readme", action="store_true",
                    help="also write the table into README.md, between the bench:pipeline markers")
    args = ap.parse_args()
    out_root = REPO / "bench" / "out"
    out_root.mkdir(parents=True, exist_ok=True)
    prev_path = out_root / "pipeline.json"
    prev = json.loads(prev_path.read_text()) if prev_path.exists() else {}
    result = {"machine": cpu_info()}
    print(cpu_line(result["machine"]))
    if not args.skip_tiny:
        tiny_dir = out_root / "tiny"
        result["tiny_end_to_end_s"] = round(timed_run("tiny", tiny_dir), 1)
        result["tiny"] = figures(tiny_dir)
    default_dir = Path(args.default_dir)
    if args.run_default:
        default_dir = out_root / ("default" + (f"-bf16-{args.bf16}" if args.bf16 else ""))
        extra = ["--bf16", args.bf16] if args.bf16 else []
        result["default_end_to_end_s"] = round(timed_run("default", default_dir, extra), 1)
    if Experiment(default_dir).exists():
        result["default"] = figures(default_dir)
        if not args.run_default:
            # the same experiment timed by an earlier --run-default keeps its end-to-end time and peak memory
            # (this process's children now include only the tiny run)
            old = prev.get("default", {})
            same = old.get("experiment") == result["default"]["experiment"] and \
                old.get("created") == result["default"]["created"]
            result["default"].pop("peak_rss_mb_children", None)
            if same and "default_end_to_end_s" in prev:
                result["default_end_to_end_s"] = prev["default_end_to_end_s"]
                if old.get("peak_rss_mb_children"):
                    result["default"]["peak_rss_mb_children"] = old["peak_rss_mb_children"]
    prev_path.write_text(json.dumps(result, indent=1))
    rows = [("machine", cpu_line(result["machine"]))]
    if "tiny_end_to_end_s" in result:
        rows.append(("tiny preset, end to end (s)", result["tiny_end_to_end_s"]))
    if "default_end_to_end_s" in result:
        rows.append(("default preset, end to end (s)", result["default_end_to_end_s"]))
    for name in ("tiny", "default"):
        f = result.get(name)
        if not f:
            continue
        for k, v in f.items():
            if k not in ("experiment", "code_version", "created") and v is not None:
                rows.append((f"{name}: {k}", v))
    table = "| figure | value |\n| --- | --- |\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    print(table, end="")
    if args.readme:
        write_readme_block(table, result)


START, END = "<!-- bench:pipeline:start -->", "<!-- bench:pipeline:end -->"


def write_readme_block(table: str, result: dict) -> None:
    """Replace the text between the markers in README.md with this run's table (raw figures)."""
    readme = REPO / "README.md"
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} ... {END} block to write into")
    code = (result.get("default") or result.get("tiny") or {}).get("code_version", "?")
    block = (f"{START}\nRaw figures written by `python bench/bench_pipeline.py --readme` on "
             f"{time.strftime('%Y-%m-%d')} (code {code}; seconds, chrF++):\n\n{table}{END}")
    head, rest = text.split(START, 1)
    readme.write_text(head + block + rest.split(END, 1)[1], encoding="utf-8")
    print(f"wrote the figures into {readme}")


if __name__ == "__main__":
    main()
