#!/usr/bin/env bash
# The renderer's GPU checks as one prepared script (issue 10), for a machine with a CUDA GPU and ../shared beside
# the checkout. Prints training it/s and inference fps (eager and compiled), then the quality table of the seed
# preset on d6 at a budget that fits a short lease (ITERATIONS, default 3000; the full seed run is 100,000).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-benchmarks/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
PYTHONUNBUFFERED=1 "$PY" benchmarks/bench_renderer.py 2>&1 | tee "$OUT/bench_renderer.txt"
PYTHONUNBUFFERED=1 "$PY" benchmarks/bench_quality.py --preset seed --iterations "${ITERATIONS:-3000}" \
  --video ../shared/testdata/videos/d6.mp4 --json "$OUT/bench_quality_seed_d6.json" 2>&1 | tee "$OUT/bench_quality_seed_d6.txt"
