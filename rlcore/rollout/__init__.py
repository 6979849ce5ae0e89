"""Rollout engines: token ids in, token ids + per-token logprobs out (see engine.py).

`make_engine("auto" | "vllm" | "hf", model_path, ...)`; the vLLM engine module is imported only
when chosen (importing it sets vLLM's CPU environment defaults, then imports vLLM).
"""

from rlcore.rollout.engine import Completion, RolloutEngine, SamplingParams, make_engine

__all__ = ["Completion", "RolloutEngine", "SamplingParams", "make_engine"]
