#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): what one call on a GPU machine can prove about rlcore's GPU
# paths, on that machine's python3 as it is, given this checkout and the carried wheels in
# benchmarks/gpu_check_wheels/ (scripts/gpu_check_wheels.sh downloads them). One call, at most 8
# minutes; writes OUT_DIR/gpu_check.json, gpu_check.txt (the tables) and gpu_check.log.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR] [gpu_check.py options]   # default runs/gpu_check-<time>
#
# Where rlcore is installed with the `gpu` extra (Ray and DeepSpeed import) and CUDA works, it then
# runs benchmarks/gpu_check_train.sh into OUT_DIR/train (gpu-marked tests, GRPO steps on Ray).
# Environment: PY (default .venv/bin/python, else python3). Exit status 1 if a check failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${1:-runs/gpu_check-$(date +%Y%m%d-%H%M%S)}
[ $# -gt 0 ] && shift

"$PY" benchmarks/gpu_check.py "$OUT" "$@"
rc=$?
if "$PY" -c "import ray, deepspeed, torch; assert torch.cuda.is_available()" 2>/dev/null; then
  PY="$PY" bash benchmarks/gpu_check_train.sh "$OUT/train" || rc=1
fi
exit "$rc"
