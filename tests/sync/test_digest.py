"""The exact half of the sync check (rlcore/sync/digest.py): per-tensor digests of what the learner
sent against what each engine loaded."""

import pytest
import torch

import rlcore.sync.digest as digest_mod
from rlcore.sync.digest import (
    DigestedStream,
    checksum_digest,
    differing,
    digest_failure,
    tensor_digest,
)


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().reshape(-1).view(torch.uint8)


@pytest.mark.parametrize("kind", ["cpu", "checksum"])
def test_one_bf16_ulp_in_one_element_changes_the_digest(kind):
    digest = tensor_digest if kind == "cpu" else lambda t: checksum_digest(_flat(t))
    w = torch.randn(300, 7).to(torch.bfloat16)
    moved = w.clone()
    moved.view(torch.int16)[123, 4] += 1  # the next bf16 value: one ulp
    assert moved[123, 4] != w[123, 4]
    assert digest(w) == digest(w.clone()) != digest(moved)


@pytest.mark.parametrize("kind", ["cpu", "checksum"])
def test_changes_that_cancel_in_the_plain_sum_still_change_the_digest(kind):
    digest = tensor_digest if kind == "cpu" else lambda t: checksum_digest(_flat(t))
    w = torch.zeros(64, dtype=torch.int64)
    swapped = w.clone()
    swapped[3], swapped[40] = 5, -5  # the word sum is unchanged; the position-weighted one is not
    assert digest(w) != digest(swapped)


def test_the_checksum_does_not_depend_on_its_chunking_or_on_alignment(monkeypatch):
    w = torch.randn(1001, dtype=torch.float32).to(torch.bfloat16)  # 2002 bytes: padded to words
    whole = checksum_digest(_flat(w))
    monkeypatch.setattr(digest_mod, "_CHUNK", 7)  # many chunks: the sums are modulo 2^64
    assert checksum_digest(_flat(w)) == whole
    shifted = torch.cat([torch.zeros(1, dtype=torch.uint8), _flat(w)])[1:]  # storage offset 1
    assert checksum_digest(shifted) == whole


def test_views_are_digested_in_logical_order():
    m = torch.randn(8, 6)
    assert tensor_digest(m.t()) == tensor_digest(m.t().contiguous())
    assert tensor_digest(m) != tensor_digest(m.t().contiguous())
    assert tensor_digest(m[2:5]) == tensor_digest(m[2:5].clone())  # a view at an offset


def test_a_loader_that_stops_early_leaves_the_rest_missing_not_hanging():
    sent = [(f"w{i}", torch.full((3,), float(i))) for i in range(5)]
    stream = DigestedStream(iter(sent))
    for _ in zip(range(2), stream, strict=False):  # the loader takes two, then returns
        pass
    assert stream.drain() == 3  # the rest is still received (the sender must finish)
    expected = {n: tensor_digest(t) for n, t in sent}
    assert stream.digests == {n: expected[n] for n in ("w0", "w1")}
    assert differing(expected, stream.digests) == ["w2", "w3", "w4"]


def test_the_failure_names_every_engine_and_worker_that_differs():
    sent = {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}
    ok = dict(sent)
    assert digest_failure(sent, [[ok], [ok, ok]]) is None
    stale = dict(sent, b="9")
    failure = digest_failure(sent, [[ok], [ok, stale], [{}]])
    assert failure is not None
    assert "engine 1 worker 1: 1 of 5 tensors (b)" in failure
    assert "engine 2 worker 0: 5 of 5 tensors (a, b, c and 2 more)" in failure
    assert "engine 0" not in failure


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.int64])
def test_every_dtype_the_sync_streams_has_a_digest(dtype):
    t = (torch.arange(10) % 7).to(dtype)
    assert len(tensor_digest(t)) == 32
