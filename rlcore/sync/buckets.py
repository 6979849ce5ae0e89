"""Bucketing of a (name, tensor) stream into flat byte buffers, shared by sender and receivers.

Both sides of a weight sync call the same planner, so they agree on bucket boundaries without
exchanging anything but the metadata list `param_meta(model)`: (name, dtype string, shape), in the
order the sender streams. Buckets are contiguous uint8 buffers; every entry starts at a 16-byte
aligned offset so that `buf[offset:offset + nbytes].view(dtype)` is always a legal view.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

# (hf parameter name, dtype string such as "float32", shape)
ParamMeta = tuple[str, str, tuple[int, ...]]

_ALIGN = 16


def dtype_to_str(dtype: torch.dtype) -> str:
    """`torch.float32` -> "float32" (the wire form of a dtype in ParamMeta)."""
    return str(dtype).removeprefix("torch.")


def str_to_dtype(name: str) -> torch.dtype:
    """Parses "float32" into `torch.float32`; raises ValueError naming the string for anything else."""
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype string {name!r} in weight-sync metadata")
    return dtype


def tensor_nbytes(dtype: str, shape: Sequence[int]) -> int:
    numel = 1
    for d in shape:
        numel *= int(d)
    return numel * str_to_dtype(dtype).itemsize


@dataclass(frozen=True)
class BucketEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int  # byte offset inside the bucket buffer
    nbytes: int


@dataclass(frozen=True)
class Bucket:
    entries: tuple[BucketEntry, ...]
    nbytes: int  # size of the flat buffer (aligned end of the last entry)


class BucketPlanner:
    """Greedy, order-preserving packing: a tensor joins the open bucket unless it would overflow it.

    A tensor larger than `bucket_bytes` gets a bucket of its own. Used incrementally by the sender
    (which sees one tensor at a time) and in one go by `plan_buckets` (the receivers).
    """

    def __init__(self, bucket_bytes: int) -> None:
        if bucket_bytes <= 0:
            raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
        self.bucket_bytes = bucket_bytes
        self._entries: list[BucketEntry] = []
        self._end = 0

    def add(self, name: str, dtype: str, shape: Sequence[int]) -> Bucket | None:
        """Adds one tensor; returns the bucket it closed (the one before it), if any."""
        nbytes = tensor_nbytes(dtype, shape)
        closed = None
        if self._entries and _align(self._end) + nbytes > self.bucket_bytes:
            closed = self.flush()
        offset = _align(self._end)
        self._entries.append(BucketEntry(name, dtype, tuple(int(d) for d in shape), offset, nbytes))
        self._end = offset + nbytes
        return closed

    def flush(self) -> Bucket | None:
        """Closes and returns the open bucket (None when empty)."""
        if not self._entries:
            return None
        bucket = Bucket(tuple(self._entries), max(self._end, 1))
        self._entries, self._end = [], 0
        return bucket


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def plan_buckets(meta: Sequence[ParamMeta], bucket_bytes: int) -> list[Bucket]:
    """The bucket layout for `meta` (pure: same input, same layout, on every process)."""
    planner = BucketPlanner(bucket_bytes)
    buckets = [b for name, dtype, shape in meta if (b := planner.add(name, dtype, shape))]
    last = planner.flush()
    return buckets + ([last] if last else [])


def param_meta(named_tensors: nn.Module | Iterable[tuple[str, torch.Tensor]]) -> list[ParamMeta]:
    """Metadata for a sync: (name, dtype string, shape) per parameter, in `named_parameters` order.

    A module's tied parameters appear once (named_parameters deduplicates), which is what vLLM's
    and transformers' loaders expect. A DeepSpeed ZeRO-3 partitioned parameter reports its full
    shape (`ds_shape`), since that is what the sender gathers and streams.
    """
    items = (
        named_tensors.named_parameters() if isinstance(named_tensors, nn.Module) else named_tensors
    )
    return [
        (name, dtype_to_str(t.dtype), tuple(int(d) for d in getattr(t, "ds_shape", t.shape)))
        for name, t in items
    ]


def pack_bucket(
    bucket: Bucket,
    tensors: Sequence[torch.Tensor],
    device: torch.device,
    scratch: torch.Tensor | None = None,
) -> torch.Tensor:
    """Copies `tensors` (one per entry, in order) into one flat uint8 buffer on `device`.

    With `scratch` (a uint8 buffer on `device` of at least `bucket.nbytes`) the bucket is packed
    into its head instead of a new allocation; the sender reuses one buffer for every bucket. A
    tensor already at its place in the buffer (a parameter the IPC sender hosts) is not copied.
    """
    if scratch is not None and scratch.numel() >= bucket.nbytes:
        buf = scratch[: bucket.nbytes]
    else:
        buf = torch.empty(bucket.nbytes, dtype=torch.uint8, device=device)
    for entry, t in zip(bucket.entries, tensors, strict=True):
        view = buf[entry.offset : entry.offset + entry.nbytes]
        if view.data_ptr() != t.data_ptr():
            view.view(t.dtype).view(t.shape).copy_(t.detach(), non_blocking=True)
    return buf


def unpack_bucket(bucket: Bucket, buf: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) views into a received buffer; they alias `buf`, copy before reusing it."""
    for entry in bucket.entries:
        raw = buf[entry.offset : entry.offset + entry.nbytes]
        yield entry.name, raw.view(str_to_dtype(entry.dtype)).view(entry.shape)
