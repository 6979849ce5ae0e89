"""Weight sync by collective broadcast: the learner's rank 0 streams flat buckets to every engine.

Sender (learner rank 0, group rank 0) and receivers (one per rollout engine worker, ranks 1..N)
call their halves at the same time; each bucket is one broadcast. Transport: gloo on CPU, NCCL on
GPU, chosen from the device of the tensors. Nothing but the small metadata list travels through
the driver.

    sender.init_group(addr, port, world_size)  ||  engine.init_weight_group(addr, port, rank, world_size)
    sender.send(model.named_parameters(), B)    ||  engine.receive_weights(param_meta(model), B)
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import torch

from rlcore.sync.buckets import (
    BucketPlanner,
    ParamMeta,
    dtype_to_str,
    pack_bucket,
    plan_buckets,
    unpack_bucket,
)
from rlcore.sync.digest import tensor_digest
from rlcore.sync.group import DEFAULT_TIMEOUT, SyncGroup, backend_for, init_stateless_group

log = logging.getLogger(__name__)


class WeightSender(ABC):
    """The learner side of one weight-sync transport (`sync.type` picks the implementation)."""

    @abstractmethod
    def init_group(self, master_addr: str, master_port: int, world_size: int) -> None:
        """Joins the transport with the receivers; blocks until every receiver has joined."""

    @abstractmethod
    def send(
        self,
        named_tensors: Iterable[tuple[str, torch.Tensor]],
        bucket_bytes: int,
        digest: bool = False,
    ) -> dict[str, Any]:
        """Streams the tensors, in the order of the receivers' metadata; returns metrics, and
        with `digest` each tensor's digest under "digests" (rlcore/sync/digest.py)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases the transport."""


class BroadcastSender(WeightSender):
    """Group rank 0 of a stateless gloo/NCCL group; see the module docstring."""

    def __init__(self, device: torch.device | str = "cpu", timeout: timedelta = DEFAULT_TIMEOUT):
        self.device = torch.device(device)
        self.timeout = timeout
        self.group: SyncGroup | None = None
        self._scratch: torch.Tensor | None = None

    def init_group(self, master_addr: str, master_port: int, world_size: int) -> None:
        self.group = init_stateless_group(
            master_addr, master_port, 0, world_size, backend_for(self.device), self.timeout
        )

    def send(
        self,
        named_tensors: Iterable[tuple[str, torch.Tensor]],
        bucket_bytes: int,
        digest: bool = False,
    ) -> dict[str, Any]:
        if self.group is None:
            raise RuntimeError("BroadcastSender.send called before init_group")
        start = time.perf_counter()
        planner = BucketPlanner(self._bucket_bytes(bucket_bytes))
        pending: list[torch.Tensor] = []  # tensors of the open bucket, in entry order
        nbytes = nbuckets = 0
        digests: dict[str, str] = {}
        for name, tensor in named_tensors:
            if digest:
                digests[name] = tensor_digest(tensor)
            closed = planner.add(name, dtype_to_str(tensor.dtype), tuple(tensor.shape))
            if closed is not None:
                nbytes += self._send_bucket(closed, pending[: len(closed.entries)])
                pending = pending[len(closed.entries) :]
                nbuckets += 1
            pending.append(tensor)
        last = planner.flush()
        if last is not None:
            nbytes += self._send_bucket(last, pending)
            nbuckets += 1
        seconds = time.perf_counter() - start
        log.info(
            "weight sync sent %.1f MiB in %d buckets, %.3f s", nbytes / 2**20, nbuckets, seconds
        )
        out: dict[str, Any] = {
            "bytes": float(nbytes),
            "seconds": seconds,
            "buckets": float(nbuckets),
        }
        if digest:
            out["digests"] = digests
        return out

    def _bucket_bytes(self, bucket_bytes: int) -> int:
        """The bucket size this transport plans with (both sides must agree on it)."""
        return bucket_bytes

    def _send_bucket(self, bucket, tensors: Sequence[torch.Tensor]) -> int:
        # One reusable buffer (grown to the largest bucket): the broadcast has completed before
        # the next bucket is packed, and fresh memory would cost page faults on every sync.
        if self._scratch is None or self._scratch.numel() < bucket.nbytes:
            self._scratch = torch.empty(bucket.nbytes, dtype=torch.uint8, device=self.device)
        buf = pack_bucket(bucket, tensors, self.device, scratch=self._scratch)
        self.group.broadcast(buf, src=0)  # type: ignore[union-attr]
        return bucket.nbytes

    def close(self) -> None:
        self.group = None
        self._scratch = None


def receive_buckets(
    group: SyncGroup, meta: Sequence[ParamMeta], bucket_bytes: int, device: torch.device | str
) -> Iterator[tuple[str, torch.Tensor]]:
    """Receiver half: yields (name, tensor) as buckets arrive (lazily: pull to receive).

    Each yielded tensor is a view into its bucket's buffer; a fresh buffer is allocated per
    bucket, so earlier tensors stay valid while later buckets arrive.
    """
    for bucket in plan_buckets(meta, bucket_bytes):
        buf = torch.empty(bucket.nbytes, dtype=torch.uint8, device=device)
        group.broadcast(buf, src=0)
        yield from unpack_bucket(bucket, buf)
