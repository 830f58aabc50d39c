"""The shipped base (issue 13): how long loading and checking it takes (target ≤ 2 s), and what it adds to the repository
(target ≤ 25 MB).

    python bench/bench_base.py [--repeats 7]

Each repeat runs in a fresh Python process, as a run or the app meets the base: import the project, ``verify`` the
SHA-256 of every file against ``card.json``, load the model and tokenizer (``load_model``), and decode one sentence.
The process times its own phases (after its imports, which every command pays anyway, are reported apart).
Medians over the repeats; prints a markdown table and writes bench/out/base.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"

CHILD = r"""
import json, time
t0 = time.perf_counter()
import torch
from explorer.data.varieties import HR
from explorer.evaluation.decoding import translate
from explorer.model.loading import load_model
from explorer.model.shipped import SHIPPED_BASE, verify
from explorer.model.prompts import encoder_for
t1 = time.perf_counter()
card = verify(SHIPPED_BASE)
t2 = time.perf_counter()
model, tok = load_model(SHIPPED_BASE)
model.eval()
t3 = time.perf_counter()
enc = encoder_for(model, tok, [HR, "arz", "eng"], card["config"]["max_len"])
with torch.no_grad():
    out = translate(model, tok, enc, [(HR, HR, "ذهبت إلى السوق أمس واشتريت بعض الخضروات.")], max_new_tokens=32,
                    batch_size=1)[0]
t4 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "verify_s": t2 - t1, "load_s": t3 - t2, "decode_s": t4 - t3,
                  "output": out}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    runs = []
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for _ in range(args.repeats):
        p = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, env=env, capture_output=True, text=True,
                           check=True)
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(r[k] for r in runs) for k in ("imports_s", "verify_s", "load_s", "decode_s")}
    base = REPO / "data" / "base"
    size = sum(p.stat().st_size for p in base.iterdir() if p.is_file())
    result = {**{k: round(v, 3) for k, v in med.items()}, "verify_and_load_s": round(med["verify_s"] + med["load_s"], 3),
              "size_mb": round(size / 2**20, 2), "files": sorted(p.name for p in base.iterdir()),
              "output": runs[0]["output"], "repeats": args.repeats, "machine": platform.machine(),
              "cpus": os.cpu_count(), "load_avg": os.getloadavg()[0]}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "base.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print("| figure | value | target |\n| --- | --- | --- |")
    print(f"| check every file's SHA-256 (`verify`), median | {med['verify_s']:.3f} s | |")
    print(f"| load model + tokenizer (`load_model`), median | {med['load_s']:.3f} s | |")
    print(f"| check + load | **{result['verify_and_load_s']:.2f} s** | ≤ 2 s |")
    print(f"| decode one sentence after that | {med['decode_s']:.3f} s | |")
    print(f"| imports (paid by every command anyway) | {med['imports_s']:.2f} s | |")
    print(f"| `data/base/` on disk | {result['size_mb']} MB | ≤ 25 MB |")
    print(f"\n{args.repeats} fresh processes, load average {result['load_avg']:.1f} on {result['cpus']} cores; "
          f"the base copies MSA: {runs[0]['output']!r}")


if __name__ == "__main__":
    main()
