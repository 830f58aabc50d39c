#!/bin/bash
# The one prepared device check (README "Benchmarks", GPU rows): on one GPU, the default preset end to end,
# then a longer run of the `full` preset (fewer steps so that it fits one 10-minute device call).
# Usage on the device machine: bash bench/gpu_check.sh   (writes into $OUT, or bench/out/gpu without it)
set -u
OUT=${OUT:-bench/out/gpu}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch, transformers, sys; print('python', sys.version.split()[0], 'torch', torch.__version__,
'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
  nproc
} > "$OUT/env.txt" 2>&1
run() {  # name, timeout, args...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" $PY -m explorer run --out "/tmp/gpu-$name" --no-bar "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc wall_s=$((SECONDS - t0))" >> "$OUT/times.txt"
  $PY -m explorer summary "/tmp/gpu-$name" >> "$OUT/$name.log" 2>&1
  $PY -m explorer summary "/tmp/gpu-$name" --json > "$OUT/$name-summary.json" 2>/dev/null
}
run tiny 90 --preset tiny
run default 240 --preset default
run long 330 --preset full --base-steps 3000 --steps 2000 --eval-size 100
tail -n 3 "$OUT"/*.log > "$OUT/tails.txt" 2>&1
cat "$OUT/times.txt"
