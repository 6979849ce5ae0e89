#!/usr/bin/env bash
# The GPU check, for a machine with one CUDA GPU and rlcore installed with the `gpu` extra
# (pip install -e ".[gpu,dev]"). Installs nothing; runs in a few minutes:
#   1. the gpu-marked tests (vLLM CUDA engine, NCCL sync),
#   2. a few GRPO steps of the embedded default on the GPU (vLLM engine, learner on cuda:0),
#   3. prints rollout / learner / sync seconds per step from the run's metrics.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-runs/gpu_check}}
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"

$PY -m pytest -m gpu -q -o addopts="" tests 2>&1 | tee "$OUT/pytest_gpu.txt" || true

$PY -m rlcore.launch.cli train configs/tiny_coldstart.yaml steps=5 gpus=1 learner.gpus_per_rank=1 \
    rollout.engine=vllm run_dir="$OUT/run" -q 2>&1 | tail -n 20 | tee "$OUT/train.txt"

$PY - "$OUT/run/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"stage": "rl"' in l]
print(f"{'step':>4} {'rollout_s':>9} {'verify_s':>8} {'learn_s':>7} {'sync_s':>6} {'reward':>6}")
for r in rows:
    print(f"{r['step']:>4} {r['time_rollout']:>9.2f} {r['time_verify']:>8.2f} {r['time_learn']:>7.2f} "
          f"{r['time_sync']:>6.2f} {r['reward_mean']:>6.2f}")
PY
