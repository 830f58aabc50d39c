"""What artefact verification (explorer/files.py check records) costs on read (issue 10: at most +5%).

    python bench/bench_verify.py                   # a default-size checkpoint + a tiny experiment, built here
    python bench/bench_verify.py --exp cache/default --repeats 41

Every figure compares the same files read twice over: a copy *with* check records (verified: size + CRC-32 of
every byte) against a copy *without* them (read unverified, exactly as before records existed), interleaved
A/B/A/B so that a busy machine slows both alike; medians and minima, and what verification adds by each.

- checkpoint: a ``default``-preset-size checkpoint (4 layers, width 256, vocabulary 6,000: 9.9 MB fp16), read the
  three ways code reads one: ``load_tensors`` alone (safetensors maps the file lazily, so this is nearly free
  unverified and the CRC pass is all of the cost), the tensors laid into a model (``load_weights``, what every
  caller does next), and the whole ``load_arm`` path of the app and the stages (base model folder + checkpoint);
- tables: a fresh ``ExperimentView`` reading every table a page shows (hypotheses, scores, deltas, refits,
  geometry, index, training logs) from a warm disk cache (the app's own ``st.cache_data`` is not involved);
- hypotheses at the ``default`` preset's size (4 models x 720 outputs), read and parsed with ``read_jsonl``.
Prints a markdown table and writes bench/out/verify.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "out"


def strip_records(root: Path) -> None:
    for side in root.rglob(".*.check"):
        side.unlink()


def ab(fn_a, fn_b, repeats: int) -> tuple[float, float, float, float]:
    """Median and minimum seconds of fn_a and fn_b, interleaved (one warm-up each). On a shared machine the
    minimum is the steadier estimate of what the work itself costs; both are reported."""
    fn_a(), fn_b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, acc in ((fn_a, ta), (fn_b, tb)):
            t = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb), min(ta), min(tb)


def default_checkpoint(tmp: Path) -> tuple[Path, Path, Path]:
    """(base model folder, recorded checkpoint, unrecorded copy) at the default preset's size."""
    import torch
    from transformers import PreTrainedTokenizerFast

    from explorer.config import preset_config
    from explorer.files import save_tensors
    from explorer.model.small import build_small_model
    from explorer.model.tokenizer import train_tokenizer
    from explorer.model.weights import weight_tensors

    cfg = preset_config("default")
    tok: PreTrainedTokenizerFast = train_tokenizer(["placeholder text for a bench"] * 50, vocab_size=cfg.vocab_size,
                                                   tags=["arb", "eng"])
    model = build_small_model(tok, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_ff=cfg.d_ff,
                              max_len=cfg.max_len, seed=0)
    model.resize_token_embeddings(cfg.vocab_size)      # the size a default run's vocabulary reaches
    base = tmp / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    rec = tmp / "recorded" / "weights.safetensors"
    save_tensors(rec, weight_tensors(model, torch.float16))
    plain = tmp / "plain" / "weights.safetensors"
    plain.parent.mkdir()
    shutil.copy(rec, plain)
    return base, rec, plain


def tiny_experiment(tmp: Path) -> Path:
    from explorer.config import preset_config
    from explorer.experiment.run import run_experiment

    out = tmp / "tiny"
    run_experiment(preset_config("tiny"), out, bar=False)
    return out


