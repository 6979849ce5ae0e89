"""PPO's clipped value loss against a naive per-token loop (random, ragged)."""

import random

import pytest
import torch

from rlcore.algo.value_loss import clipped_value_loss


def naive_value_loss(v, old, ret, clip):
    if clip is None:
        return 0.5 * (v - ret) ** 2
    v_clip = old + min(max(v - old, -clip), clip)
    return 0.5 * max((v - ret) ** 2, (v_clip - ret) ** 2)


@pytest.mark.parametrize("clip", [0.2, 0.5, None])
def test_clipped_value_loss_matches_naive_loop(clip):
    rng = random.Random(3)
    torch.manual_seed(3)
    B, T = 6, 8
    lengths = [rng.randint(0, T) for _ in range(B)]
    mask = torch.tensor([[1.0] * n + [0.0] * (T - n) for n in lengths])
    old = torch.randn(B, T)
    values = old + torch.randn(B, T) * 0.4
    returns = torch.randn(B, T)
    loss, clipped = clipped_value_loss(values, old, returns, mask, clip)
    for b in range(B):
        for t in range(T):
            want = naive_value_loss(
                values[b, t].item(), old[b, t].item(), returns[b, t].item(), clip
            )
            assert loss[b, t].item() == pytest.approx(want if t < lengths[b] else 0.0, abs=1e-5)
    if clip == 0.2:
        assert 0 < clipped.sum() < mask.sum()
    if clip is None:
        assert clipped.sum() == 0


def test_value_clip_stops_the_gradient_only_when_it_moves_away():
    old, ret, mask = torch.zeros(1, 2), torch.tensor([[1.0, -1.0]]), torch.ones(1, 2)
    # token 0: moved past the clip towards the target -> clipped term larger, no gradient
    # token 1: moved past the clip away from the target -> unclipped term larger, full gradient
    v = torch.tensor([[0.5, 0.5]], requires_grad=True)
    loss, clipped = clipped_value_loss(v, old, ret, mask, 0.2)
    loss.sum().backward()
    assert clipped.tolist() == [[1.0, 0.0]]
    assert v.grad[0].tolist() == pytest.approx([0.0, 1.5])
