"""A generate call that hangs past rollout.timeout_s is an error naming the worker, not a silent
wait. The hung engine is a test double (an actor that sleeps): a real engine cannot be made to hang
on demand. The restart path is tested end to end in test_train_e2e.py."""

import time

import pytest
import ray

from rlcore.actors import ActorGroup
from rlcore.cluster import Cluster, RolloutError
from rlcore.config import load_config
from rlcore.sync.weights import WeightSync


@ray.remote(num_cpus=0)
class HungEngine:
    def generate(self, prompt_ids, params, version=None):
        time.sleep(30)


def test_hung_generate_is_an_error_naming_the_worker(ray_local):
    cfg = load_config(None, ["rollout.timeout_s=1", "rollout.max_restarts=0"])
    actor = HungEngine.remote()
    rollouts = ActorGroup([actor])
    cluster = Cluster(cfg, None, rollouts, None, WeightSync(cfg, None, rollouts, []))
    try:
        with pytest.raises(RolloutError, match=r"rollout worker 0 .*rollout.timeout_s=1"):
            list(cluster.generate_parts([[1, 2, 3]], None))
    finally:
        ray.kill(actor)
