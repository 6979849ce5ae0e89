#!/usr/bin/env bash
# The training part of the GPU check, for a machine with NVIDIA GPUs and rlcore installed with the
# `gpu` extra (pip install -e ".[gpu,dev]": Ray, vLLM, DeepSpeed). benchmarks/gpu_check.sh runs it
# after benchmarks/gpu_check.py where those import; it installs nothing and downloads nothing:
#   1. the gpu-marked tests (Triton logprob kernel; NCCL sync when there are two GPUs),
#   2. a few GRPO steps of the embedded tiny model on the GPU(s) (vLLM engine, DeepSpeed learner),
#   3. a table of rollout tokens/s, learner tokens/s and weight-sync seconds per step.
#
#   bash benchmarks/gpu_check_train.sh [OUT_DIR]          # default OUT_DIR: runs/gpu_check-<time>
#   bash benchmarks/gpu_check_train.sh --table RUN_DIR    # only the table, for any finished run
#
# Placement: with 2+ GPUs the learner takes one and the engine another (NCCL broadcast sync, the
# cluster layout). With ONE GPU they must share it, which NCCL forbids: the run uses
# sync.type=ipc (CUDA IPC, colocated) when this tree has it, and is skipped with a note otherwise.
# Environment: PY (python), STEPS (8), ENGINE (auto), PART_TIMEOUT (seconds per part, 240).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
STEPS=${STEPS:-8}
ENGINE=${ENGINE:-auto}
PART_TIMEOUT=${PART_TIMEOUT:-240}

table() {  # RUN_DIR [JSON_OUT]
  "$PY" - "$@" <<'PY'
"""Per-step throughput from a run's metrics.jsonl and config.yaml (response tokens only)."""
import json, sys
from pathlib import Path

import yaml

run = Path(sys.argv[1])
cfg = yaml.safe_load((run / "config.yaml").read_text())
n = cfg["rollout"]["n"]
rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
rows = [r for r in rows if r.get("stage") == "rl"]
if not rows:
    sys.exit(f"{run}/metrics.jsonl has no RL steps")
head = f"{'step':>4} {'rollout tok/s':>13} {'learner tok/s':>13} {'sync s':>7} {'reward':>6}"
print(head + "\n" + "-" * len(head))
out = []
for r in rows:
    sampled = r.get("sample_rounds", 1.0) * cfg["rollout"]["prompts_per_step"] * n
    trained = r.get("groups_kept", cfg["rollout"]["prompts_per_step"]) * n
    row = {
        "step": r["step"],
        "rollout_tok_s": sampled * r["response_len"] / max(r["time_rollout"], 1e-9),
        "learner_tok_s": trained * r["response_len"] / max(r["time_learn"], 1e-9),
        "sync_s": r["time_sync"],
        "reward": r["reward_mean"],
    }
    out.append(row)
    print(f"{row['step']:>4} {row['rollout_tok_s']:>13,.0f} {row['learner_tok_s']:>13,.0f} "
          f"{row['sync_s']:>7.3f} {row['reward']:>6.2f}")
steady = out[1:] or out  # step 1 pays for compilation and warm-up
mean = {k: sum(r[k] for r in steady) / len(steady) for k in ("rollout_tok_s", "learner_tok_s", "sync_s")}
print(f"mean of steps {steady[0]['step']}-{steady[-1]['step']}: rollout {mean['rollout_tok_s']:,.0f} tok/s, "
      f"learner {mean['learner_tok_s']:,.0f} tok/s, sync {mean['sync_s']:.3f} s")
if len(sys.argv) > 2:
    Path(sys.argv[2]).write_text(json.dumps({"steps": out, "mean": mean}, indent=1))
PY
}

step() { printf '\n== %s\n' "$*"; }

if [ "${1:-}" = "--table" ]; then
  table "${2:?usage: gpu_check_train.sh --table RUN_DIR}"
  exit 0
fi

OUT=${1:-runs/gpu_check-$(date +%Y%m%d-%H%M%S)}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_NO_INDEX=1 RAY_USAGE_STATS_ENABLED=0 \
  VLLM_NO_USAGE_STATS=1 TOKENIZERS_PARALLELISM=false
if ! command -v nvidia-smi >/dev/null; then
  echo "gpu_check: no nvidia-smi here; this check needs an NVIDIA GPU and its driver" >&2
  exit 2
fi
mkdir -p "$OUT"
START=$(date +%s)
step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
NGPU=$(nvidia-smi -L | grep -c '^GPU' || true)
"$PY" - <<'PY' | tee "$OUT/versions.txt"
import sys
import torch
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), GPUs visible: {torch.cuda.device_count()}")
try:
    import vllm
    print(f"vllm {vllm.__version__}")
except Exception as e:  # the run falls back to the transformers engine
    print(f"vllm not importable ({type(e).__name__}): the run uses rollout.engine=hf")
if not torch.cuda.is_available():
    sys.exit("torch sees no GPU: install a CUDA build of torch (pip install -e '.[gpu]')")
PY

step "1/3 gpu-marked tests"
set +e
timeout "$PART_TIMEOUT" "$PY" -m pytest -m gpu -q -o addopts="" -p no:cacheprovider tests \
  >"$OUT/pytest_gpu.txt" 2>&1
TESTS_RC=$?
set -e
tail -n 15 "$OUT/pytest_gpu.txt"

step "2/3 GRPO steps of the tiny model on the GPU"
# the tiny base is pretrained once and cached (~1-3 min on CPU the first time)
"$PY" -m rlcore.models.tiny >/dev/null
if [ "$NGPU" -ge 2 ]; then
  PLACE=(gpus=2 learner.gpus_per_rank=1)
  echo "layout: learner on one GPU, engine on another (NCCL broadcast sync)"
elif "$PY" -c "from rlcore.config import load_config; load_config(None, ['sync.type=ipc', 'learner.gpus_per_rank=1'])" 2>/dev/null; then
  # the engine asks Ray for no GPU, so it sees (and shares) the learner's one
  PLACE=(gpus=0 learner.gpus_per_rank=1 sync.type=ipc rollout.gpu_memory_utilization=0.3)
  echo "layout: learner and engine share the one GPU (CUDA IPC sync)"
else
  PLACE=()
  echo "skipped: one GPU, and this tree has no colocated sync (sync.type=ipc) yet; NCCL needs a"
  echo "GPU per rank. Run on a 2-GPU machine for the training part."
fi
TRAIN_RC=0
if [ ${#PLACE[@]} -gt 0 ]; then
  set +e
  timeout "$PART_TIMEOUT" "$PY" -m rlcore.launch.cli train configs/tiny_zero.yaml "steps=$STEPS" \
    "${PLACE[@]}" "rollout.engine=$ENGINE" checkpoint_every=1000 "run_dir=$OUT/run" -q \
    >"$OUT/train.txt" 2>&1
  TRAIN_RC=$?
  set -e
  tail -n 12 "$OUT/train.txt"
fi

step "3/3 throughput per step (response tokens; step 1 includes warm-up)"
if [ -s "$OUT/run/metrics.jsonl" ]; then
  table "$OUT/run" "$OUT/throughput.json"
else
  echo "no metrics (see $OUT/train.txt)"
fi

echo
echo "gpu tests: exit $TESTS_RC; training: exit $TRAIN_RC; $(($(date +%s) - START)) s; files in $OUT"
[ "$TESTS_RC" -eq 0 ] && [ "$TRAIN_RC" -eq 0 ]
