"""The step's learner metrics cover every epoch's minibatches (verl does the same): with
`algo.epochs: 2` the second pass, where the policy has moved and the PPO clip engages, counts.

The learner group here is a test double (it returns sums as a learner rank would: a clip count
over the tokens of the rows it was sent); what is tested is which minibatches `step.update`'s
aggregation sees, and the real learner's sums are tested in tests/learner/test_learner.py.
"""

import pytest

from rlcore.algo import build_algorithm
from rlcore.config import load_config
from rlcore.learner.batch import pad_batch
from rlcore.learner.reduce import over_steps
from rlcore.step import _optimize


class _Learners:
    """Answers `rl_step` like one learner rank: clip_frac is 0 in the first epoch (the ratio is 1
    on the first pass) and every token in the later ones."""

    def __init__(self, ray, per_epoch: int) -> None:
        self.ray, self.calls, self.per_epoch = ray, 0, per_epoch

    def submit_each(self, method, per_actor):
        epoch = self.calls // self.per_epoch
        self.calls += 1
        ((shard, *_),) = per_actor
        tokens = float(shard.loss_mask.sum())
        sums = {
            "clip_frac": tokens if epoch else 0.0,
            "loss": -0.5 * tokens,
            "grad_norm": 1.0 + epoch,
        }
        return [self.ray.put(sums)]


class _Cluster:
    def __init__(self, ray, per_epoch: int) -> None:
        self.learners = _Learners(ray, per_epoch)


def test_metrics_average_every_epoch_not_the_first_only(ray_local):
    cfg = load_config(None, ["algo.type=grpo", "algo.epochs=2", "algo.minibatches=2"])
    prompts = [[5, 6, 7]] * 8
    comps = [[8, 9, 10, 11][: 2 + i % 3] for i in range(8)]
    batch = pad_batch(prompts, comps, [1.0, -1.0] * 4, pad_id=0)
    cluster = _Cluster(ray_local, per_epoch=2)
    algo = build_algorithm(cfg)
    per_minibatch = _optimize(cluster, algo, cfg, batch, step=1, train_policy=True, skip=False)
    assert len(per_minibatch) == 4  # 2 epochs x 2 minibatches
    tokens = sum(o.pop("learn_tokens") for o in per_minibatch)
    out = over_steps(per_minibatch, tokens)
    assert tokens == 2 * float(batch.loss_mask.sum())
    assert out["clip_frac"] == pytest.approx(0.5)  # half the tokens seen were clipped
    assert out["loss"] == pytest.approx(-0.5)
    assert out["grad_norm"] == pytest.approx(1.5)  # the mean over the 4 optimizer steps
