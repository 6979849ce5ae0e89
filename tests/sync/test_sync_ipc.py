"""IPCSender -> receivers in other processes through shared memory (CPU: a POSIX shared-memory
segment; GPU: CUDA IPC on one device), with a gloo control channel."""

import pytest
import torch
from test_sync_broadcast import run_sync


def test_ipc_send_reaches_every_receiver_bit_exact():
    received, metrics = run_sync("ipc", "cpu", world_size=3)
    assert sorted(received) == [1, 2]
    # the same 3 buckets as the broadcast, each through the one reused shared buffer
    assert metrics["buckets"] == 3


@pytest.mark.gpu
def test_cuda_ipc_on_one_gpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU")
    run_sync("ipc", "cuda:0", world_size=2)
