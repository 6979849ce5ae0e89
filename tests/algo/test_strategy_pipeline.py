"""The strategies' other duties: DAPO's group filter and overlong shaping, KL as a reward, and PPO's
GAE estimate, each against a naive computation."""

import pytest
import torch

from rlcore.algo import DAPO, GRPO, PPO, ReinforcePP, make_algorithm
from rlcore.algo.advantages import gae, grpo_advantages, masked_whiten


def _mask(lengths, width=6):
    m = torch.zeros(len(lengths), width)
    for i, n in enumerate(lengths):
        m[i, :n] = 1
    return m


def test_dapo_drops_groups_without_variance_and_shapes_overlong():
    dapo = DAPO(group_size=3, max_tokens=8)
    rewards = torch.tensor([1.0, 1, 1, 0, 1, 0, 0, 0, 0])
    assert dapo.keep_groups(rewards).tolist() == [False, True, False]
    assert GRPO(group_size=3).keep_groups(rewards).tolist() == [True, True, True]
    # buffer = max_tokens // 4 = 2: no penalty up to 6 tokens, -0.5 at 7, -1 at 8
    shaped = dapo.shape_rewards(torch.ones(4), torch.tensor([5, 6, 7, 8]))
    assert shaped.tolist() == pytest.approx([1.0, 1.0, 0.5, 0.0])
    assert GRPO(group_size=3).shape_rewards(torch.ones(2), torch.tensor([8, 9])).tolist() == [1, 1]
    assert (dapo.clip_low, dapo.clip_high, dapo.loss_agg) == (0.2, 0.28, "token-mean")


def test_overlong_filter_zeroes_truncated_rows():
    mask = _mask([3, 6, 2])
    algo = make_algorithm("grpo", group_size=3, overlong_filter=True)
    out = algo.loss_mask(mask, torch.tensor([False, True, False]))
    assert out[1].sum() == 0 and torch.equal(out[0], mask[0]) and torch.equal(out[2], mask[2])
    assert torch.equal(GRPO(group_size=3).loss_mask(mask, torch.tensor([True] * 3)), mask)


def test_kl_in_reward_subtracts_the_summed_penalty_before_the_group_baseline():
    mask = _mask([2, 4, 3, 1])
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0])
    kl = torch.rand(4, 6)
    algo = GRPO(group_size=2, kl_coef=0.1, kl_placement="reward")
    adv, returns = algo.estimate(rewards, mask, kl)
    naive = rewards - 0.1 * torch.tensor(
        [sum(kl[i, :n].tolist()) for i, n in enumerate([2, 4, 3, 1])]
    )
    assert returns is None and torch.allclose(adv, grpo_advantages(naive, 2))
    # in the loss instead: the reward is untouched
    adv_loss, _ = GRPO(group_size=2, kl_coef=0.1).estimate(rewards, mask, kl)
    assert torch.allclose(adv_loss, grpo_advantages(rewards, 2))


def test_reinforce_pp_token_level_kl_reward_matches_naive():
    mask = _mask([2, 4])
    rewards = torch.tensor([1.0, 0.0])
    kl = torch.rand(2, 6)
    algo = ReinforcePP(group_size=2, kl_coef=0.5, kl_placement="reward")
    adv, _ = algo.estimate(rewards, mask, kl)
    # naive: group-centred outcome on the last token, minus coef*kl per token, reward-to-go, whiten
    centred = [0.5, -0.5]
    togo = torch.zeros(2, 6)
    for i, n in enumerate([2, 4]):
        running = 0.0
        for t in reversed(range(n)):
            r = -0.5 * float(kl[i, t]) + (centred[i] if t == n - 1 else 0.0)
            running = r + running
            togo[i, t] = running
    assert torch.allclose(adv, masked_whiten(togo, mask), atol=1e-5)


