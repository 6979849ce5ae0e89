"""BroadcastSender -> receivers in other processes over a stateless gloo group."""

import io
import multiprocessing as mp
import socket

import pytest
import torch

from rlcore.sync import (
    BroadcastSender,
    init_stateless_group,
    make_sender,
    param_meta,
    receive_buckets,
    receiver,
)


def _tensors():
    gen = torch.Generator().manual_seed(0)
    return [
        ("model.embed_tokens.weight", torch.randn(128, 64, generator=gen)),
        ("model.norm.weight", torch.randn(64, generator=gen).to(torch.bfloat16)),
        ("counts", torch.arange(7, dtype=torch.int64)),
        ("lm_head.weight", torch.randn(128, 64, generator=gen)),
    ]


def _receiver(port, rank, world_size, meta, bucket_bytes, sync_type, device, queue) -> None:
    backend, receive = receiver(sync_type)
    group = init_stateless_group("127.0.0.1", port, rank, world_size, backend or "gloo")
    got = {name: t.cpu().clone() for name, t in receive(group, meta, bucket_bytes, device)}
    queue.put((rank, to_bytes(got)))


def to_bytes(tensors: dict) -> bytes:
    """Tensors through a multiprocessing queue by value: a queued tensor travels as a file
    descriptor that dies with the sending process, which may exit before the test reads it."""
    buf = io.BytesIO()
    torch.save(tensors, buf)
    return buf.getvalue()


def from_bytes(data: bytes) -> dict:
    return torch.load(io.BytesIO(data))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_sync(sync_type: str, device: str, world_size: int) -> tuple[dict, dict]:
    """One sync of _tensors() from this process to world_size - 1 receiver processes; checks that
    every receiver got every tensor bit-exact, in order; returns (received by rank, metrics)."""
    tensors = [(name, t.to(device)) for name, t in _tensors()]
    meta, bucket_bytes = param_meta(tensors), 20_000
    ctx = mp.get_context("spawn")
    queue, port = ctx.Queue(), _free_port()
    procs = [
        ctx.Process(
            target=_receiver,
            args=(port, rank, world_size, meta, bucket_bytes, sync_type, device, queue),
        )
        for rank in range(1, world_size)
    ]
    for p in procs:
        p.start()
    try:
        sender = make_sender(sync_type, device=device)
        sender.init_group("127.0.0.1", port, world_size)
        metrics = sender.send(iter(tensors), bucket_bytes)
        received = {r: from_bytes(b) for r, b in (queue.get(timeout=60) for _ in procs)}
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert sorted(received) == list(range(1, world_size))
    for got in received.values():
        assert list(got) == [name for name, _ in tensors]
        for name, t in tensors:
            assert got[name].dtype == t.dtype and torch.equal(got[name], t.cpu())
    return received, metrics


def test_send_reaches_every_receiver_bit_exact():
    _, metrics = run_sync("broadcast", "cpu", world_size=3)
    # embed (32 KiB) and lm_head each exceed the bucket: 3 buckets (embed | norm+counts | lm_head)
    assert metrics["buckets"] == 3
    assert metrics["bytes"] >= sum(t.numel() * t.element_size() for _, t in _tensors())


def test_send_before_init_group_fails():
    with pytest.raises(RuntimeError, match="before init_group"):
        BroadcastSender().send(iter(_tensors()), 1024)


def _cuda_receiver(port: int, meta, bucket_bytes: int, queue) -> None:
    torch.cuda.set_device(1)
    group = init_stateless_group("127.0.0.1", port, 1, 2, "nccl")
    got = {name: t.cpu() for name, t in receive_buckets(group, meta, bucket_bytes, "cuda:1")}
    queue.put(got)


@pytest.mark.gpu
def test_nccl_send_between_two_gpus():
    if torch.cuda.device_count() < 2:
        pytest.skip("NCCL needs one GPU per rank: two GPUs")
    tensors = [(name, t.to("cuda:0")) for name, t in _tensors()]
    meta, bucket_bytes = param_meta(tensors), 20_000
    ctx = mp.get_context("spawn")
    queue, port = ctx.Queue(), _free_port()
    proc = ctx.Process(target=_cuda_receiver, args=(port, meta, bucket_bytes, queue))
    proc.start()
    try:
        torch.cuda.set_device(0)
        sender = make_sender("broadcast", device="cuda:0")
        sender.init_group("127.0.0.1", port, 2)
        sender.send(iter(tensors), bucket_bytes)
        got = queue.get(timeout=120)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    for name, t in tensors:
        assert torch.equal(got[name], t.cpu())
