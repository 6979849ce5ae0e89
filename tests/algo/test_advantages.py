"""New advantage estimators against naive per-sample Python loops (random, ragged, masked)."""

import math
import random

import pytest
import torch

from rlcore.algo.advantages import (
    discounted_returns,
    drgrpo_advantages,
    gae,
    grpo_advantages,
    masked_whiten,
    reinforce_pp_advantages,
    reinforce_pp_token_advantages,
    rloo_advantages,
)


def rand_rewards(rng, n):
    return [rng.choice([0.0, 1.0]) + rng.random() * 0.3 for _ in range(n)]


def ragged_mask(rng, B, T, holes=False):
    """Right-padded rows of random length (some empty); with holes, random interior gaps too."""
    rows = []
    for b in range(B):
        n = 0 if b == 1 else rng.randint(1, T)
        row = [1.0] * n + [0.0] * (T - n)
        if holes:
            row = [v if rng.random() > 0.25 else 0.0 for v in row]
        rows.append(row)
    return rows


def naive_whiten(xs, eps):
    n = len(xs)
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return mean, math.sqrt(var + eps)


@pytest.mark.parametrize("g", [2, 3, 8])
def test_drgrpo_and_rloo_match_naive(g):
    rng = random.Random(g)
    r = rand_rewards(rng, g * 6)
    dr = drgrpo_advantages(torch.tensor(r), g)
    rloo = rloo_advantages(torch.tensor(r), g)
    for i in range(len(r)):
        grp = r[i - i % g : i - i % g + g]
        others = [x for j, x in enumerate(grp) if j != i % g]
        assert dr[i].item() == pytest.approx(r[i] - sum(grp) / g, abs=1e-5)
        assert rloo[i].item() == pytest.approx(r[i] - sum(others) / (g - 1), abs=1e-5)


def test_grpo_std_and_drgrpo_differ_exactly_by_the_group_std():
    rng = random.Random(0)
    g, eps = 4, 1e-6
    r = rand_rewards(rng, g * 8)
    std_adv = grpo_advantages(torch.tensor(r), g, std_normalize=True, eps=eps)
    dr = drgrpo_advantages(torch.tensor(r), g)
    for start in range(0, len(r), g):
        grp = r[start : start + g]
        mean = sum(grp) / g
        std = math.sqrt(sum((x - mean) ** 2 for x in grp) / (g - 1))
        for i in range(start, start + g):
            assert std_adv[i].item() * (std + eps) == pytest.approx(dr[i].item(), abs=1e-5)
    # the factor differs between groups, so the two are not one global rescaling of each other
    ratios = (dr / std_adv).view(-1, g)[:, 0]
    assert ratios.max() - ratios.min() > 1e-2


def test_rloo_is_scaled_drgrpo_and_rejects_group_of_one():
    r = torch.tensor([1.0, 0.0, 0.0, 0.5, 1.0, 1.0])
    assert torch.allclose(rloo_advantages(r, 3), drgrpo_advantages(r, 3) * 3 / 2)
    with pytest.raises(ValueError, match="group_size >= 2"):
        rloo_advantages(r, 1)
    with pytest.raises(ValueError, match="multiple of group"):
        rloo_advantages(torch.zeros(7), 2)


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("group_size", [None, 4])
def test_reinforce_pp_matches_naive(use_mask, group_size):
    rng = random.Random(7)
    B, T, eps = 16, 7, 1e-8
    r = rand_rewards(rng, B)
    mask = ragged_mask(rng, B, T)
    x = list(r)
    if group_size:
        for s in range(0, B, group_size):
            mean = sum(r[s : s + group_size]) / group_size
            x[s : s + group_size] = [v - mean for v in r[s : s + group_size]]
    # naive: the batch as the reference code sees it, one entry per counted token (or response)
    samples = [x[b] for b in range(B) for t in range(T) if mask[b][t]] if use_mask else x
    mean, std = naive_whiten(samples, eps)
    got = reinforce_pp_advantages(
        torch.tensor(r), group_size, torch.tensor(mask) if use_mask else None, eps
    )
    for b in range(B):
        assert got[b].item() == pytest.approx((x[b] - mean) / std, abs=1e-4)