def test_ppo_estimate_is_whitened_gae_of_the_outcome_on_the_last_token():
    mask = _mask([3, 5, 1])
    rewards = torch.tensor([1.0, 0.0, 0.5])
    values = torch.randn(3, 6) * mask
    algo = PPO(group_size=1, gamma=0.99, lam=0.9)
    adv, returns = algo.estimate(rewards, mask, None, values)
    token_rewards = torch.zeros(3, 6)
    for i, n in enumerate([3, 5, 1]):
        token_rewards[i, n - 1] = rewards[i]
    ref_adv, ref_ret = gae(token_rewards, values, mask, 0.99, 0.9)
    assert torch.allclose(adv, masked_whiten(ref_adv, mask)) and torch.allclose(returns, ref_ret)
    assert algo.needs_critic and not GRPO(group_size=1).needs_critic
    with pytest.raises(ValueError, match="critic"):
        algo.estimate(rewards, mask)


def test_reinforce_pp_with_a_vanishing_kl_reward_equals_no_kl():
    """One normalisation on both paths: the per-token KL-reward path with kl_coef -> 0 gives the
    advantages of the path without KL (before the fix, one whitened per response, one per token)."""
    lengths = [2, 6, 3, 5, 1, 4]
    mask = _mask(lengths)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    kl = torch.rand(6, 6)
    for baseline in (True, False):
        plain, _ = ReinforcePP(group_size=2, group_baseline=baseline).estimate(rewards, mask)
        tiny = ReinforcePP(
            group_size=2, group_baseline=baseline, kl_coef=1e-9, kl_placement="reward"
        )
        with_kl, _ = tiny.estimate(rewards, mask, kl)
        assert with_kl.shape == (6, 6)
        assert torch.allclose(with_kl, plain.unsqueeze(1) * mask, atol=1e-6)


def test_dapo_keeps_groups_by_correctness_not_by_the_length_shaped_reward():
    """DAPO Eq. 11: an all-wrong group stays dropped however its lengths (and so its overlong
    penalties) differ; a mixed group is kept."""
    from rlcore.step import outcomes

    dapo = DAPO(group_size=3, max_tokens=16)  # penalty over the last 4 tokens
    results = [{"reward": 0.0, "correct": False}] * 3 + [
        {"reward": 1.0, "correct": True},
        {"reward": 0.0, "correct": False},
        {"reward": 0.0, "correct": False},
    ]
    rewards = torch.tensor([r["reward"] for r in results])
    lengths = torch.tensor([5, 14, 15, 5, 5, 5])  # the all-wrong group's lengths differ
    shaped = dapo.shape_rewards(rewards, lengths)
    assert shaped[:3].unique().numel() == 3  # the penalty alone gives the group "variance"
    assert dapo.keep_groups(outcomes(results, rewards)).tolist() == [False, True]
    # a reward model's score (correct None): the unshaped reward decides
    judged = [{"reward": 0.7, "correct": None}] * 3 + [
        {"reward": x, "correct": None} for x in (0.1, 0.5, 0.9)
    ]
    r2 = torch.tensor([r["reward"] for r in judged])
    assert dapo.keep_groups(outcomes(judged, r2)).tolist() == [False, True]


def test_multi_turn_length_shaping_uses_the_episode_budget():
    """rollout.max_tokens caps one turn: an untruncated three-turn episode may hold more policy
    tokens than that, and is not overlong; Dr. GRPO's constant stays an upper bound."""
    from rlcore.algo import build_algorithm
    from rlcore.config import load_config

    cfg = load_config(None, ["algo.type=dapo", "rollout.max_tokens=64", "rollout.max_turns=3"])
    dapo = build_algorithm(cfg)
    assert dapo.max_tokens == 192
    shaped = dapo.shape_rewards(torch.ones(2), torch.tensor([3 * 40, 190]))
    assert shaped[0] == 1.0 and shaped[1] < 1.0  # 120 tokens in 3 turns: no penalty
    cfg = load_config(None, ["algo.type=drgrpo", "rollout.max_tokens=64", "rollout.max_turns=3"])
    drgrpo = build_algorithm(cfg)
    mask = torch.ones(1, 150)  # 150 policy tokens over three turns
    loss = drgrpo.aggregate(torch.ones(1, 150), mask, 150.0, 1.0)
    assert loss.item() == pytest.approx(150 / 192)  # token sum / constant <= 1
