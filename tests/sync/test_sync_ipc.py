"""IPCSender -> receivers in other processes through shared memory (CPU: one POSIX shared-memory
segment holding the whole model, read in place; GPU: CUDA IPC on one device, bucket by bucket),
with a gloo control channel."""

import multiprocessing as mp
import os

import pytest
import torch
from test_sync_broadcast import _free_port, _tensors, from_bytes, run_sync, to_bytes

from rlcore.sync import IPCSender, init_stateless_group, param_meta, receive_buckets_ipc


def test_ipc_send_reaches_every_receiver_bit_exact():
    received, metrics = run_sync("ipc", "cpu", world_size=3)
    assert sorted(received) == [1, 2]
    # on CPU the whole model is one buffer, whatever the bucket size (the broadcast sends 3)
    assert metrics["buckets"] == 1


def _in_place_receiver(port, meta, syncs, queue) -> None:
    group = init_stateless_group("127.0.0.1", port, 1, 2, "gloo")
    for _ in range(syncs):
        got = list(receive_buckets_ipc(group, meta, 1024, "cpu"))
        # every tensor a view of one mapping: nothing was copied out of the sender's buffer
        storages = {t.untyped_storage().data_ptr() for _, t in got}
        queue.put((len(storages), to_bytes({name: t.clone() for name, t in got})))


def test_hosted_parameters_are_sent_without_a_copy_and_carry_each_update():
    params = [(name, torch.nn.Parameter(t, requires_grad=False)) for name, t in _tensors()]
    meta = param_meta(params)
    ctx = mp.get_context("spawn")
    queue, port = ctx.Queue(), _free_port()
    proc = ctx.Process(target=_in_place_receiver, args=(port, meta, 2, queue))
    proc.start()
    sender = IPCSender()
    try:
        sender.init_group("127.0.0.1", port, 2)
        before = {name: p.detach().clone() for name, p in params}
        sender.host(params)
        buf = sender._buf
        assert buf is not None
        lo, hi = buf.data_ptr(), buf.data_ptr() + buf.numel()
        for name, p in params:  # moved into the buffer, values and Parameter objects kept
            assert lo <= p.data_ptr() < hi and torch.equal(p.detach(), before[name])
        segment = f"/dev/shm/{sender._keep.name.lstrip('/')}"
        assert os.path.exists(segment)
        sender.send(((n, p.detach()) for n, p in params), 1024)
        views, got = queue.get(timeout=60)
        # every receiver mapped it: its name is gone (nothing outlives the processes), the
        # memory stays for the learner's parameters and the receiver's next sync
        assert not os.path.exists(segment)
        assert views == 1
        assert all(torch.equal(from_bytes(got)[n], p.detach()) for n, p in params)
        with torch.no_grad():  # an optimizer step writes the parameters in place
            params[0][1].add_(1.0)
            params[3][1].mul_(-2.0)
        sender.send(((n, p.detach()) for n, p in params), 1024)
        _, got = queue.get(timeout=60)
        assert all(torch.equal(from_bytes(got)[n], p.detach()) for n, p in params)
        assert not torch.equal(from_bytes(got)[params[0][0]], before[params[0][0]])
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
        sender.close()
    # the segment's name is gone; the parameters keep their memory until they are freed
    assert torch.equal(params[1][1].detach(), before[params[1][0]])


def test_host_refuses_gpu_parameters():
    with pytest.raises(ValueError, match="CPU parameters only"):
        IPCSender(device="cuda").host([])


@pytest.mark.gpu
def test_cuda_ipc_on_one_gpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU")
    run_sync("ipc", "cuda:0", world_size=2)
