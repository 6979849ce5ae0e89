"""Weight sync, learner -> rollout engines: bucketing shared by both sides, the transports, and
the factories that pick one by the config's `sync.type` (here, so that no transport module
imports another):

    transport(type, ...)  "auto" resolved: "ipc" on one machine without GPUs, else "broadcast"
    make_sender(type)  the learner's half: "broadcast" (gloo on CPU, NCCL on GPU) or "ipc"
    receiver(type)     the engine's half (`RolloutEngine.init_weight_group` / `receive_weights`)
"""

from __future__ import annotations

from typing import Any

from rlcore.sync.broadcast import BroadcastSender, WeightSender, receive_buckets
from rlcore.sync.buckets import Bucket, BucketEntry, ParamMeta, param_meta, plan_buckets
from rlcore.sync.group import SyncGroup, backend_for, init_stateless_group
from rlcore.sync.ipc import IPCSender, receive_buckets_ipc

SENDERS: dict[str, type[WeightSender]] = {"broadcast": BroadcastSender, "ipc": IPCSender}


def transport(
    type: str,  # noqa: A002 - config key
    gpus: bool,
    hosts: set[str],
    shm_free: int = 1 << 62,
    shm_need: int = 0,
) -> str:
    """`sync.type` with "auto" resolved, for a run with or without `gpus` whose learner rank 0
    and engines run on `hosts`: shared memory on one CPU machine (no wire, no copy: the engines
    load from the learner's buffer, docs/benchmarks.md) when its /dev/shm has twice `shm_need`
    (the sender's buffer, the whole model) free in `shm_free` (a container's 64 MiB default may
    not: writing past a full tmpfs kills the writer); broadcast across machines, and on GPUs
    (CUDA IPC needs the learner and the engines on one GPU)."""
    if type != "auto":
        return type
    one_cpu_machine = not gpus and len(hosts) == 1
    return "ipc" if one_cpu_machine and shm_free >= 2 * shm_need else "broadcast"


def make_sender(type: str = "broadcast", **kwargs: Any) -> WeightSender:  # noqa: A002 - config key
    """The learner's sender for `sync.type`: "broadcast" or "ipc" (rlcore/sync/ipc.py)."""
    if type not in SENDERS:
        raise ValueError(f"unknown sync.type {type!r}; known: {sorted(SENDERS)}")
    return SENDERS[type](**kwargs)


def receiver(type: str = "broadcast") -> tuple[str | None, object]:  # noqa: A002 - config key
    """The engine's half of `sync.type`: (group backend, None = the device's; receive function)."""
    if type == "ipc":
        return "gloo", receive_buckets_ipc
    if type == "broadcast":
        return None, receive_buckets
    raise ValueError(f"unknown sync.type {type!r}; known: broadcast, ipc")


__all__ = [
    "Bucket",
    "BucketEntry",
    "BroadcastSender",
    "IPCSender",
    "ParamMeta",
    "SyncGroup",
    "WeightSender",
    "backend_for",
    "init_stateless_group",
    "make_sender",
    "param_meta",
    "plan_buckets",
    "receive_buckets",
    "receiver",
    "transport",
]
