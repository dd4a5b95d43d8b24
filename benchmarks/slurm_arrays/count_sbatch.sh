#!/usr/bin/env bash
# How many sbatch calls snakemake-executor-plugin-slurm makes with and without job arrays (docs/SCALE.md, "Job
# arrays"): the Snakefile beside this script (8 per-video jobs of a stage `a` that end at four different times, then 8
# of a stage `b`) runs twice on a reachable SLURM cluster (e.g. `bash .ci/slurm_setup.sh`), once plain and once with
# --slurm-array-jobs a,b; a wrapper first on PATH logs every sbatch call.
#
#   bash benchmarks/slurm_arrays/count_sbatch.sh [WORKDIR]     (default /tmp/slurm_arrays)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-/tmp/slurm_arrays}
real=$(command -v sbatch)
mkdir -p "$work/bin"
cp "$here/Snakefile" "$work/Snakefile"
printf '#!/bin/sh\necho "$*" >> %s/sbatch_calls.log\nexec %s "$@"\n' "$work" "$real" > "$work/bin/sbatch"
chmod +x "$work/bin/sbatch"
cd "$work"
for mode in plain arrays; do
    rm -rf a b .snakemake sbatch_calls.log
    extra=()
    [ "$mode" = arrays ] && extra=(--slurm-array-jobs a,b)
    PATH="$work/bin:$PATH" python -m snakemake --executor slurm --jobs 100 --slurm-status-command squeue \
        --slurm-init-seconds-before-status-checks 2 --latency-wait 30 "${extra[@]}" > "run_$mode.log" 2>&1
    echo "$mode: $(wc -l < sbatch_calls.log) sbatch calls; arrays: $(grep -o -- '--array=[0-9-]*' sbatch_calls.log | tr '\n' ' ')"
done
