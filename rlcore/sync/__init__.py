"""Weight sync, learner -> rollout engines: bucketing shared by both sides, and the senders.

`make_sender(type)` picks the transport ("broadcast": gloo on CPU, NCCL on GPU); the receiving
half lives in each rollout engine (`RolloutEngine.init_weight_group` / `receive_weights`).
"""

from rlcore.sync.broadcast import (
    BroadcastSender,
    WeightSender,
    make_sender,
    receive_buckets,
)
from rlcore.sync.buckets import Bucket, BucketEntry, ParamMeta, param_meta, plan_buckets
from rlcore.sync.group import SyncGroup, backend_for, init_stateless_group

__all__ = [
    "Bucket",
    "BucketEntry",
    "BroadcastSender",
    "ParamMeta",
    "SyncGroup",
    "WeightSender",
    "backend_for",
    "init_stateless_group",
    "make_sender",
    "param_meta",
    "plan_buckets",
    "receive_buckets",
]
