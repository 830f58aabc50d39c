#!/bin/bash
# Issue 11's device checks, one per call so that each fits a device call (README "Reproducing the paper on a GPU"):
#   bash bench/gpu_check_models.sh bench    # bench_gpu.py: ~1.1B Llama-style steps, baseline vs decoupled, then with
#                                           # LoRA and with activation checkpointing (memory); a few minutes
#   bash bench/gpu_check_models.sh preset   # the `gpu` preset end to end, under a 10-minute limit
# Writes into $OUT (or bench/out/gpu-models).
set -u
OUT=${OUT:-bench/out/gpu-models}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/env.txt" 2>&1
case "${1:-bench}" in
  bench)
    timeout 150 $PY bench/bench_gpu.py --json "$OUT/bench-full.json" > "$OUT/bench-full.md" 2>&1
    echo "full rc=$?" >> "$OUT/times.txt"
    timeout 60 $PY bench/bench_gpu.py --modes baseline --lora-rank 16 --json "$OUT/bench-lora.json" > "$OUT/bench-lora.md" 2>&1
    echo "lora rc=$?" >> "$OUT/times.txt"
    timeout 60 $PY bench/bench_gpu.py --modes baseline --grad-checkpointing --json "$OUT/bench-ckpt.json" \
      > "$OUT/bench-ckpt.md" 2>&1
    echo "ckpt rc=$?" >> "$OUT/times.txt"
    ;;
  preset)
    t0=$SECONDS
    timeout 600 $PY -m explorer run --preset gpu --out /tmp/gpu-preset --no-bar > "$OUT/preset.log" 2>&1
    echo "gpu preset rc=$? wall_s=$((SECONDS - t0))" >> "$OUT/times.txt"
    $PY -m explorer summary /tmp/gpu-preset --json > "$OUT/preset-summary.json" 2>/dev/null
    ;;
esac
cat "$OUT/times.txt"
