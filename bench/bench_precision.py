"""Training step time of the `default` preset's model in fp32, under bf16 autocast, and as `--bf16 auto` chooses
(issue 19): on a CPU without native bf16 autocast made a step ~10× slower, so `auto` must never be slower than fp32.

    python bench/bench_precision.py                 # 3 warm-up + 15 timed steps each, interleaved
    python bench/bench_precision.py --steps 30 --threads 1

Builds the shipped base's architecture (random weights: the time of a step does not depend on them) and times one
optimiser step (forward, backward, AdamW) on real stage-2 batches of 32 examples, alternating the precisions so that
machine noise hits both alike. Prints the medians, their ratio and the processor (model, flags) beside them, and
writes bench/out/precision.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.cpuinfo import cpu_info, cpu_line  # noqa: E402
from explorer.config import preset_config  # noqa: E402
from explorer.data.examples import collate  # noqa: E402
from explorer.data.rundata import load_run_data  # noqa: E402
from explorer.model.shipped import SHIPPED_BASE  # noqa: E402
from explorer.model.loading import load_model  # noqa: E402
from explorer.model.prompts import encoder_for  # noqa: E402
from explorer.training.loop import autocast_for, make_optimizer  # noqa: E402
from explorer.training.precision import resolve  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = preset_config("default")
    data = load_run_data(cfg)
    model, tok = load_model(SHIPPED_BASE)
    model = model.float().train()
    enc = encoder_for(model, tok, data.codes, cfg.max_len)
    rows = enc.encode_all(data.stage2_train[: cfg.batch_size * (args.steps + args.warmup)])
    batches = [collate(rows[i:i + cfg.batch_size], tok.pad_token_id)
               for i in range(0, len(rows), cfg.batch_size)]
    from explorer.config import derive
    from explorer.training.loop import LoopSpec
    opt = make_optimizer(model, derive(LoopSpec, cfg, name="bench", steps=1, lr=cfg.lr, seed=0, bf16=False))

    def step(batch, bf16: bool) -> float:
        t0 = time.perf_counter()
        with autocast_for(model, bf16):
            out = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch},
                        labels=batch["labels"])
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    auto = resolve("auto", "cpu")
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for i, batch in enumerate(batches[: args.warmup + args.steps]):
        for name in ("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32"):
            t = step(batch, name == "bf16")
            if i >= args.warmup:
                times[name].append(t)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    res = {"cpu": cpu_info(), "fp32_ms": round(med["fp32"], 1), "bf16_ms": round(med["bf16"], 1),
           "bf16_over_fp32": round(med["bf16"] / med["fp32"], 3), "auto": auto.to_dict(),
           "auto_ms": round(med["bf16" if auto.bf16 else "fp32"], 1), "steps": args.steps,
           "batch_size": cfg.batch_size}
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "precision.json").write_text(json.dumps(res, indent=1))
    print(cpu_line(res["cpu"]))
    print(f"| precision | median step (ms) |\n| --- | --- |\n| fp32 | {res['fp32_ms']} |\n| bf16 autocast | "
          f"{res['bf16_ms']} |\n| auto ({'bf16' if auto.bf16 else 'fp32'}: {auto.reason}) | {res['auto_ms']} |")
    print(f"bf16/fp32 = {res['bf16_over_fp32']}")


if __name__ == "__main__":
    main()
