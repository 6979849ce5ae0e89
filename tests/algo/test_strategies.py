"""The algorithm strategy objects: each is its pure functions, chosen by name, and its aggregation
over micro-batches with global denominators equals the whole batch's loss."""

import pytest
import torch

from rlcore.algo import ALGORITHMS, GRPO, GSPO, RLOO, DrGRPO, ReinforcePP, make_algorithm
from rlcore.algo.advantages import (
    drgrpo_advantages,
    grpo_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
)
from rlcore.algo.policy_loss import aggregate, clipped_surrogate, gspo_loss


def _rewards(n: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, generator=g) > 0.5).float() + 0.1 * torch.rand(n, generator=g)


@pytest.mark.parametrize(
    "algo, reference",
    [
        (GRPO(group_size=4), lambda r: grpo_advantages(r, 4, True)),
        (DrGRPO(group_size=4), lambda r: drgrpo_advantages(r, 4)),
        (RLOO(group_size=4), lambda r: rloo_advantages(r, 4)),
        (ReinforcePP(group_size=4), lambda r: reinforce_pp_advantages(r, 4)),
        (ReinforcePP(group_size=4, group_baseline=False), lambda r: reinforce_pp_advantages(r)),
        (GSPO(group_size=4), lambda r: grpo_advantages(r, 4, True)),
    ],
)
def test_each_algorithm_uses_its_estimator(algo, reference):
    r = _rewards()
    assert torch.allclose(algo.advantages(r), reference(r))


def test_policy_losses_and_defaults():
    torch.manual_seed(0)
    lp, old = torch.randn(4, 6) * 0.01, torch.randn(4, 6) * 0.01
    adv, mask = torch.randn(4), (torch.rand(4, 6) > 0.3).float()
    loss, _ = GSPO(group_size=2).policy_loss(lp, old, adv, mask)
    assert torch.allclose(loss, gspo_loss(lp, old, adv, mask, 3e-4, 4e-4)[0])
    loss, _ = GRPO(group_size=2, clip_high=0.28, dual_clip=3.0).policy_loss(lp, old, adv, mask)
    assert torch.allclose(loss, clipped_surrogate(lp, old, adv, 0.2, 0.28, 3.0)[0])
    assert DrGRPO(group_size=2).loss_agg == "seq-mean-token-sum"
    assert GSPO(group_size=2).loss_agg == "seq-mean-token-mean"
    assert GRPO(group_size=2).loss_agg == "token-mean"


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_micro_batches_sum_to_the_whole_batch_loss(name):
    algo = make_algorithm(name, group_size=2, loss_agg_constant=8.0)
    torch.manual_seed(1)
    token_loss = torch.randn(6, 8)
    mask = torch.zeros(6, 8)
    for i, n in enumerate([8, 3, 5, 1, 7, 2]):  # ragged responses
        mask[i, :n] = 1
    whole = aggregate(token_loss, mask, algo.loss_agg, algo.loss_agg_constant)
    tokens, seqs = float(mask.sum()), 6.0
    parts = sum(
        algo.aggregate(token_loss[s : s + 2], mask[s : s + 2], tokens, seqs) for s in (0, 2, 4)
    )
    assert parts.item() == pytest.approx(whole.item(), rel=1e-5, abs=1e-7)


def test_make_algorithm_errors_name_the_option():
    with pytest.raises(ValueError, match="unknown algo.type 'trpo'"):
        make_algorithm("trpo", group_size=2)
    with pytest.raises(ValueError, match="algo.type=grpo has no option gamma"):
        make_algorithm("grpo", group_size=2, gamma=0.9)
    with pytest.raises(ValueError, match="algo.type=grpo has no option group_baseline"):
        make_algorithm("grpo", group_size=2, group_baseline=True)
    # None means "the algorithm's default"
    assert make_algorithm("gspo", group_size=2, clip_low=None).clip_low == 3e-4
