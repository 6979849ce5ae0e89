"""Checkpoints, written atomically: every learner rank writes into a hidden temporary folder, the
driver adds trainer_state.json, then one rename publishes it. A crash mid-write leaves only a
`.tmp` folder that `latest()` ignores.

    RUN_DIR/checkpoints/step_000020/
        policy/            Hugging Face save_pretrained (config, safetensors) + tokenizer
        deepspeed/         optimizer and engine state (all ranks)
        rng_rank*.pt       torch / numpy / python RNG per rank
        trainer_state.json stage, step, data position, held-out accuracies so far
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def step_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:06d}"


def begin(run_dir: Path, step: int) -> Path:
    tmp = run_dir / "checkpoints" / f".step_{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def commit(tmp: Path, final: Path, state: dict[str, Any]) -> Path:
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))
    if final.exists():  # a checkpoint of the same step from an earlier attempt
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def latest(run_dir: Path) -> Path | None:
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob("step_*") if (p / "trainer_state.json").is_file())
    return done[-1] if done else None


def read_state(ckpt: Path) -> dict[str, Any]:
    return json.loads((ckpt / "trainer_state.json").read_text())
