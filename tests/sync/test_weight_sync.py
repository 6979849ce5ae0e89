"""After each sync the rollout engine's logprobs for a fixed token sequence equal the learner's
within fp32 tolerance; before the sync (after an update) they do not."""

import pytest
import ray

from rlcore.algo import build_algorithm
from rlcore.cluster import Cluster
from rlcore.config import load_config
from rlcore.learner.batch import pad_batch


@pytest.mark.slow
@pytest.mark.parametrize(
    "engine, sync_type",
    [("vllm", "broadcast"), ("hf", "broadcast"), ("vllm", "ipc"), ("hf", "ipc")],
)
def test_engine_matches_learner_after_every_sync(engine, sync_type, tiny_chat_model, ray_local):
    if engine == "vllm":
        pytest.importorskip("vllm")
    cfg = load_config(
        None,
        [
            f"rollout.engine={engine}",
            f"sync.type={sync_type}",
            "learner.lr=5e-2",
            "verifier.workers=1",
        ],
    )
    cluster = Cluster.start(cfg, tiny_chat_model, ["math"], build_algorithm(cfg))
    try:
        probe = [1, 7, 30, 31, 32, 2, 6, 1, 8, 40, 41, 42, 43, 44, 45]
        cluster.weights.init(probe)
        assert cluster.weights.check_probe() < 1e-4  # same checkpoint on both sides
        batch = pad_batch(
            [[30, 31, 32]] * 4, [[40, 41, 42, 43]] * 4, [1.0, -1.0, 1.0, -1.0], pad_id=0
        )
        batch.advantages[:] = batch.advantages * 0 + 1.0  # push every sampled token up
        for _ in range(2):
            ray.get(cluster.learners.actors[0].rl_step.remote(batch, float(batch.loss_mask.sum())))
            with pytest.raises(Exception, match="differ from the learner"):
                cluster.weights.check_probe()  # stale engine: the check must notice
            out = cluster.weights.push()
            assert out["sync_probe_max"] < 1e-4
            assert out["sync_bytes"] > 0
    finally:
        cluster.shutdown()
