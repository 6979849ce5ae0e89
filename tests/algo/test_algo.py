"""Advantage, loss and KL functions against naive per-sample loops (random, ragged, masked)."""

import math
import random

import pytest
import torch

from rlcore.algo import GRPO
from rlcore.algo.advantages import grpo_advantages
from rlcore.algo.kl import kl_estimate
from rlcore.algo.policy_loss import clipped_surrogate, token_mean


def naive_grpo(rewards, g, std_normalize, eps=1e-6):
    out = []
    for start in range(0, len(rewards), g):
        grp = rewards[start : start + g]
        mean = sum(grp) / g
        std = math.sqrt(sum((r - mean) ** 2 for r in grp) / (g - 1))
        out += [(r - mean) / (std + eps) if std_normalize else r - mean for r in grp]
    return out


@pytest.mark.parametrize("std_normalize", [True, False])
@pytest.mark.parametrize("g", [2, 4, 8])
def test_grpo_advantages_match_naive(std_normalize, g):
    rng = random.Random(g)
    rewards = [rng.choice([0.0, 0.2, 1.0, 1.2]) for _ in range(g * 5)]
    got = grpo_advantages(torch.tensor(rewards), g, std_normalize)
    assert torch.allclose(got, torch.tensor(naive_grpo(rewards, g, std_normalize)), atol=1e-5)


def test_grpo_equal_rewards_give_zero_and_std_scaling_differs():
    r = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    std_adv = grpo_advantages(r, 4, True)
    raw_adv = grpo_advantages(r, 4, False)
    assert torch.all(std_adv[:4] == 0) and torch.all(raw_adv[:4] == 0)
    # second group: mean 0.25, sample std 0.5 -> normalised = raw / 0.5
    assert torch.allclose(std_adv[4:], raw_adv[4:] / 0.5, atol=1e-4)


def test_grpo_rejects_ragged_groups():
    with pytest.raises(ValueError, match="multiple of group"):
        grpo_advantages(torch.zeros(7), 4)


def naive_clip(lp, old, adv, lo, hi):
    ratio = math.exp(lp - old)
    return -min(ratio * adv, min(max(ratio, 1 - lo), 1 + hi) * adv)


def test_clipped_surrogate_matches_naive_loop():
    torch.manual_seed(0)
    B, T = 6, 9
    lp, old = torch.randn(B, T) * 0.3, torch.randn(B, T) * 0.3
    adv = torch.randn(B)
    loss, clipped = clipped_surrogate(lp, old, adv, 0.2, 0.28)
    for b in range(B):
        for t in range(T):
            want = naive_clip(lp[b, t].item(), old[b, t].item(), adv[b].item(), 0.2, 0.28)
            assert loss[b, t].item() == pytest.approx(want, abs=1e-5)
    assert 0 < clipped.mean() < 1


def test_clip_higher_only_widens_the_upper_bound():
    lp, old = torch.tensor([[0.25]]), torch.tensor([[0.0]])  # ratio ~1.284
    pos = torch.tensor([1.0])
    sym, _ = clipped_surrogate(lp, old, pos, 0.2, 0.2)
    wide, _ = clipped_surrogate(lp, old, pos, 0.2, 0.28)
    assert sym.item() == pytest.approx(-1.2) and wide.item() == pytest.approx(-1.28)


def test_token_mean_with_ragged_mask_and_global_count():
    vals = torch.arange(12.0).view(3, 4)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.float32)
    want = (0 + 1 + 4 + 5 + 6 + 7 + 8) / 7
    assert token_mean(vals, mask).item() == pytest.approx(want)
    # split into two micro-batches normalised by the global count: same total
    a = token_mean(vals[:2], mask[:2], num_tokens=7) + token_mean(vals[2:], mask[2:], num_tokens=7)
    assert a.item() == pytest.approx(want)


@pytest.mark.parametrize("kind", ["k1", "k2", "k3"])
def test_kl_estimators_match_formulas(kind):
    torch.manual_seed(1)
    lp, ref = torch.randn(4, 5), torch.randn(4, 5)
    got = kl_estimate(lp, ref, kind)
    for b in range(4):
        for t in range(5):
            r = ref[b, t].item() - lp[b, t].item()
            want = {"k1": -r, "k2": r * r / 2, "k3": math.exp(r) - 1 - r}[kind]
            assert got[b, t].item() == pytest.approx(want, rel=1e-4, abs=1e-5)
    if kind == "k3":
        assert torch.all(got >= 0)


def test_k3_is_an_unbiased_kl_estimate():
    # samples from p; E_p[k3] = KL(p || q)
    torch.manual_seed(0)
    p = torch.distributions.Categorical(logits=torch.tensor([0.0, 1.0, 2.0]))
    q = torch.distributions.Categorical(logits=torch.tensor([0.5, 0.5, 1.0]))
    x = p.sample((200_000,))
    est = kl_estimate(p.log_prob(x), q.log_prob(x), "k3").mean()
    exact = torch.distributions.kl_divergence(p, q)
    assert est.item() == pytest.approx(exact.item(), rel=0.02)


def test_grpo_gradient_is_advantage_weighted_logprob_gradient_on_policy():
    # at ratio 1 (on-policy), d loss / d logprob = -advantage: the REINFORCE gradient
    lp = torch.zeros(2, 3, requires_grad=True)
    algo = GRPO(group_size=2)
    adv = torch.tensor([1.5, -0.5])
    loss, stats = algo.token_loss(lp, lp.detach(), adv, torch.zeros(2, 3), None)
    loss.sum().backward()
    assert torch.allclose(lp.grad, -adv.unsqueeze(1).expand(2, 3))
    assert "kl" not in stats and not algo.needs_reference


def test_grpo_adds_kl_only_with_reference():
    algo = GRPO(group_size=2, kl_coef=0.1)
    lp = torch.zeros(1, 2)
    ref = torch.full((1, 2), -1.0)
    loss, stats = algo.token_loss(lp, lp, torch.tensor([0.0]), torch.zeros(1, 2), ref)
    k3 = math.exp(-1) - 1 + 1
    assert algo.needs_reference
    assert torch.allclose(loss, torch.full((1, 2), 0.1 * k3))
    assert torch.allclose(stats["kl"], torch.full((1, 2), k3))
