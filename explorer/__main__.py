"""Command line: ``python -m explorer run|summary|represent|list``.

    python -m explorer run --preset tiny --out cache/tiny
    python -m explorer run --preset default --data madar:/data/MADAR --lam 0.05 --rank 2
    python -m explorer summary cache/tiny --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .config import PRESETS, add_config_options, overrides_from_args, preset_config
from .data.rundata import load_run_data
from .experiment.basebuild import build_base
from .experiment.layout import CACHE_ROOT, Experiment, list_experiments
from .experiment.progress import Progress
from .experiment.report import summary, summary_table
from .experiment.represent import stage_represent
from .experiment.run import run_experiment
from .files import StoreError
from .model.shipped import SHIPPED_BASE
from .training.distributed import current


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m explorer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run or resume an experiment (base, arms, evaluation, representations)")
    r.add_argument("--preset", default="default", choices=sorted(PRESETS))
    r.add_argument("--out", default=None, help="experiment folder (default: cache/<preset>)")
    r.add_argument("--no-bar", action="store_true", help="no progress bars (progress.json is still written)")
    add_config_options(r)
    b = sub.add_parser("base", help="train (or resume) the base model that ships with the project, and export it")
    b.add_argument("--out", default=str(SHIPPED_BASE), help=f"where the base goes (default: {SHIPPED_BASE})")
    b.add_argument("--work", default=None, help="the resumable work folder (default: cache/base-build)")
    b.add_argument("--no-bar", action="store_true", help="no progress bars (progress.json is still written)")
    add_config_options(b)
    s = sub.add_parser("summary", help="print an experiment's results")
    s.add_argument("dir")
    s.add_argument("--json", action="store_true", help="machine-readable JSON")
    rp = sub.add_parser("represent", help="(re)build the representation and geometry caches of an experiment")
    rp.add_argument("dir")
    sub.add_parser("list", help="experiments under cache/")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    try:
        if args.cmd == "run":
            cfg = preset_config(args.preset, **overrides_from_args(args))
            out = Path(args.out) if args.out else CACHE_ROOT / args.preset
            if os.environ.get("RANK", "0") == "0":
                print(f"experiment folder: {out}", file=sys.stderr)
            exp = run_experiment(cfg, out, bar=not args.no_bar)
            if current().is_main:          # under a launcher, rank 0 reports (distributed.py)
                print(summary_table(summary(exp)))
        elif args.cmd == "base":
            cfg = preset_config("base", **overrides_from_args(args))
            work = Path(args.work) if args.work else CACHE_ROOT / "base-build"
            card = build_base(cfg, Path(args.out), work, bar=not args.no_bar)
            print(json.dumps({"out": args.out, "scores": card["scores"], "train_s": card["train_s"]}, indent=1))
        elif args.cmd == "summary":
            s = summary(Experiment(args.dir))
            print(json.dumps(s, indent=1, ensure_ascii=False) if args.json else summary_table(s))
        elif args.cmd == "represent":
            exp = Experiment(args.dir)
            cfg = exp.config()
            stage_represent(exp, cfg, load_run_data(cfg), Progress(exp), force_check=True)
        elif args.cmd == "list":
            for p in list_experiments(CACHE_ROOT):
                print(p)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    except (StoreError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
