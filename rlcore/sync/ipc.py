"""Weight sync by shared memory between processes on ONE machine (`sync.type: ipc`): the learner
puts the weights in a shared buffer and sends only a handle; every engine maps the same memory and
loads from it.

CPU: one buffer holds the whole model (a POSIX shared-memory segment), so nothing in it is
overwritten while an engine reads: the engines load straight from it, no copy. Where the learner
keeps its parameters in that buffer (`IPCSender.host`: one CPU rank, the parameters moved there
once), a send copies nothing either: the engines read the learner's own weights, which stay still
because `WeightSync.push` returns only after every engine has loaded. The segment's name is
unlinked once every engine has mapped it (the first sync; they keep the mapping), so nothing is
left in /dev/shm when the processes end, however they end.
GPU: the buffer is CUDA memory, one bucket at a time, and the handle a CUDA IPC handle (the
learner and the engines must share the GPU: colocated); each engine copies a bucket out and
releases the sender, which packs the next bucket while this one loads.

Control channel: a stateless gloo group (rank 0 = the learner), whatever the device: per buffer,
the pickled handle is broadcast (its length, then its bytes), and a barrier tells the sender that
every engine is done with it.

    sender.init_group(addr, port, world_size)  ||  init_stateless_group(addr, port, rank, world, "gloo")
    sender.send(named_tensors, B)               ||  for name, t in receive_buckets_ipc(group, meta, B)
"""

from __future__ import annotations

import logging
import mmap
import os
import pickle
from collections.abc import Iterator, Sequence
from datetime import timedelta
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import torch
from torch.multiprocessing.reductions import reduce_tensor

from rlcore.sync.broadcast import BroadcastSender
from rlcore.sync.buckets import (
    ParamMeta,
    pack_bucket,
    param_meta,
    plan_buckets,
    unpack_bucket,
)
from rlcore.sync.group import DEFAULT_TIMEOUT, SyncGroup, init_stateless_group

log = logging.getLogger(__name__)

WHOLE = 1 << 62  # bucket bytes that put every tensor in one bucket (the CPU buffer)


def _shared_buffer(nbytes: int, device: torch.device) -> tuple[torch.Tensor, bytes, Any]:
    """A uint8 buffer other processes can map, its pickled handle, and what names it (to unlink).
    CUDA: the tensor's CUDA IPC handle. CPU: a named POSIX shared-memory segment (registered
    with Python's resource tracker, which unlinks it if this process dies), mapped by `_map`."""
    if device.type == "cuda":
        buf = torch.empty(nbytes, dtype=torch.uint8, device=device)
        return buf, pickle.dumps(("cuda", reduce_tensor(buf))), None
    shm = SharedMemory(create=True, size=nbytes)
    shm.close()  # its own mapping; the tensor gets one of its own, freed with the last view
    return _map(shm.name, nbytes), pickle.dumps(("shm", shm.name, nbytes)), shm


def _map(name: str, nbytes: int) -> torch.Tensor:
    """A CPU segment mapped as a uint8 tensor, unmapped when no tensor views it any more."""
    fd = os.open(f"/dev/shm/{name.lstrip('/')}", os.O_RDWR)
    try:
        memory = mmap.mmap(fd, nbytes)
    finally:
        os.close(fd)
    return torch.frombuffer(memory, dtype=torch.uint8, count=nbytes)


def _map_buffer(handle: bytes) -> torch.Tensor:
    """The sender's buffer, in this process."""
    kind, *rest = pickle.loads(handle)  # noqa: S301 - from our own learner rank, not users
    if kind == "cuda":
        fn, args = rest[0]
        return fn(*args)
    return _map(*rest)


def _broadcast_bytes(group: SyncGroup, data: bytes | None) -> bytes:
    size = torch.tensor([len(data) if data is not None else 0], dtype=torch.int64)
    group.broadcast(size, src=0)
    payload = torch.empty(int(size.item()), dtype=torch.uint8)
    if data is not None:
        payload.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    group.broadcast(payload, src=0)
    return payload.numpy().tobytes()


