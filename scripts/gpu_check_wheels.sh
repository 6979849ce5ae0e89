#!/usr/bin/env bash
# Downloads what the GPU check (benchmarks/gpu_check.sh) carries to the GPU machine, which has no
# network, into benchmarks/gpu_check_wheels/ (git-ignored), then checks that they and the working tree
# fit in the 64 MiB one call may carry. Files already there are kept (no network needed then).
#
#   bash scripts/gpu_check_wheels.sh      # then carry benchmarks/gpu_check_wheels with the call
#
# The machine's image has Python 3.12, torch, triton, transformers, peft, accelerate, pyarrow, numpy,
# PyYAML, setuptools and wheel, but none of:
#   *.whl       omegaconf 2.4 (rlcore.config; it vendors its antlr4 runtime and needs only PyYAML).
#               benchmarks/gpu_check.py pip-installs these into a scratch folder on its path.
#   deepspeed/  DeepSpeed's sdist (it ships no wheel) and the wheels it needs that the image lacks:
#               hjson, pydantic with pydantic-core, annotated-types, typing-inspection and
#               typing-extensions (pydantic wants >= 4.16). The deepspeed check builds them offline
#               into a folder only its own process sees.
# Environment: PY (the python whose pip downloads; .venv/bin/python, which has torch: DeepSpeed's
# setup.py imports it to prepare the sdist's metadata), DEST.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEST=${DEST:-benchmarks/gpu_check_wheels}
LIMIT_MIB=64
WHEELS=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

fetch() {  # DIR FILE_PREFIX PIP_ARGS... : download unless a file FILE_PREFIX* is in DIR already
  local dir=$1 prefix=$2
  shift 2
  compgen -G "$dir/$prefix*" >/dev/null && return 0
  "$PY" -m pip download -q --disable-pip-version-check --no-deps -d "$dir" "$@"
}

mkdir -p "$DEST/deepspeed"
fetch "$DEST" omegaconf-2.4.0- "${WHEELS[@]}" omegaconf==2.4.0
for req in hjson==3.1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
  typing-inspection==0.4.5 typing-extensions==4.16.0; do
  name=${req%%==*}
  fetch "$DEST/deepspeed" "${name//-/_}-${req##*==}-" "${WHEELS[@]}" "$req"
done
fetch "$DEST/deepspeed" deepspeed-0.19.8. --no-binary=:all: --no-build-isolation deepspeed==0.19.8

# What travels: tracked and untracked-not-ignored files, plus the carried folder.
tree=$( (git ls-files -z -co --exclude-standard | xargs -0 stat -c %s 2>/dev/null || true) |
  awk '{s+=$1} END {print s+0}')
wheels=$(find "$DEST" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
awk -v t="$tree" -v w="$wheels" -v l="$LIMIT_MIB" 'BEGIN {
  m = 1048576
  printf "size: working tree %.2f MiB + wheels %.2f MiB = %.2f MiB of %d MiB\n", t/m, w/m, (t+w)/m, l
  exit ((t + w) > l * m)
}' || { echo "too large to carry: leave something out" >&2; exit 1; }
