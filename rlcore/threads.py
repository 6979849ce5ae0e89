"""CPU threads per actor: how many torch / OpenMP / MKL threads each role's actors get.

Ray starts every actor that asks for 0 or 1 CPUs with OMP_NUM_THREADS=1, so without this the
learner and the engine each compute on one core whatever the machine has (measured on 2 cores:
rlcore 1.26x slower than TRL on SmolLM2-135M). The driver decides a count per role and hands it to
the actor through its runtime environment (`env_vars`), so the OpenMP runtime reads it when torch
loads in the actor process; `apply()` then sets torch's pool from it and reports what it got.

Phases that run one after the other share nothing: in synchronous mode the engines generate while
the learners wait, and the other way round, so each role may use every core of its node. In async
mode (rollout.async_steps=1) the engines and the learners compute at the same time and split them.
resources.learner_threads / resources.rollout_threads override the plan (0 = plan).

The same runtime environment carries the allocator of the CPU learners and engines
(`resources.malloc`, `malloc_preload`): tcmalloc, preloaded, where the node has it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def node_cpus(cfg: Any) -> int:
    """The cores of one node the run's actors share: resources.cpus_per_node when declared, else
    this machine's (Ray's logical `num_cpus` may be set higher than the cores to fit actors)."""
    if cfg.resources.cpus_per_node:
        return int(cfg.resources.cpus_per_node)
    return len(os.sched_getaffinity(0))


def plan(cfg: Any, needs_critic: bool) -> dict[str, int]:
    """Threads per actor for the roles "learner" (and "critic"), "rollout" and "model_verifier"."""
    cpus = node_cpus(cfg)
    nodes = max(cfg.resources.nodes, 1)
    ranks = -(-cfg.learner.world_size // nodes) * (2 if needs_critic else 1)  # per node
    engines = -(-cfg.rollout.num_workers // nodes)
    learn_cpus, roll_cpus = cpus, cpus
    if cfg.rollout.async_steps:  # engines and learners run at once: split the node
        roll_cpus = max(cpus // 2, 1)
        learn_cpus = max(cpus - roll_cpus, 1)
    out = {
        "learner": max(learn_cpus // ranks, 1),
        "rollout": max(roll_cpus // engines, 1),
    }
    if cfg.resources.learner_threads:
        out["learner"] = cfg.resources.learner_threads
    if cfg.resources.rollout_threads:
        out["rollout"] = cfg.resources.rollout_threads
    out["critic"] = out["learner"]
    # model-based verifiers: every core when they score after generation; half of them when
    # verifier.overlap scores some engine parts while others still generate
    parts = cfg.rollout.num_workers * cfg.rollout.parts_per_engine
    mv = max(cpus // 2, 1) if cfg.verifier.overlap and parts > 1 else cpus
    out["model_verifier"] = max(mv // max(cfg.verifier.model_actors, 1), 1)
    return out


TCMALLOC = "libtcmalloc_minimal.so.4"  # Debian/Ubuntu: libtcmalloc-minimal4 (scripts/install.sh)


def runtime_env(threads: int, preload: str | None = None) -> dict[str, Any]:
    """Actor options: the thread count (and a library to preload) in the environment the actor's
    process starts with."""
    env = {k: str(threads) for k in THREAD_VARS}
    if preload:
        env["LD_PRELOAD"] = preload
    return {"runtime_env": {"env_vars": env}}


def malloc_preload(choice: str) -> str | None:
    """LD_PRELOAD for a CPU learner's, critic's or engine's process under `resources.malloc`.

    glibc's malloc hands a step's freed activations to its free lists in pieces and keeps them:
    a SmolLM2-135M learner (16 x 109 tokens) held 4.4 GiB between steps, of which 2.2 GiB was
    free memory (`malloc_trim` gave it back), and peaked at 5.2 GiB. tcmalloc peaked at 4.4 GiB and
    stepped 7% faster; jemalloc peaked at 4.0 GiB but stepped 8% slower, returning pages it then
    faulted back. In an engine it reuses the memory each weight sync copies into instead of
    faulting it in again: the load ~1.1 -> ~0.85 s, the engine's peak +0.3 GiB (docs/benchmarks.md).
    The name is resolved by the dynamic linker where the actor starts; a node without it prints
    one warning and runs on glibc."""
    if choice != "tcmalloc":
        return None
    import ctypes.util

    return TCMALLOC if ctypes.util.find_library("tcmalloc_minimal") else None


def apply() -> int:
    """In an actor: size torch's intra-op pool from OMP_NUM_THREADS; returns the count in use."""
    import torch

    want = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if want > 0 and torch.get_num_threads() != want:
        torch.set_num_threads(want)
    return torch.get_num_threads()


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread inside the block (the pool's size restored after): for work that runs
    while another process computes on the same cores, where two OpenMP pools slow both."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
