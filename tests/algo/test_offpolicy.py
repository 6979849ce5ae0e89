"""Truncated importance sampling and the mismatch statistics, against a naive per-token loop."""

import math

import pytest
import torch

from rlcore.algo import GRPO
from rlcore.algo.offpolicy import mismatch_sums, tis_weights


def _inputs():
    g = torch.Generator().manual_seed(3)
    learner = -torch.rand(3, 5, generator=g) * 3
    rollout = learner + torch.randn(3, 5, generator=g) * 0.7
    mask = torch.zeros(3, 5)
    for i, n in enumerate([5, 2, 4]):  # ragged rows
        mask[i, :n] = 1
    return learner, rollout, mask


def test_tis_weights_and_mismatch_match_naive_loop():
    learner, rollout, mask = _inputs()
    cap = 1.5
    w = tis_weights(learner, rollout, cap)
    sums = mismatch_sums(learner, rollout, mask, cap)
    abs_sum = kl_sum = w_sum = trunc = worst = 0.0
    for i in range(3):
        for t in range(5):
            d = float(learner[i, t] - rollout[i, t])
            assert float(w[i, t]) == pytest.approx(min(math.exp(d), cap), rel=1e-6)
            if mask[i, t]:
                abs_sum += abs(d)
                kl_sum += math.exp(d) - 1 - d
                w_sum += min(math.exp(d), cap)
                trunc += float(math.exp(d) > cap)
                worst = max(worst, abs(d))
    assert float(sums["mismatch_abs"]) == pytest.approx(abs_sum, rel=1e-5)
    assert float(sums["mismatch_kl"]) == pytest.approx(kl_sum, rel=1e-5)
    assert float(sums["tis_weight"]) == pytest.approx(w_sum, rel=1e-5)
    assert float(sums["tis_truncated"]) == trunc > 0
    assert float(sums["mismatch_abs_max"]) == pytest.approx(worst, rel=1e-6)


def test_no_mismatch_gives_zero_and_unit_weights():
    learner, _, mask = _inputs()
    sums = mismatch_sums(learner, learner.clone(), mask, 2.0)
    assert float(sums["mismatch_abs"]) == 0 and float(sums["mismatch_kl"]) == 0
    assert float(sums["tis_weight"]) == float(mask.sum())
    with pytest.raises(ValueError):
        tis_weights(learner, learner, 0.0)


def test_tis_scales_the_loss_and_its_gradient_per_token():
    learner, rollout, mask = _inputs()
    lp = learner.clone().requires_grad_(True)
    adv = torch.tensor([1.0, -0.5, 2.0])
    plain, _ = GRPO(group_size=1).token_loss(lp, learner, adv, torch.zeros_like(lp), None, mask)
    tis, _ = GRPO(group_size=1, tis_cap=1.5).token_loss(
        lp, learner, adv, torch.zeros_like(lp), None, mask, rollout
    )
    w = tis_weights(learner, rollout, 1.5)
    assert torch.allclose(tis, plain * w)
    (tis * mask).sum().backward()
    # on-policy ratio: d loss / d logprob = -A * w per token
    assert torch.allclose(lp.grad, -(adv[:, None] * w) * mask, atol=1e-6)