def test_reinforce_pp_group_baseline_changes_the_result():
    r = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    plain = reinforce_pp_advantages(r)
    base = reinforce_pp_advantages(r, group_size=3)
    assert plain.mean().abs() < 1e-6 and base.mean().abs() < 1e-6
    assert not torch.allclose(plain, base)


def naive_gae_row(r, v, m, gamma, lam):
    """One row: compact the unmasked tokens, run textbook GAE, scatter back."""
    idx = [t for t in range(len(m)) if m[t]]
    adv = [0.0] * len(m)
    ret = [0.0] * len(m)
    last = 0.0
    for k in reversed(range(len(idx))):
        t = idx[k]
        next_v = v[idx[k + 1]] if k + 1 < len(idx) else 0.0
        delta = r[t] + gamma * next_v - v[t]
        last = delta + gamma * lam * last
        adv[t], ret[t] = last, last + v[t]
    return adv, ret


@pytest.mark.parametrize("holes", [False, True])
@pytest.mark.parametrize("gamma,lam", [(1.0, 1.0), (0.99, 0.95), (0.9, 0.0)])
def test_gae_matches_naive_loop(gamma, lam, holes):
    rng = random.Random(int(gamma * 100 + lam * 10) + holes)
    torch.manual_seed(3)
    B, T = 6, 11
    mask = torch.tensor(ragged_mask(rng, B, T, holes))
    rewards, values = torch.randn(B, T), torch.randn(B, T)
    # garbage (even NaN) on padding must not leak into anything
    rewards_pad = torch.where(mask > 0, rewards, torch.full_like(rewards, float("nan")))
    values_pad = torch.where(mask > 0, values, torch.full_like(values, 1e6))
    adv, ret = gae(rewards_pad, values_pad, mask, gamma, lam)
    assert torch.isfinite(adv).all() and torch.isfinite(ret).all()
    for b in range(B):
        want_a, want_r = naive_gae_row(
            rewards[b].tolist(), values[b].tolist(), mask[b].tolist(), gamma, lam
        )
        assert adv[b].tolist() == pytest.approx(want_a, abs=1e-4)
        assert ret[b].tolist() == pytest.approx(want_r, abs=1e-4)


def test_gae_with_lam_one_and_outcome_reward_is_return_minus_value():
    # gamma = lam = 1, reward only on the last token: A_t = R - V(s_t)
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    rewards = torch.tensor([[0.0, 0.0, 2.0, 0.0], [0.0, -1.0, 0.0, 0.0]])
    values = torch.tensor([[0.5, 0.1, -0.3, 9.0], [0.2, 0.4, 9.0, 9.0]])
    adv, ret = gae(rewards, values, mask, 1.0, 1.0)
    R = torch.tensor([[2.0], [-1.0]])
    assert torch.allclose(adv, (R - values) * mask) and torch.allclose(ret, R * mask)


def test_discounted_returns_and_token_reinforce_pp_match_naive():
    rng = random.Random(11)
    torch.manual_seed(11)
    B, T, gamma, eps = 5, 9, 0.9, 1e-8
    mask = torch.tensor(ragged_mask(rng, B, T, holes=True))
    r = torch.randn(B, T)
    got = discounted_returns(r, mask, gamma)
    want = []
    for b in range(B):
        row, running = [0.0] * T, 0.0
        for t in reversed(range(T)):
            if mask[b, t]:
                running = r[b, t].item() + gamma * running
                row[t] = running
        want.append(row)
        assert got[b].tolist() == pytest.approx(row, abs=1e-5)
    flat = [want[b][t] for b in range(B) for t in range(T) if mask[b, t]]
    mean, std = naive_whiten(flat, eps)
    adv = reinforce_pp_token_advantages(r, mask, gamma, eps)
    for b in range(B):
        for t in range(T):
            expect = (want[b][t] - mean) / std if mask[b, t] else 0.0
            assert adv[b, t].item() == pytest.approx(expect, abs=1e-4)
    assert torch.equal(masked_whiten(got, mask, eps), adv)
