"""Command line: ``python -m explorer run|base|summary|represent|classify|pack|data|list``.

    python -m explorer run --preset tiny --out cache/tiny
    python -m explorer run --preset default --data madar:/data/MADAR --lam 0.05 --rank 2
    python -m explorer summary cache/tiny --json
    python -m explorer data madar:/data/MADAR_Corpus      # what a corpus holds, before training on it
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .config import PRESETS, RunConfig, preset_config
from .options import add_config_options, overrides_from_args
from .data.report import CorpusReport, inspect_corpus
from .data.rundata import load_run_data
from .experiment.basebuild import build_base
from .experiment.evaluate import relabel
from .experiment.integrity import check, done_stages, problems_message
from .experiment.layout import CACHE_ROOT, Experiment, RunLock, list_experiments
from .experiment.pack import pack
from .experiment.preflight import preflight
from .experiment.progress import Progress
from .experiment.report import summary, summary_table
from .experiment.represent import stage_represent
from .experiment.run import Terminated, run_experiment, stop_on_sigterm
from .files import StoreError, write_json
from .model.shipped import SHIPPED_BASE
from .training.distributed import current


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m explorer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run or resume an experiment (base, arms, evaluation, representations)")
    r.add_argument("--preset", default="default", choices=sorted(PRESETS),
                   help="the preset every option below defaults to (each option's [brackets] give its value in "
                        "each preset)")
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
    cl = sub.add_parser("classify", help="score again what the outputs look like (as requested, called MSA) with "
                                         "the current classifiers, from the stored hypotheses (no model is run)")
    cl.add_argument("dir")
    pk = sub.add_parser("pack", help="write the pruned, checked copy of a finished experiment that ships with the "
                                     "project (what the app's pages read; see README 'The shipped experiment')")
    pk.add_argument("src", help="a finished experiment folder")
    pk.add_argument("dst", help="where the packed copy goes (e.g. cache/default); a new folder, or a packed copy "
                                "with --replace")
    pk.add_argument("--seed", type=int, default=None, help="the seed whose models the pages offer and whose final "
                                                            "weights ship (default: the run's first seed)")
    pk.add_argument("--steps", default=None, help="checkpoint steps whose representations ship, e.g. 100,200 "
                                                  "(default: all; the final one always)")
    pk.add_argument("--max-mb", type=float, default=50.0, help="refuse a copy larger than this (default 50 MB)")
    pk.add_argument("--replace", action="store_true", help="write over an existing packed copy (never over a run)")
    sub.add_parser("list", help="experiments under cache/")
    d = sub.add_parser("data", help="inspect a corpus without training: varieties, sentences per split, files "
                                    "ignored and why, every problem with its file and line")
    d.add_argument("spec", help="'flores' (embedded) or 'madar:/path/to/MADAR_Corpus'")
    for name in ("dev_size", "test_size", "seed"):
        d.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(RunConfig, name),
                       help="as for `run` (FLORES only: MADAR keeps its official split)")
    return p


def print_report(rep: CorpusReport, *, brief: bool = False, file=None) -> None:
    """A corpus report for people: the whole table for ``data``, its notes and problems at the start of ``run``."""
    def say(text: str = "") -> None:
        print(text, file=file or sys.stdout)

    say(f"data: {rep.name}" + (f" ({rep.folder})" if rep.folder else ""))
    if not brief and rep.varieties:
        say(f"  {len(rep.varieties)} varieties, sentences per split:")
        say(f"    {'code':<5} {'name':<34} {'train':>6} {'dev':>5} {'test':>5} {'other':>6}  file")
        for v in rep.varieties:
            say(f"    {v.code:<5} {v.name[:34]:<34} {v.train:>6} {v.dev:>5} {v.test:>5} "
                f"{v.extra or '':>6}  {v.source}")
        if any(v.extra for v in rep.varieties):
            say("    (other: rows outside the parallel set, e.g. MADAR's corpus-6 rows, not used)")
    if not brief and rep.ignored:
        say(f"  ignored {len(rep.ignored)} file(s):")
        for name, why in rep.ignored:
            say(f"    {name}: {why}")
    for note in rep.notes:
        if not (brief is False and note.startswith("ignored ")):   # the table above already lists them
            say(f"  note: {note}")
    if rep.problems:
        say(f"  {len(rep.problems)} problem(s):")
        for problem in rep.problems:
            say(f"    - {problem}")


def _refuse_unusable(exp: Experiment, kinds: tuple[str, ...], what: str) -> None:
    """StoreError listing the files of finished stages of these kinds that are damaged or missing, and the
    command that rebuilds them (nothing is computed from them)."""
    cfg = exp.config()
    problems = check(exp, cfg, [k for k in done_stages(exp, cfg) if k.partition(":")[0] in kinds])
    if problems:
        raise StoreError(problems_message(exp, problems, what))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with stop_on_sigterm():
        return _main(args)


def _main(args) -> int:
    try:
        if args.cmd == "run":
            cfg = preset_config(args.preset, **overrides_from_args(args))
            out = Path(args.out) if args.out else CACHE_ROOT / args.preset
            Experiment(out).refuse_if_packed("a run")     # a shipped copy: before any work or lock in it
            main_rank = os.environ.get("RANK", "0") == "0"
            report = inspect_corpus(cfg.data, dev=cfg.dev_size, test=cfg.test_size, seed=cfg.seed)
            if main_rank:
                print_report(report, brief=True, file=sys.stderr)
            if not report.ok:
                print(f"error: the corpus has {len(report.problems)} problem(s), listed above; fix them and run "
                      "again.", file=sys.stderr)
                return 2
            preflight(cfg, corpus=report.corpus)   # every setting checked before any work (run_experiment too)
            if main_rank:
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
            exp.refuse_if_packed("`represent`")
            cfg = exp.config()
            _refuse_unusable(exp, ("prepare", "base", "arm"), "that the representations are computed from")
            stage_represent(exp, cfg, load_run_data(cfg), Progress(exp), force_check=True)
        elif args.cmd == "classify":
            exp = Experiment(args.dir)
            exp.refuse_if_packed("`classify`")
            cfg = exp.config()
            with RunLock(exp):         # never beside a run writing the same files (refused: RunLockHeld)
                _refuse_unusable(exp, ("eval",), "that `classify` reads")
                models = relabel(exp, cfg, load_run_data(cfg))
                if exp.summary_path.exists():
                    write_json(exp.summary_path, summary(exp))
            print(f"{len(models)} model(s) scored again: {', '.join(models)}", file=sys.stderr)
            print(summary_table(summary(exp)))
        elif args.cmd == "pack":
            steps = [int(x) for x in args.steps.split(",") if x.strip()] if args.steps else None
            rec = pack(args.src, args.dst, seed=args.seed, steps=steps, max_mb=args.max_mb, replace=args.replace)
            shown = ", ".join(f"{m} (steps {e['steps']}, weights at {e['weights']})" for m, e in rec["models"].items())
            print(f"packed {rec['source']} -> {args.dst}: {len(rec['files'])} files, {rec['bytes'] / 1e6:.1f} MB, "
                  f"every file checked ({rec['seconds']} s)\nmodels the pages offer: base, {shown}")
        elif args.cmd == "list":
            for p in list_experiments(CACHE_ROOT):
                print(p)
        elif args.cmd == "data":
            report = inspect_corpus(args.spec, dev=args.dev_size, test=args.test_size, seed=args.seed)
            print_report(report)
            return 0 if report.ok else 2
    except KeyboardInterrupt as e:
        how = "stopped by SIGTERM" if isinstance(e, Terminated) else "interrupted"
        print(f"{how}: rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except (StoreError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
