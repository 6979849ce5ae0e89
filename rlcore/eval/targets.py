"""What a CHECKPOINT argument names, and what a model needs to be sampled: its window, stop
tokens and prompt format.

A target is a Hugging Face model folder, a run checkpoint (RUN/checkpoints/step_N or its policy/),
a run directory (every finished checkpoint, filtered by `every`, plus the starting model, labelled
`start`, as step 0),
or an embedded model name (tiny-base, ... as rlcore.rundir.resolve_model_path knows them).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlcore.eval.suite import SuiteConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    label: str  # folder name of its results: step_000050, tiny-base, ...
    model_path: str  # a resolved Hugging Face model folder
    step: int | None = None
    run_dir: Path | None = None


def _step(p: Path) -> int | None:
    m = re.fullmatch(r"step_(\d+)", p.name)
    return int(m.group(1)) if m else None


def resolve_targets(arg: str, every: int = 0, base: bool = True) -> list[Target]:
    """What one CHECKPOINT argument names (see the module docstring)."""
    from rlcore.rundir import resolve_model_path

    p = Path(arg)
    if not p.exists():  # an embedded model name
        try:
            return [Target(arg, resolve_model_path(arg))]
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{arg}: no such model folder, run checkpoint or run directory, and not an "
                "embedded model name (tiny-base, smollm2-135m-instruct)"
            ) from None
    if (p / "policy" / "config.json").is_file():  # RUN/checkpoints/step_N
        p = p / "policy"
    if (p / "config.json").is_file():
        ckpt = p.parent if p.name == "policy" else None
        if ckpt is not None and ckpt.parent.name == "checkpoints" and _step(ckpt) is not None:
            return [Target(ckpt.name, str(p.resolve()), _step(ckpt), ckpt.parent.parent.resolve())]
        return [Target(p.resolve().name, resolve_model_path(str(p)))]
    if (p / "checkpoints").is_dir() or (p / "config.yaml").is_file():
        return _run_targets(p.resolve(), every, base)
    raise FileNotFoundError(
        f"{arg}: not a model folder (no config.json), a run checkpoint or a run directory"
    )


def _run_targets(run: Path, every: int, base: bool) -> list[Target]:
    from rlcore import checkpoint

    found = [(_step(c), c) for c in sorted((run / "checkpoints").glob("step_*"))]
    done = [(s, c) for s, c in found if s is not None and (c / "trainer_state.json").is_file()]
    last = checkpoint.latest(run)
    out = [
        Target(c.name, str(c / "policy"), s, run)
        for s, c in done
        if not every or s % every == 0 or c == last
    ]
    start = _run_config(run).get("model", {}).get("path")
    if base and start:
        from rlcore.rundir import resolve_model_path

        try:
            # "start", not step_000000: after a cold start that name is the SFT checkpoint's
            out.insert(0, Target("start", resolve_model_path(str(start)), 0, run))
        except FileNotFoundError as e:
            log.warning("%s: the starting model is not available (%s); not evaluated", run, e)
    if not out:
        raise FileNotFoundError(f"{run}: a run directory without finished checkpoints")
    return out


def model_window(model_path: str, cap: int) -> int:
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_path)
    window = int(getattr(c, "max_position_embeddings", 0) or getattr(c, "n_positions", 2048))
    return min(window, cap) if cap else window


def stop_token_ids(tokenizer: Any, model_path: str) -> tuple[int, ...]:
    """EOS ids of the model config, its generation config (a chat model's end of turn) and the
    tokenizer."""
    from transformers import AutoConfig, GenerationConfig

    found = [AutoConfig.from_pretrained(model_path).eos_token_id, tokenizer.eos_token_id]
    if (Path(model_path) / "generation_config.json").is_file():
        found.append(GenerationConfig.from_pretrained(model_path).eos_token_id)
    ids: list[int] = []
    for eos in found:
        for i in eos if isinstance(eos, list) else [eos]:
            if i is not None and i not in ids:
                ids.append(i)
    return tuple(ids)


def _run_config(run: Path | None) -> dict[str, Any]:
    """A run directory's resolved config.yaml as plain data ({} when there is none)."""
    import yaml

    path = run / "config.yaml" if run is not None else None
    if path is None or not path.is_file():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def prompt_format(cfg: SuiteConfig, target: Target) -> tuple[str, str]:
    """The suite's prompt format, else the run's (a zero-style run prompts raw), else chat."""
    data = _run_config(target.run_dir).get("data", {})
    fmt = cfg.prompt_format or data.get("prompt_format", "chat")
    return fmt, cfg.raw_template or data.get("raw_template", "Q: {prompt}\nA:")
