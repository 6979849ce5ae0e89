"""IPCSender -> receivers in other processes through shared memory (CPU: a shared-memory file;
GPU: CUDA IPC on one device), with a gloo control channel."""

import multiprocessing as mp

import pytest
import torch
from test_sync_broadcast import _free_port, _tensors, from_bytes, to_bytes

from rlcore.sync import init_stateless_group, make_sender, param_meta
from rlcore.sync.ipc import receive_buckets_ipc


def _receiver(port, rank, world_size, meta, bucket_bytes, device, queue) -> None:
    group = init_stateless_group("127.0.0.1", port, rank, world_size, "gloo")
    got = {
        name: t.cpu().clone() for name, t in receive_buckets_ipc(group, meta, bucket_bytes, device)
    }
    queue.put((rank, to_bytes(got)))


def _run(device: str, world_size: int) -> tuple[dict, dict]:
    tensors = [(name, t.to(device)) for name, t in _tensors()]
    meta, bucket_bytes = param_meta(tensors), 20_000
    ctx = mp.get_context("spawn")
    queue, port = ctx.Queue(), _free_port()
    procs = [
        ctx.Process(
            target=_receiver, args=(port, rank, world_size, meta, bucket_bytes, device, queue)
        )
        for rank in range(1, world_size)
    ]
    for p in procs:
        p.start()
    try:
        sender = make_sender("ipc", device=device)
        sender.init_group("127.0.0.1", port, world_size)
        metrics = sender.send(iter(tensors), bucket_bytes)
        received = {r: from_bytes(b) for r, b in (queue.get(timeout=60) for _ in procs)}
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    for got in received.values():
        assert list(got) == [name for name, _ in tensors]
        for name, t in tensors:
            assert got[name].dtype == t.dtype and torch.equal(got[name], t.cpu())
    return received, metrics


def test_ipc_send_reaches_every_receiver_bit_exact():
    received, metrics = _run("cpu", world_size=3)
    assert sorted(received) == [1, 2]
    # the same 3 buckets as the broadcast, each through the one reused shared buffer
    assert metrics["buckets"] == 3


@pytest.mark.gpu
def test_cuda_ipc_on_one_gpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU")
    _run("cuda:0", world_size=2)
