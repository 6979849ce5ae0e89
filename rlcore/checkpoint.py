"""Checkpoints, written atomically: every learner rank writes into a hidden temporary folder, the
driver adds manifest.json (every file's size and SHA-256) and trainer_state.json, then one rename
publishes it. A crash mid-write leaves only a `.tmp` folder that `latest()` ignores; a checkpoint
damaged later (a truncated or altered file, a file gone) fails its manifest, and `latest()` falls
back to the newest good one with a warning.

    RUN_DIR/checkpoints/step_000020/
        policy/            Hugging Face save_pretrained (config, safetensors) + tokenizer
        deepspeed/         optimizer and engine state (all ranks)
        rng_rank*.pt       torch / numpy / python RNG per rank
        manifest.json      relative path -> [size, sha256] of every other file
        trainer_state.json stage, step, data position, held-out accuracies so far (written last)
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


def step_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:06d}"


def begin(run_dir: Path, step: int) -> Path:
    tmp = run_dir / "checkpoints" / f".step_{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def commit(tmp: Path, final: Path, state: dict[str, Any]) -> Path:
    files = {str(p.relative_to(tmp)): fingerprint(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
    (tmp / MANIFEST).write_text(json.dumps(files, indent=1))
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))
    if final.exists():  # a checkpoint of the same step from an earlier attempt
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def latest(run_dir: Path) -> Path | None:
    """The newest checkpoint that passes `problem()`; a newer damaged one is skipped, warned of."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return None
    for ckpt in sorted(root.glob("step_*"), reverse=True):
        why = problem(ckpt)
        if why is None:
            return ckpt
        log.warning("checkpoint %s is damaged (%s); trying the one before it", ckpt.name, why)
    return None


def problem(ckpt: Path) -> str | None:
    """What is wrong with a published checkpoint, or None. Checked: trainer_state.json parses,
    and every file in the manifest is there with its size and hash (a checkpoint written before
    manifests existed is checked for its state file only)."""
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
    except (OSError, ValueError) as e:
        return f"trainer_state.json: {type(e).__name__}"
    try:
        files = json.loads((ckpt / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        return f"{MANIFEST}: {type(e).__name__}"
    for rel, (size, digest) in files.items():
        path = ckpt / rel
        if not path.is_file():
            return f"{rel} is missing"
        if path.stat().st_size != size:
            return f"{rel} has {path.stat().st_size} bytes, not {size}"
        if fingerprint(path)[1] != digest:
            return f"{rel} does not match its SHA-256"
    return None


def fingerprint(path: Path) -> tuple[int, str]:
    with path.open("rb") as f:
        return path.stat().st_size, hashlib.file_digest(f, "sha256").hexdigest()


def read_state(ckpt: Path) -> dict[str, Any]:
    return json.loads((ckpt / "trainer_state.json").read_text())


def prune(run_dir: Path, keep: int, protect: set[str]) -> list[str]:
    """Delete all but the `keep` newest published checkpoints (keep <= 0: keep all); the names in
    `protect` (the KL reference's step) are never deleted. Returns the deleted names."""
    if keep <= 0:
        return []
    done = sorted((run_dir / "checkpoints").glob("step_*"))
    old = [p for p in done[:-keep] if p.name not in protect]
    for p in old:
        shutil.rmtree(p)
    return [p.name for p in old]


INFLIGHT = "inflight.pt"  # an async run's next batch, sampled before the checkpoint (resume)


def save(
    cluster: Any,
    run_dir: Path,
    step: int,
    state: dict[str, Any],
    tokenizer: Any,
    inflight: Any = None,
) -> Path:
    """Every learner (and critic) rank's state, the tokenizer, an async run's batch in flight and
    `state`, published as RUN_DIR/checkpoints/step_N; older ones beyond checkpoint_keep go (the
    KL reference's checkpoint stays)."""
    tmp = begin(run_dir, step)
    cluster.learners.call("save", str(tmp))
    if inflight is not None:
        import torch

        torch.save(inflight, tmp / INFLIGHT)
    if cluster.critics is not None:
        cluster.critics.call("save", str(tmp))
    tokenizer.save_pretrained(tmp / "policy")
    path = commit(tmp, step_dir(run_dir, step), state)
    log.info("checkpoint: %s", path)
    keep = cluster.cfg.checkpoint_keep
    gone = prune(run_dir, keep, {state.get("reference", ""), path.name})
    if gone:
        log.info("checkpoint_keep=%d: deleted %s", keep, ", ".join(gone))
    return path


def reference_path(run_dir: Path, state: dict[str, Any]) -> Path:
    """The policy RL's KL reference is (the SFT weights: checkpoint step 0 of a cold start)."""
    return run_dir / "checkpoints" / state["reference"] / "policy"
