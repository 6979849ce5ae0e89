"""Bucket planning and packing: the layout both sides of a sync must agree on."""

import pytest
import torch
from torch import nn

from rlcore.sync import make_sender, param_meta, plan_buckets
from rlcore.sync.buckets import BucketPlanner, pack_bucket, str_to_dtype, unpack_bucket

META = [
    ("a", "float32", (10,)),  # 40 B
    ("b", "int64", (30, 10)),  # 2400 B: larger than the bucket, alone
    ("c", "bfloat16", (3,)),  # 6 B
    ("d", "float16", (7,)),  # 14 B, starts aligned after c
    ("e", "float32", (250,)),  # 1000 B
    ("f", "float32", (0,)),  # empty
]


def test_plan_is_ordered_aligned_and_bounded():
    buckets = plan_buckets(META, 1024)
    names = [e.name for b in buckets for e in b.entries]
    assert names == [m[0] for m in META]
    for b in buckets:
        assert all(e.offset % 16 == 0 for e in b.entries)
        assert b.nbytes <= 1024 or len(b.entries) == 1  # only a lone oversize tensor exceeds it
        ends = [e.offset + e.nbytes for e in b.entries]
        assert all(end <= nxt.offset for end, nxt in zip(ends[:-1], b.entries[1:], strict=True))
    assert [len(b.entries) for b in buckets] == [1, 1, 2, 2]  # a | b | c d | e f


def test_incremental_planner_matches_plan():
    planner = BucketPlanner(1024)
    closed = [b for m in META if (b := planner.add(*m))] + [planner.flush()]
    assert closed == plan_buckets(META, 1024)
    with pytest.raises(ValueError):
        BucketPlanner(0)


def test_pack_unpack_round_trip():
    gen = torch.Generator().manual_seed(0)
    tensors = [
        (torch.randn(shape, generator=gen) * 100).to(str_to_dtype(dtype))
        for _, dtype, shape in META
    ]
    got = {}
    for bucket in plan_buckets(META, 1024):
        part = [tensors[[m[0] for m in META].index(e.name)] for e in bucket.entries]
        got.update(unpack_bucket(bucket, pack_bucket(bucket, part, torch.device("cpu"))))
    for (name, dtype, shape), t in zip(META, tensors, strict=True):
        assert got[name].dtype == str_to_dtype(dtype) and tuple(got[name].shape) == shape
        assert torch.equal(got[name], t)


def test_param_meta_skips_tied_duplicates():
    emb = nn.Embedding(8, 4)
    head = nn.Linear(4, 8, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head})
    assert param_meta(model) == [("emb.weight", "float32", (8, 4))]
    assert param_meta([("x", torch.zeros(2, 3, dtype=torch.bfloat16))]) == [
        ("x", "bfloat16", (2, 3))
    ]


def test_bad_names_fail_clearly():
    with pytest.raises(ValueError, match="sync.type"):
        make_sender("ipc-over-carrier-pigeon")
    with pytest.raises(ValueError, match="dtype string"):
        str_to_dtype("float33")


def test_auto_transport_is_shared_memory_only_on_one_cpu_machine():
    from rlcore.sync import transport

    assert transport("auto", False, {"a"}) == "ipc"
    assert transport("auto", False, {"a", "b"}) == "broadcast"  # shared memory reaches one machine
    assert transport("auto", True, {"a"}) == "broadcast"  # CUDA IPC needs one shared GPU
    assert transport("broadcast", False, {"a"}) == "broadcast"  # an explicit choice stands
    assert transport("ipc", False, {"a"}) == "ipc"
    # a container's small /dev/shm: the sender's buffer would not fit, so no shared memory
    assert transport("auto", False, {"a"}, shm_free=64 << 20, shm_need=64 << 20) == "broadcast"
    assert transport("auto", False, {"a"}, shm_free=1 << 30, shm_need=64 << 20) == "ipc"
