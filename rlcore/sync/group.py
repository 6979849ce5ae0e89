"""A process group for weight sync that lives outside torch.distributed's global state.

The learner (DeepSpeed) and the vLLM engine each already own a default process group, so the sync
group between them must be "stateless": its own TCPStore rendezvous and its own gloo/NCCL backend
object, touching neither side's world. This mirrors
`vllm.distributed.utils.stateless_init_torch_distributed_process_group` (same store, same key
prefix `tcp://host:port`), so a process that uses vLLM's helper and one that uses this torch-only
one join the same group; the sender and the transformers engine never need vLLM installed.

Ports: rank 0 (the sender) listens on `master_port`; every receiver connects to it. The backend
(NCCL, gloo) then opens its own ephemeral connections between the ranks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
from torch.distributed import BroadcastOptions, PrefixStore, TCPStore

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = timedelta(minutes=10)


def backend_for(device: torch.device | str) -> str:
    """NCCL for CUDA tensors, gloo otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def store_prefix(host: str, port: int) -> str:
    """The key prefix vLLM's stateless helper uses (`get_tcp_uri`), so both helpers interoperate."""
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


@dataclass
class SyncGroup:
    """A joined group: the c10d backend plus the store it needs alive (gloo reads it lazily)."""

    backend: Any
    store: TCPStore
    rank: int
    world_size: int

    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> None:
        """In-place broadcast of `tensor` from group rank `src`; waits for completion."""
        opts = BroadcastOptions()
        opts.rootRank = src
        opts.rootTensor = 0
        self.backend.broadcast([tensor], opts).wait()

    def barrier(self) -> None:
        """Returns once every member has called it."""
        from torch.distributed import BarrierOptions

        self.backend.barrier(BarrierOptions()).wait()


def init_stateless_group(
    host: str,
    port: int,
    rank: int,
    world_size: int,
    backend: str,
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> SyncGroup:
    """Joins (rank 0: creates) a group of `world_size` processes; blocks until all have joined.

    `timeout` bounds both the rendezvous and every collective (a dead peer raises, not hangs).
    """
    store = TCPStore(host, port, world_size, is_master=(rank == 0), timeout=timeout)
    prefixed = PrefixStore(store_prefix(host, port), store)
    if backend == "gloo":
        from torch.distributed import ProcessGroupGloo

        pg = ProcessGroupGloo(prefixed, rank, world_size, timeout)
    elif backend == "nccl":
        from torch.distributed import ProcessGroupNCCL

        opts = ProcessGroupNCCL.Options()
        opts._timeout = timeout
        pg = ProcessGroupNCCL(prefixed, rank, world_size, opts)
    else:
        raise ValueError(f"weight-sync backend must be 'gloo' or 'nccl', got {backend!r}")
    pg._set_sequence_number_for_group()  # as vLLM's helper does, so both sides match
    log.info("weight-sync group: rank %d/%d on %s:%d (%s)", rank, world_size, host, port, backend)
    return SyncGroup(pg, store, rank, world_size)
