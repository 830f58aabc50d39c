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

from explorer.experiment.layout import Experiment


def timed_run(preset: str, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "explorer", "run", "--preset", preset, "--out", str(out), "--no-bar"],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def figures(exp_dir: Path) -> dict:
    exp = Experiment(exp_dir)
    m = exp.manifest()
    st = m["stages"]
    f = {"experiment": str(Path(exp_dir).resolve()), "code_version": m["code_version"]}
    for arm in ("baseline", "decoupled", "random"):
        if f"arm:{arm}" in st:
            f[f"{arm}_wall_s"] = st[f"arm:{arm}"]["wall_s"]
            f[f"{arm}_tokens"] = st[f"arm:{arm}"]["tokens"]
    if "base" in st:
        f["base_wall_s"] = st["base"]["wall_s"]
    if "baseline_wall_s" in f and "decoupled_wall_s" in f:
        f["decoupled_over_baseline"] = round(f["decoupled_wall_s"] / f["baseline_wall_s"], 3)
        f["random_over_baseline"] = round(f["random_wall_s"] / f["baseline_wall_s"], 3)
    f["eval_s"] = round(sum(v.get("seconds", 0) for k, v in st.items() if k.startswith("eval:")), 1)
    f["represent_s"] = st.get("represent", {}).get("seconds")
    refit_s = [r["seconds"] for r in exp.refits("decoupled")]
    f["refits"] = len(refit_s)
    f["refit_s_median"] = sorted(refit_s)[len(refit_s) // 2] if refit_s else None
    scores = {}
    for key in ("base", "baseline", "decoupled", "random"):
        p = exp.scores_path(key)
        if p.exists():
            scores[key] = json.loads(p.read_text())["directions"]
    if "base" in scores:
        f["base_chrf_eng_arb"] = scores["base"].get("eng-arb", {}).get("chrf")
    for key in ("base", "baseline", "decoupled", "random"):
        if key in scores:
            to_dialect = [v["chrf"] for d, v in scores[key].items() if d.startswith("arb-") and d != "arb-eng"]
            f[f"{key}_chrf_msa_to_dialect_mean"] = round(sum(to_dialect) / len(to_dialect), 2) if to_dialect else None
        if key in scores:
            to_msa = [v["chrf"] for d, v in scores[key].items() if d.endswith("-arb") and d != "eng-arb"]
            f[f"{key}_chrf_dialect_to_msa_mean"] = round(sum(to_msa) / len(to_msa), 2) if to_msa else None
    cp = exp.copy_source_path
    if cp.exists():
        copy = json.loads(cp.read_text())["directions"]
        to_dialect = [v["chrf"] for d, v in copy.items() if d.startswith("arb-") and d != "arb-eng"]
        f["copy_source_chrf_msa_to_dialect_mean"] = round(sum(to_dialect) / len(to_dialect), 2)
    deltas = exp.deltas_path
    if deltas.exists():
        dd = json.loads(deltas.read_text())["systems"].get("decoupled", {})
        to_dialect = [v for d, v in dd.items() if d.startswith("arb-") and d != "arb-eng"]
        if to_dialect:
            f["decoupled_delta_msa_to_dialect_mean"] = round(sum(v["delta"] for v in to_dialect) / len(to_dialect), 2)
            f["decoupled_delta_significant_directions"] = sum(1 for v in to_dialect if v["low"] > 0 or v["high"] < 0)
    import resource  # the largest child process so far (Linux: ru_maxrss in KiB)
    f["peak_rss_mb_children"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    started = m.get("created")
    f["created"] = started
    return f


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-default", action="store_true")
    ap.add_argument("--default-dir", default=str(REPO / "cache" / "default"))
    ap.add_argument("--readme", action="store_true",
                    help="also write the table into README.md, between the bench:pipeline markers")
    args = ap.parse_args()
    out_root = REPO / "bench" / "out"
    out_root.mkdir(parents=True, exist_ok=True)
    prev_path = out_root / "pipeline.json"
    prev = json.loads(prev_path.read_text()) if prev_path.exists() else {}
    result = {}
    tiny_dir = out_root / "tiny"
    result["tiny_end_to_end_s"] = round(timed_run("tiny", tiny_dir), 1)
    result["tiny"] = figures(tiny_dir)
    default_dir = Path(args.default_dir)
    if args.run_default:
        default_dir = out_root / "default"
        result["default_end_to_end_s"] = round(timed_run("default", default_dir), 1)
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
    rows = [("tiny preset, end to end (s)", result["tiny_end_to_end_s"])]
    if "default_end_to_end_s" in result:
        rows.append(("default preset, end to end (s)", result["default_end_to_end_s"]))
    for name in ("tiny", "default"):
        f = result.get(name)
        if not f:
            continue
        for k in ("base_wall_s", "baseline_wall_s", "decoupled_wall_s", "random_wall_s", "decoupled_over_baseline",
                  "random_over_baseline", "refit_s_median", "eval_s", "represent_s", "base_chrf_eng_arb",
                  "base_chrf_msa_to_dialect_mean", "baseline_chrf_msa_to_dialect_mean",
                  "decoupled_chrf_msa_to_dialect_mean", "random_chrf_msa_to_dialect_mean",
                  "copy_source_chrf_msa_to_dialect_mean", "baseline_chrf_dialect_to_msa_mean",
                  "decoupled_chrf_dialect_to_msa_mean", "decoupled_delta_msa_to_dialect_mean",
                  "decoupled_delta_significant_directions", "peak_rss_mb_children"):
            if f.get(k) is not None:
                rows.append((f"{name}: {k}", f[k]))
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
    code = result.get("default", result["tiny"])["code_version"]
    block = (f"{START}\nRaw figures written by `python bench/bench_pipeline.py --readme` on "
             f"{time.strftime('%Y-%m-%d')} (code {code}; seconds, chrF++):\n\n{table}{END}")
    head, rest = text.split(START, 1)
    readme.write_text(head + block + rest.split(END, 1)[1], encoding="utf-8")
    print(f"wrote the figures into {readme}")


if __name__ == "__main__":
    main()
