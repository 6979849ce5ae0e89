"""A run's directory and model path, and its summary file: what the CLI, `rlcore eval` and the trainer
share, without Ray (rlcore/cluster.py holds the actors)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rlcore.config import TrainConfig, to_yaml


def prepare_run_dir(cfg: TrainConfig) -> Path:
    """The run directory (resume: the given one), with the resolved config written into it."""
    if cfg.resume:
        run_dir = Path(cfg.resume)
        if not (run_dir / "config.yaml").is_file():
            raise FileNotFoundError(f"resume: {run_dir} is not a run directory (no config.yaml)")
    else:
        run_dir = Path(cfg.run_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}")
        if run_dir.exists() and any(run_dir.iterdir()):
            raise FileExistsError(
                f"run_dir: {run_dir} exists and is not empty (use resume={run_dir})"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    return run_dir.resolve()


EMBEDDED_MODELS = ("tiny-base", "smollm2-135m-instruct")


def resolve_model_path(path: str) -> str:
    """ "tiny-base" / "smollm2-135m-instruct" -> an embedded model (built or converted once, cached);
    else an existing HF folder."""
    if path == "tiny-base":
        from rlcore.models.tiny import tiny_base_path

        return str(tiny_base_path())
    if path == "smollm2-135m-instruct":
        from rlcore.models.smollm2 import smollm2_path

        return str(smollm2_path())
    p = Path(path)
    if not (p / "config.json").is_file():
        raise FileNotFoundError(
            f"model.path: {path} is not a Hugging Face model folder (no config.json); use "
            "model.path=tiny-base or model.path=smollm2-135m-instruct for an embedded model"
        )
    return str(p.resolve())


def resolve_verifier_models(options: dict[str, Any]) -> dict[str, Any]:
    """Verifier options with an embedded model name as `model_path` (judge: smollm2-135m-instruct)
    replaced by its folder: verifiers load local folders only and never import rlcore."""
    out = dict(options)
    for name, opts in options.items():
        if isinstance(opts, dict) and opts.get("model_path") in EMBEDDED_MODELS:
            out[name] = opts | {"model_path": resolve_model_path(opts["model_path"])}
    return out


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(run_dir / "summary.json")