class IPCSender(BroadcastSender):
    """Group rank 0; one shared buffer (CPU: the whole model; GPU: the largest bucket, rewritten
    bucket after bucket). The bucket planning is BroadcastSender's; only a bucket's transport
    differs."""

    def __init__(self, device: torch.device | str = "cpu", timeout: timedelta = DEFAULT_TIMEOUT):
        super().__init__(device, timeout)
        self._buf: torch.Tensor | None = None
        self._handle: bytes = b""
        self._keep: Any = None  # the CPU shared-memory segment behind _buf (its name)

    def init_group(self, master_addr: str, master_port: int, world_size: int) -> None:
        self.group = init_stateless_group(
            master_addr, master_port, 0, world_size, "gloo", self.timeout
        )

    def host(self, params: list[tuple[str, torch.nn.Parameter]]) -> None:
        """CPU: moves each parameter into the shared buffer, at the place a send puts it, so
        that sends copy nothing. `params` in the order the sends stream them; the Parameter
        objects stay (an optimizer's state keyed by them is kept), their data moves."""
        if self.device.type != "cpu":
            raise ValueError("IPCSender.host: CPU parameters only")
        (bucket,) = plan_buckets(param_meta(params), WHOLE)
        self._ensure(bucket.nbytes)
        assert self._buf is not None
        for entry, (_, param) in zip(bucket.entries, params, strict=True):
            view = self._buf[entry.offset : entry.offset + entry.nbytes]
            view = view.view(param.dtype).view(param.shape)
            view.copy_(param.detach())
            param.data = view

    def _bucket_bytes(self, bucket_bytes: int) -> int:
        return WHOLE if self.device.type == "cpu" else bucket_bytes

    def _ensure(self, nbytes: int) -> None:
        if self._buf is None or self._buf.numel() < nbytes:
            self._release()
            self._buf, self._handle, self._keep = _shared_buffer(nbytes, self.device)

    def _send_bucket(self, bucket, tensors: Sequence[torch.Tensor]) -> int:
        self._ensure(bucket.nbytes)
        pack_bucket(bucket, tensors, self.device, scratch=self._buf)  # hosted ones stay put
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the receivers read it from another process
        assert self.group is not None
        _broadcast_bytes(self.group, self._handle)
        self.group.barrier()  # every receiver is done with this buffer
        if self._keep is not None:  # CPU: every receiver has mapped it and keeps the mapping
            self._keep.unlink()  # so the name goes: the memory goes with the last process
            self._keep = None
        return bucket.nbytes

    def _release(self) -> None:
        self._buf = None  # hosted parameters keep the mapping alive until they are freed
        if self._keep is not None:
            self._keep.unlink()
            self._keep = None

    def close(self) -> None:
        super().close()
        self._release()


# CPU: this process's mapping of the sender's segment, kept from sync to sync: the sender unlinks
# the segment's name after the first sync (nothing is left in /dev/shm when the processes end),
# so it cannot be mapped again; an engine restart brings a new sender and segment (`recover`)
_CPU_MAPPING: dict[str, Any] = {}


def receive_buckets_ipc(
    group: SyncGroup, meta: Sequence[ParamMeta], bucket_bytes: int, device: torch.device | str
) -> Iterator[tuple[str, torch.Tensor]]:
    """Receiver half: yields (name, tensor) per parameter. CPU: views into the sender's buffer
    (the whole model), valid until the stream is exhausted, when the barrier lets the sender go.
    GPU: a private copy of each bucket. `device` is where the caller wants them; a CPU receiver of
    a CUDA sender is not supported."""
    if torch.device(device).type == "cpu":
        yield from _receive_in_place(group, meta)
        return
    handle, mapped = b"", torch.empty(0, dtype=torch.uint8)
    for bucket in plan_buckets(meta, bucket_bytes):
        new = _broadcast_bytes(group, None)
        if new != handle:  # the sender reuses its buffer: map it once (again when it grew)
            handle, mapped = new, _map_buffer(new)
        # One copy of the whole bucket, then the barrier: the sender packs the next bucket while
        # this one loads (a loader may keep what it is given until a layer is complete, as vLLM's
        # layerwise reload does, and the sender overwrites the buffer with the next bucket).
        buf = mapped[: bucket.nbytes].to(device, copy=True)
        group.barrier()
        yield from unpack_bucket(bucket, buf)


def _receive_in_place(
    group: SyncGroup, meta: Sequence[ParamMeta]
) -> Iterator[tuple[str, torch.Tensor]]:
    """CPU: the whole model in one bucket, read where the sender put it; nothing overwrites it
    before the barrier."""
    for bucket in plan_buckets(meta, WHOLE):
        handle = _broadcast_bytes(group, None)
        if _CPU_MAPPING.get("handle") != handle:
            _CPU_MAPPING.update(handle=handle, buf=_map_buffer(handle))
        yield from unpack_bucket(bucket, _CPU_MAPPING["buf"][: bucket.nbytes])
        group.barrier()
