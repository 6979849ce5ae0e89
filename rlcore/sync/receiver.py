"""The engine side of weight sync, written once for every engine: `WeightReceiver`.

It is mixed into whatever holds one engine worker's model: vLLM's Worker (through
`RlcoreWorkerExtension`, rlcore/rollout/vllm_engine.py: one per tensor-parallel worker, reached by
`collective_rpc`) and the transformers engine itself (one worker, in its own process). The engine
(`RolloutEngine.init_weight_group` / `receive_weights`, rlcore/rollout/engine.py) calls these two
methods on each of its workers:

    rlcore_init_weight_group(addr, port, rank_offset, world_size, sync_type)  # join as a rank >= 1
    rlcore_receive_weights(meta, bucket_bytes)  # one sync -> {"seconds", "digests"}

What differs per engine is two hooks: how the group is joined (`_rlcore_join`: vLLM's own
stateless helper in vLLM's workers; the torch-only one otherwise, rlcore/sync/group.py) and how a
(name, tensor) stream is loaded into the model (`_rlcore_load`, which returns the digests of what it
loaded, rlcore/sync/digest.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import torch

from rlcore.sync import receiver
from rlcore.sync.buckets import ParamMeta
from rlcore.sync.group import SyncGroup, backend_for, init_stateless_group


class WeightReceiver:
    """One engine worker's membership of the weight-sync group. The host class provides `device`
    (where received tensors land) and `rank` (the worker's rank inside its engine: 0 without
    tensor parallelism), and implements `_rlcore_load`."""

    device: torch.device
    rank: int
    _rlcore_group: SyncGroup | None = None
    _rlcore_receive: Any = None  # the transport's receive function (rlcore.sync.receiver)

    def rlcore_init_weight_group(
        self,
        master_addr: str,
        master_port: int,
        rank_offset: int,
        world_size: int,
        sync_type: str = "broadcast",
    ) -> None:
        """Joins the group as rank `rank_offset + self.rank`; blocks until the whole group has."""
        rank = rank_offset + self.rank
        backend, self._rlcore_receive = receiver(sync_type)
        backend = backend or backend_for(self.device)
        self._rlcore_group = self._rlcore_join(master_addr, master_port, rank, world_size, backend)

    def rlcore_receive_weights(self, meta: list[ParamMeta], bucket_bytes: int) -> dict[str, Any]:
        """Receives one sync and loads it: {"seconds": receive + load, "digests": {name: digest}}.
        What the loader leaves is still received (the sender must finish) and shows as missing."""
        if self._rlcore_group is None:
            raise RuntimeError("receive_weights called before init_weight_group")
        start = time.perf_counter()
        stream = iter(self._rlcore_receive(self._rlcore_group, meta, bucket_bytes, self.device))
        digests = self._rlcore_load(stream)
        for _ in stream:  # drained: the transport must finish either way
            pass
        return {"seconds": time.perf_counter() - start, "digests": digests}

    def _rlcore_join(self, addr: str, port: int, rank: int, world: int, backend: str) -> SyncGroup:
        return init_stateless_group(addr, port, rank, world, backend)

    def _rlcore_load(self, weights: Iterator[tuple[str, torch.Tensor]]) -> dict[str, str]:
        """Loads (name, tensor) pairs into the model; returns {name: digest} of what it loaded."""
        raise NotImplementedError