def read_tables(root: Path) -> None:
    from explorer.experiment.layout import Experiment
    from explorer.experiment.view import ExperimentView

    view = ExperimentView(Experiment(root))
    view.hypotheses(), view.scores(), view.deltas(), view.copy_source(), view.index(), view.geometry_long()
    for arm in view.arms:
        view.train_log(arm)
        if arm != "baseline":
            view.refits(arm)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", help="an experiment folder to read the tables of (default: build a tiny one)")
    ap.add_argument("--repeats", type=int, default=31)
    args = ap.parse_args()

    import torch

    from explorer.files import load_tensors, read_jsonl, write_jsonl
    from explorer.model.loading import load_model
    from explorer.model.weights import load_weights

    torch.set_num_threads(1)
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(dir=OUT if OUT.exists() else None) as t:
        tmp = Path(t)
        base, rec, plain = default_checkpoint(tmp)
        model, _ = load_model(base)
        rows.append(("checkpoint: load_tensors (9.9 MB, lazily mapped)",
                     *ab(lambda: load_tensors(rec), lambda: load_tensors(plain), args.repeats)))
        rows.append(("checkpoint: load_tensors + load_weights into a model",
                     *ab(lambda: load_weights(model, load_tensors(rec)),
                         lambda: load_weights(model, load_tensors(plain)), args.repeats)))

        def arm(path: Path):
            m, _ = load_model(base)
            load_weights(m, load_tensors(path))

        rows.append(("checkpoint: load_arm (base folder + checkpoint)",
                     *ab(lambda: arm(rec), lambda: arm(plain), max(5, args.repeats // 3))))

        exp = Path(args.exp) if args.exp else tiny_experiment(tmp)
        recorded = tmp / "exp-recorded"
        shutil.copytree(exp, recorded)
        unrecorded = tmp / "exp-plain"
        shutil.copytree(exp, unrecorded)
        strip_records(unrecorded)
        rows.append((f"tables: every table a page reads ({exp.name})",
                     *ab(lambda: read_tables(recorded), lambda: read_tables(unrecorded), args.repeats)))

        hyps = [{"direction": f"arb-d{i % 8}", "src": "arb", "tgt": f"d{i % 8}", "sent_id": f"s{i}",
                 "source": "جملة مصدر فيها بعض الكلمات " * 3, "ref": "جملة مرجعية فيها كلمات " * 3,
                 "hyp": "جملة مترجمة فيها كلمات " * 3, "chrf": 41.5} for i in range(720)]
        for name in ("recorded", "plain"):
            for m in ("base", "baseline", "decoupled", "random"):
                write_jsonl(tmp / name / m / "hyps.jsonl", hyps)
        strip_records(tmp / "plain")

        def read_hyps(root: Path):
            for m in ("base", "baseline", "decoupled", "random"):
                read_jsonl(root / m / "hyps.jsonl")

        rows.append(("tables: default-size hypotheses (4 x 720 outputs)",
                     *ab(lambda: read_hyps(tmp / "recorded"), lambda: read_hyps(tmp / "plain"), args.repeats)))

        # writes: what a training step adds (a log line every step; progress and checkpoints less often)
        from safetensors.torch import save_file

        from explorer.files import append_jsonl, atomic_write, atomic_write_text, save_tensors, write_json

        line = {"step": 1, "loss": 3.14159, "lr": 0.001, "grad_norm": 1.2345, "penalty": None, "elapsed": 12.3}

        def plain_append():
            with open(tmp / "plain.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")

        rows.append(("write: one training-log line (every step)",
                     *ab(lambda: append_jsonl(tmp / "rec.jsonl", line), plain_append, args.repeats * 5)))
        prog = {"status": "running", "stage": "decoupled", "step": 50, "total": 200, "loss": 3.2, "eta_s": 90.0}
        rows.append(("write: progress.json (at most twice a second)",
                     *ab(lambda: write_json(tmp / "p1.json", prog),
                         lambda: atomic_write_text(tmp / "p2.json", json.dumps(prog, indent=1) + "\n"),
                         args.repeats)))
        tensors = load_tensors(rec)
        rows.append(("write: a default-size checkpoint (every ckpt_every steps)",
                     *ab(lambda: save_tensors(tmp / "w1.safetensors", tensors),
                         lambda: atomic_write(tmp / "w2.safetensors",
                                              lambda t: save_file(tensors, str(t))), max(5, args.repeats // 3))))

    print(f"Verification cost (medians of {args.repeats}, interleaved; {platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f})\n")
    print("| operation | verified (median) | unverified (median) | added (medians) | added (minima) |")
    print("| --- | --- | --- | --- | --- |")
    out = []
    for what, a, b, amin, bmin in rows:
        added, added_min = a - b, amin - bmin
        print(f"| {what} | {1000 * a:.2f} ms | {1000 * b:.2f} ms | {1000 * added:+.2f} ms ({100 * added / b:+.1f}%) "
              f"| {1000 * added_min:+.2f} ms ({100 * added_min / bmin:+.1f}%) |")
        out.append({"what": what, "verified_s": a, "unverified_s": b, "added_fraction": added / b,
                    "verified_min_s": amin, "unverified_min_s": bmin, "added_fraction_min": added_min / bmin})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "verify.json").write_text(json.dumps({"repeats": args.repeats, "load": os.getloadavg()[0], "rows": out},
                                                indent=1))


if __name__ == "__main__":
    main()
