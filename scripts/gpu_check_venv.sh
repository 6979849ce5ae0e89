#!/usr/bin/env bash
# A virtual environment that holds only the packages of the lent GPU machine's image that the GPU
# check (benchmarks/gpu_check.py) may touch, for its CPU rehearsal (tests/benchmarks/test_gpu_check.py):
# the CPU build of torch 2.13 stands in for the image's CUDA torch 2.11, and the image's triton,
# transformers and accelerate versions are pinned. No rlcore, omegaconf, Ray, DeepSpeed or vLLM.
# Built once under .cache/ (git-ignored, ~2 GB, a few minutes), again when the list below changes.
#
#   bash scripts/gpu_check_venv.sh        # prints the environment's python
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.cache/gpu_check_venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
# the image, 2026-11: torch 2.11.0+cu130, triton 3.6.0, transformers 5.17.0, accelerate 1.15.0,
# peft, pyarrow (see the device notes); their dependencies come with them. One deviation: numpy<2.4
# (the image has 2.5): Triton's interpreter, which runs the kernel on CPU only, calls int() on
# 1-element arrays, which numpy 2.4 refuses; on the GPU the kernel is compiled and never meets it.
PACKAGES="torch==2.13.0 triton==3.6.0 transformers==5.17.0 accelerate==1.15.0 peft pyarrow numpy<2.4"

if [ "$(cat "$VENV/.packages" 2>/dev/null)" != "$PACKAGES" ]; then
  echo "building $VENV (the GPU image's packages, CPU torch)" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  # shellcheck disable=SC2086 # one word per package (none holds a glob character)
  "$VENV/bin/pip" install -q --disable-pip-version-check -c constraints.txt $PACKAGES >&2
  echo "$PACKAGES" >"$VENV/.packages"
fi
echo "$VENV/bin/python"
