"""Weight sync by shared memory between processes on ONE machine (`sync.type: ipc`): the learner
packs each bucket into a shared buffer and sends only a handle; every engine maps the same memory,
copies the bucket out and releases the sender, which packs the next bucket while this one loads. On GPUs the buffer is CUDA memory and the handle a CUDA IPC handle (the learner
and the engines must share the GPU: colocated); on CPU it is a shared-memory file.

Control channel: a stateless gloo group (rank 0 = the learner), whatever the device: per bucket,
the pickled handle is broadcast (its length, then its bytes), the receivers copy the bucket out, and
a barrier tells the sender it may overwrite its buffer with the next bucket.

    sender.init_group(addr, port, world_size)  ||  init_stateless_group(addr, port, rank, world, "gloo")
    sender.send(named_tensors, B)               ||  for name, t in receive_buckets_ipc(group, meta, B)

The receiver gets a private copy (one memcpy per bucket instead of a trip through a collective).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator, Sequence
from datetime import timedelta
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import torch
from torch.multiprocessing.reductions import reduce_tensor

from rlcore.sync.broadcast import BroadcastSender
from rlcore.sync.buckets import (
    ParamMeta,
    pack_bucket,
    plan_buckets,
    unpack_bucket,
)
from rlcore.sync.group import DEFAULT_TIMEOUT, SyncGroup, init_stateless_group

log = logging.getLogger(__name__)


def _shared_buffer(nbytes: int, device: torch.device) -> tuple[torch.Tensor, bytes, Any]:
    """A uint8 buffer other processes can map, its pickled handle, and what keeps it alive.
    CUDA: the tensor's CUDA IPC handle. CPU: a named POSIX shared-memory segment."""
    if device.type == "cuda":
        buf = torch.empty(nbytes, dtype=torch.uint8, device=device)
        return buf, pickle.dumps(("cuda", reduce_tensor(buf))), None
    shm = SharedMemory(create=True, size=nbytes)
    buf = torch.frombuffer(shm.buf, dtype=torch.uint8, count=nbytes)
    return buf, pickle.dumps(("shm", shm.name, nbytes)), shm


def _map_buffer(handle: bytes) -> tuple[torch.Tensor, Any]:
    kind, *rest = pickle.loads(handle)  # noqa: S301 - from our own learner rank, not users
    if kind == "cuda":
        fn, args = rest[0]
        return fn(*args), None
    name, nbytes = rest
    shm = SharedMemory(name=name)
    # the creator owns the segment: this process must not unlink it when it exits
    resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
    return torch.frombuffer(shm.buf, dtype=torch.uint8, count=nbytes), shm


def _broadcast_bytes(group: SyncGroup, data: bytes | None) -> bytes:
    size = torch.tensor([len(data) if data is not None else 0], dtype=torch.int64)
    group.broadcast(size, src=0)
    payload = torch.empty(int(size.item()), dtype=torch.uint8)
    if data is not None:
        payload.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    group.broadcast(payload, src=0)
    return payload.numpy().tobytes()


class IPCSender(BroadcastSender):
    """Group rank 0; one shared buffer (the largest bucket), rewritten bucket after bucket. The
    bucket planning is BroadcastSender's; only the transport of a bucket differs."""

    def __init__(self, device: torch.device | str = "cpu", timeout: timedelta = DEFAULT_TIMEOUT):
        super().__init__(device, timeout)
        self._buf: torch.Tensor | None = None
        self._handle: bytes = b""
        self._keep: Any = None  # the CPU shared-memory segment behind _buf

    def init_group(self, master_addr: str, master_port: int, world_size: int) -> None:
        self.group = init_stateless_group(
            master_addr, master_port, 0, world_size, "gloo", self.timeout
        )

    def _send_bucket(self, bucket, tensors: Sequence[torch.Tensor]) -> int:
        if self._buf is None or self._buf.numel() < bucket.nbytes:
            self._release()
            self._buf, self._handle, self._keep = _shared_buffer(bucket.nbytes, self.device)
        pack_bucket(bucket, tensors, self.device, scratch=self._buf)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the receivers read it from another process
        assert self.group is not None
        _broadcast_bytes(self.group, self._handle)
        self.group.barrier()  # every receiver has loaded this bucket
        return bucket.nbytes

    def _release(self) -> None:
        self._buf = None
        if self._keep is not None:
            self._keep.close()
            self._keep.unlink()
            self._keep = None

    def close(self) -> None:
        super().close()
        self._release()


def receive_buckets_ipc(
    group: SyncGroup, meta: Sequence[ParamMeta], bucket_bytes: int, device: torch.device | str
) -> Iterator[tuple[str, torch.Tensor]]:
    """Receiver half: yields (name, tensor) views into the sender's shared buffer, bucket by bucket.
    `device` is where the caller wants them; a CPU receiver of a CUDA sender is not supported."""
    handle, keep = b"", None
    mapped = buf = torch.empty(0, dtype=torch.uint8)
    for bucket in plan_buckets(meta, bucket_bytes):
        new = _broadcast_bytes(group, None)
        if new != handle:  # the sender reuses its buffer: map it once (again when it grew)
            mapped = buf = torch.empty(0, dtype=torch.uint8)  # drop views before unmapping
            if keep is not None:
                keep.close()
            handle, (mapped, keep) = new, _map_buffer(new)
        # One copy of the whole bucket into fresh memory, then the barrier: the sender packs the
        # next bucket while this one loads (a loader may keep what it is given, as vLLM does for
        # some weights, and the sender overwrites the shared buffer with the next bucket).
        buf = mapped[: bucket.nbytes].to(device, copy=True)
        group.barrier()
        yield from unpack_bucket(bucket, buf)
    del mapped, buf
    if keep is not None:
        keep.close()
