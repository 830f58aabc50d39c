"""The learning curve of a base build: each checkpoint a base build kept, scored like the shipped base's card.

    python bench/base_curve.py cache/base-build                 # every checkpoint, first 40 test sentences
    python bench/base_curve.py cache/base-build --steps 1000,4000 --n 100

Per checkpoint: chrF++ EN→MSA, MSA→EN, MSA copied back, MSA→dialect and dialect→MSA (means over the run's dialects),
and the share of MSA→dialect outputs the run's classifiers put in the requested dialect and call MSA
(``experiment.basebuild.base_scores``). Writes bench/out/base_curve-<work folder name>.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from explorer.experiment.basebuild import base_scores  # noqa: E402
from explorer.experiment.layout import Experiment  # noqa: E402
from explorer.files import read_json  # noqa: E402
from explorer.model.small import build_small_model  # noqa: E402
from explorer.model.tokenizer import load_tokenizer  # noqa: E402
from explorer.model.weights import load_weights  # noqa: E402


def score_checkpoint(exp: Experiment, step: int, n: int) -> dict:
    cfg = dataclasses.replace(exp.config(), eval_size=n)
    dialects = read_json(exp.data_info_path)["dialects"]
    tok = load_tokenizer(exp.tokenizer_dir)
    model = build_small_model(tok, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_ff=cfg.d_ff,
                              max_len=cfg.max_len, seed=cfg.stage1_seed, aligned_positions=cfg.aligned_positions)
    load_weights(model, exp.load_checkpoint("base", step))
    model.config.dde_trained_tags = sorted({"arb", "eng", *dialects})
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        return base_scores(Path(tmp), cfg, dialects, exp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work", help="a base build's work folder (python -m explorer base --work DIR)")
    ap.add_argument("--steps", default="", help="checkpoints to score, comma-separated (default: all)")
    ap.add_argument("--n", type=int, default=40, help="test sentences per direction")
    args = ap.parse_args()
    exp = Experiment(args.work)
    steps = [int(s) for s in args.steps.split(",") if s] or exp.checkpoints("base")
    out_path = REPO / "bench" / "out" / f"base_curve-{Path(args.work).resolve().name}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    for step in steps:
        results[str(step)] = score_checkpoint(exp, step, args.n)
        out_path.write_text(json.dumps(results, indent=1))
        s = results[str(step)]
        print(f"step {step}: MSA→dialect {s['msa_to_dialect_mean']} as requested {s['as_requested_mean']:.1%} "
              f"called MSA {s['called_msa_mean']:.1%}", flush=True)
    print("\n| stage-1 steps | EN→MSA | MSA→EN | MSA copied back | MSA→dialect | dialect→MSA | as requested | called MSA |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for step in sorted(results, key=int):
        s = results[step]
        print(f"| {int(step):,} | {s['eng-arb']} | {s['arb-eng']} | {s['arb-arb']} | {s['msa_to_dialect_mean']} | "
              f"{s['dialect_to_msa_mean']} | {s['as_requested_mean']:.1%} | {s['called_msa_mean']:.1%} |")


if __name__ == "__main__":
    main()
