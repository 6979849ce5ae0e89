"""Parity of rlcore/algo's pure tensor functions with the PUBLISHED formulas and reference code.

The other tests in tests/algo compare rlcore with naive loops written next to it; this file pins
fixed small inputs to EXPECTED NUMBERS WRITTEN AS LITERALS, derived by hand (plain Python, math and
fractions on the paper's formula, never by calling rlcore). Each case names the formula and the
paper / reference function it follows (verl = volcengine/verl verl/trainer/ppo/core_algos.py and
verl/utils/torch_functional.py; OpenRLHF = openrlhf/trainer/ppo_utils/experience_maker.py; TRL =
trl/trainer/grpo_trainer.py). Inputs are ragged (right-padded masks), the padding holds garbage,
and there is an all-equal group and an empty response (all-zero mask row) where the function
takes one. Where rlcore deliberately differs from a reference (eps, clamps, 0.5 factors,
normalisers) a comment says so and an assertion pins rlcore's side.

Run: .venv/bin/python -m pytest tests/algo/test_reference_parity.py -q -p no:cacheprovider
"""

import math

import pytest
import torch

from rlcore.algo.advantages import (
    drgrpo_advantages,
    gae,
    grpo_advantages,
    masked_whiten,
    reinforce_pp_advantages,
    reinforce_pp_token_advantages,
    rloo_advantages,
)
from rlcore.algo.kl import kl_estimate
from rlcore.algo.offpolicy import tis_weights
from rlcore.algo.policy_loss import aggregate, clipped_surrogate, gspo_loss
from rlcore.algo.rewards import overlong_penalty
from rlcore.algo.value_loss import clipped_value_loss

X = 7.0  # garbage in padded (mask 0) positions: any leak into a result changes it visibly


def close(actual, expected, atol=1e-6, rtol=1e-6):
    """fp32 comparison of a tensor with a literal (nested lists or a number)."""
    want = torch.as_tensor(expected, dtype=torch.float32)
    torch.testing.assert_close(actual.detach().float(), want, atol=atol, rtol=rtol)


def right_padded(lengths, T):
    """Response mask [B, T]: row b has lengths[b] leading ones (0 = an empty response)."""
    return torch.tensor([[1.0] * n + [0.0] * (T - n) for n in lengths])


def test_grpo_group_advantage():
    # GRPO (Shao et al. 2024, DeepSeekMath eq. 3 / verl core_algos.compute_grpo_outcome_advantage):
    # A_i = (r_i - mean(r)) / (std(r) + eps), std unbiased (torch.std), eps 1e-6 as verl.
    # Group 2 is all equal: std 0, so A = 0 / (0 + eps) = 0.
    r = torch.tensor([1.0, 0.0, 0.5, 0.0, 0.7, 0.7, 0.7, 0.7, 1.0, 0.0, 0.0, 0.0])
    expected = [1.30557969, -0.783347815, 0.261115938, -0.783347815, 0.0, 0.0, 0.0, 0.0]
    expected += [1.499997, -0.499999, -0.499999, -0.499999]
    close(grpo_advantages(r, 4), expected)
    # TRL GRPOTrainer divides by (std + 1e-4); rlcore follows verl's 1e-6. The eps is a parameter,
    # and with TRL's value rlcore gives TRL's numbers; its default does not.
    trl = [1.30530975, -0.78318585, 0.26106195, -0.78318585, 0.0, 0.0, 0.0, 0.0]
    trl += [1.49970006, -0.49990002, -0.49990002, -0.49990002]
    close(grpo_advantages(r, 4, eps=1e-4), trl)
    assert not torch.allclose(grpo_advantages(r, 4), torch.tensor(trl), atol=1e-5)
    # Difference: a group of ONE response. verl sets mean 0, std 1 (A = r / (1 + eps), here
    # [0.7999992, -0.2999997]); rlcore subtracts the response's own reward (no baseline, A = 0).
    close(grpo_advantages(torch.tensor([0.8, -0.3]), 1), [0.0, 0.0])


def test_drgrpo_advantage_and_constant_normaliser():
    # Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training", Dr. GRPO):
    # A_i = r_i - mean(r) (no std), loss = (1/G) sum_i sum_t l_i,t / L_max (no 1/|o_i|).
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    close(drgrpo_advantages(r, 3), [2 / 3, -1 / 3, -1 / 3, 1 / 3, 1 / 3, -2 / 3])
    # On-policy (ratio 1) every token's loss is -A_i; with lengths [4, 1, 3, 2, 3, 1], L_max 4:
    # -(1/6) * (2/3*4 - 1/3*1 - 1/3*3 + 1/3*2 + 1/3*3 - 2/3*1) / 4 = -7/72. The GRPO paper's
    # per-response mean (seq-mean-token-mean) gives -(1/6) * sum_i A_i = 0: the length bias.
    mask = right_padded([4, 1, 3, 2, 3, 1], 4)
    lp = torch.full((6, 4), -0.5)
    token_loss, _ = clipped_surrogate(lp, lp.clone(), drgrpo_advantages(r, 3))
    close(aggregate(token_loss, mask, "seq-mean-token-sum", 4.0), -7 / 72)
    close(aggregate(token_loss, mask, "seq-mean-token-mean"), 0.0)

    # A per-token loss with garbage padding and an empty response (row 2), L_max = T = 4.
    loss = torch.tensor([[0.5, -1.0, 2.0, 0.25], [1.5, 3.0, X, -X], [X, X, X, X], [-2.0, X, X, X]])
    mask = right_padded([4, 2, 0, 1], 4)
    # paper: mean over the 3 non-empty responses of (token sum / 4) = (1.75 + 4.5 - 2) / 4 / 3
    close(aggregate(loss, mask, "seq-mean-token-sum", 4.0), 0.3541666667)
    # Difference: verl agg_loss "seq-mean-token-sum-norm" is sum_i(token sum_i) / T = 1.0625, with
    # no 1/G; rlcore keeps the paper's 1/G. rlcore also leaves empty responses out of G (verl's
    # seq-mean modes count every row; its seq-mean-token-mean gives 0/0 = nan for an empty one).
    close(aggregate(loss, mask, "seq-mean-token-sum", 4.0) * 3, 1.0625)
    close(aggregate(loss, mask, "seq-mean-token-mean"), 0.2291666667)


def test_dapo_token_mean_overlong_penalty_and_clip_higher():
    # DAPO (Yu et al. 2025) token-level policy-gradient loss / verl agg_loss "token-mean" (masked_mean):
    # sum of all unmasked token losses of the batch / their count = 4.25 / 7.
    loss = torch.tensor([[0.5, -1.0, 2.0, 0.25], [1.5, 3.0, X, -X], [X, X, X, X], [-2.0, X, X, X]])
    close(aggregate(loss, right_padded([4, 2, 0, 1], 4), "token-mean"), 0.6071428571)

    # Soft overlong punishment, DAPO eq. 13, L_max 20, L_cache 4: 0 up to 16 tokens, then
    # (L_max - L_cache - |y|) / L_cache, and -1 beyond L_max. verl's dapo reward manager:
    # min(-(len - expected_len) / overlong_buffer_len * penalty_factor, 0), penalty_factor 1.
    lengths = torch.tensor([0, 10, 16, 17, 18, 19, 20, 21, 25])
    expected = [0.0, 0.0, 0.0, -0.25, -0.5, -0.75, -1.0, -1.0, -1.0]
    close(overlong_penalty(lengths, 20, 4), expected)
    # Difference: beyond L_max verl's formula keeps falling (21 -> -1.25, 25 -> -2.25; verl never
    # sees such lengths, the engine truncates at L_max); rlcore follows the paper's -1.
    assert overlong_penalty(torch.tensor([25]), 20, 4).item() == -1.0

    # Clip-higher (DAPO, verl clip_ratio_low 0.2 / clip_ratio_high 0.28):
    # loss = -min(rho * A, clip(rho, 0.8, 1.28) * A). rho = 1.25 is inside (PPO's 0.2 clips it).
    rho = torch.tensor([0.7, 0.9, 1.1, 1.25, 1.35])
    lp = torch.log(rho).repeat(2, 1)
    loss, clipped = clipped_surrogate(lp, torch.zeros(2, 5), torch.tensor([1.0, -1.0]), 0.2, 0.28)
    close(loss, [[-0.7, -0.9, -1.1, -1.25, -1.28], [0.8, 0.9, 1.1, 1.25, 1.35]])
    close(clipped, [[0, 0, 0, 0, 1], [1, 0, 0, 0, 0]])


def test_rloo_leave_one_out_baseline():
    # RLOO (Ahmadian et al. 2024 / verl compute_rloo_outcome_advantage):
    # A_i = r_i - mean_{j != i} r_j (verl writes it as k/(k-1) * (r_i - mean)). Group 2 all equal.
    r = torch.tensor([1.0, 0.0, 0.5, 0.0, 0.3, 0.3, 0.3, 0.3, 2.0, -1.0, 0.0, 1.0])
    expected = [5 / 6, -0.5, 1 / 6, -0.5, 0.0, 0.0, 0.0, 0.0, 2.0, -2.0, -2 / 3, 2 / 3]
    close(rloo_advantages(r, 4), expected)
    # Difference: a group of one has no leave-one-out baseline. verl returns r unchanged there;
    # rlcore refuses.
    with pytest.raises(ValueError, match="group_size >= 2"):
        rloo_advantages(torch.tensor([1.0, 0.0]), 1)


# REINFORCE++ outcome data: 2 prompts x 3 responses, lengths [5, 2, 3, 0, 4, 1] (row 3 empty).
PP_REWARDS = [1.0, 0.0, 0.5, 1.0, 1.0, 0.0]
PP_LENGTHS = [5, 2, 3, 0, 4, 1]


@pytest.mark.parametrize(
    "group_size,expected,openrlhf",
    [
        # REINFORCE++-baseline: x = r - group mean = [.5, -.5, 0, 1/3, 1/3, -2/3]; token-weighted
        # mean 0.1444444, unbiased var 0.1661376 over the 15 tokens
        (
            3,
            [0.872315388, -1.58107164, -0.354378127, 0.46341755, 0.46341755, -1.98996948],
            [0.902932237, -1.63656468, -0.366816221, 0.479682751, 0.479682751, -2.05981417],
        ),
        # REINFORCE++ without baseline: x = r; token mean 0.7, unbiased var 0.1714286
        (
            None,
            [0.724568816, -1.69066057, -0.483045877, 0.724568816, 0.724568816, -1.69066057],
            [0.75, -1.75, -0.5, 0.75, 0.75, -1.75],
        ),
    ],
)
def test_reinforce_pp_outcome_is_whitened_per_token(group_size, expected, openrlhf):
    # REINFORCE++ (Hu 2025, arXiv 2501.03262) / verl compute_reinforce_plus_plus_baseline_outcome_advantage: each
    # response's (group-baselined) outcome is broadcast over its tokens, then masked_whiten over
    # ALL tokens of the batch: A = (x - mean) * rsqrt(var + 1e-8), mean and UNBIASED var
    # (masked_var, Bessel N/(N-1)) taken per token, so a long response weighs more.
    mask = right_padded(PP_LENGTHS, 5)
    adv = reinforce_pp_advantages(torch.tensor(PP_REWARDS), group_size, mask=mask)
    close(adv[:, None] * mask, torch.tensor(expected)[:, None] * mask)
    # Difference: OpenRLHF whitens with the BIASED var (/ N, clamped at 1e-8); rlcore follows verl,
    # so rlcore * sqrt(N / (N - 1)) with N = 15 tokens gives OpenRLHF's numbers.
    close(adv[:, None] * mask * math.sqrt(15 / 14), torch.tensor(openrlhf)[:, None] * mask)


def test_reinforce_pp_token_rewards_discounted_then_whitened():
    # REINFORCE++ with per-token rewards (outcome on the last token minus a per-token KL):
    # G_t = r_t + gamma * G_{t+1} (OpenRLHF get_cumulative_returns; verl
    # compute_reinforce_plus_plus_outcome_advantage), then masked_whiten over all unmasked tokens,
    # unbiased var + 1e-8. gamma 0.9; row 2 is empty; padding holds garbage rewards.
    tr = torch.tensor(
        [
            [-0.01, -0.02, 0.0, -0.01, 0.97],
            [-0.05, 0.01, 0.5, X, -X],
            [X, X, X, X, X],
            [0.02, -1.0, X, X, X],
        ]
    )
    mask = right_padded([5, 3, 0, 2], 5)
    # returns: [.601127, .67903, .7767, .863, .97], [.364, .46, .5], [], [-.88, -1.0]
    expected = [
        [0.384304321, 0.496122929, 0.636314236, 0.760185536, 0.913768724],
        [0.0439424465, 0.181736708, 0.239150984, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [-1.74164153, -1.91388436, 0.0, 0.0, 0.0],
    ]
    close(reinforce_pp_token_advantages(tr, mask, gamma=0.9), expected)
    # Note: on interior mask gaps (multi-turn observation tokens) the references differ: verl's
    # REINFORCE++ resets the return at a masked token, OpenRLHF zeroes its reward but still
    # discounts across it; rlcore skips the gap (as verl's GAE does). Right-padded rows, as here,
    # give the same numbers in all three.


@pytest.mark.parametrize("group_size", [3, None])
def test_reinforce_pp_token_path_equals_outcome_path_without_kl(group_size):
    # With the outcome alone on each response's last token and gamma = 1, every token's return is
    # the outcome, so the token-level path is the outcome path broadcast over the tokens.
    r = torch.tensor(PP_REWARDS)
    x = r.view(2, 3) - r.view(2, 3).mean(dim=1, keepdim=True) if group_size else r
    mask = right_padded(PP_LENGTHS, 5)
    tr = torch.full((6, 5), X) * (1 - mask)  # garbage in the padding
    for b, n in enumerate(PP_LENGTHS):
        if n:
            tr[b, n - 1] = x.reshape(-1)[b]
    token = reinforce_pp_token_advantages(tr, mask, gamma=1.0)
    outcome = reinforce_pp_advantages(r, group_size, mask=mask)
    close(token, outcome[:, None] * mask)


def test_gspo_sequence_ratio_value_and_gradient():
    # GSPO (Zheng et al. 2025, eq. 5-7 / verl compute_policy_loss_gspo):
    # s_i = exp(mean_t (log pi - log pi_old)), loss_i = -min(s_i A_i, clip(s_i, 1-3e-4, 1+4e-4) A_i)
    # carried by every token of response i, aggregated seq-mean-token-mean.
    deltas = [
        [3e-4, -1e-4, 1e-4, 1e-4],
        [1.5e-3, 5e-4],
        [-2e-3, 0.0, -1e-3],
        [],
        [4e-3, 1e-3, 1e-3],
    ]
    adv = torch.tensor([1.5, 0.5, -1.0, 0.7, -0.8])
    mask = right_padded([len(d) for d in deltas], 4)
    old = torch.tensor([[-1.25, -0.5, -2.0, -0.75]]).repeat(5, 1) * mask
    lp = (old + torch.tensor([d + [50.0] * (4 - len(d)) for d in deltas])).requires_grad_(True)
    loss, clipped = gspo_loss(lp, old, adv, mask)
    # s = [1.0001000, 1.0010005 (> 1+4e-4, clipped), 0.9990005 (< 1-3e-4, A < 0: clipped), -,
    #      1.0020020 (> 1+4e-4 but A < 0: the unclipped term is the min)]
    seq = [-1.500150008, -0.5002, 0.9997, 0.0, 0.8016016011]
    close(loss, torch.tensor(seq)[:, None] * mask)
    close(clipped, torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0])[:, None] * mask)
    objective = aggregate(loss, mask, "seq-mean-token-mean")
    close(objective, -0.0497621016)  # mean over the 4 non-empty responses
    # Paper's gradient (GSPO gradient analysis): d loss / d log pi_i,t = -(1/G) s_i A_i / |y_i| for unclipped
    # responses, 0 for clipped ones and padding: -1.50015/16 and 0.8016016/12.
    objective.backward()
    grad = torch.tensor([-0.09375937547, 0.0, 0.0, 0.0, 0.06680013342])
    close(lp.grad, grad[:, None] * mask)
    # Difference: verl clamps log s at 10 for stability, rlcore at 20. With mean log-ratio 12 and
    # A = -1 (unclipped branch) rlcore gives exp(12) = 162754.79 where verl gives exp(10) = 22026.47.
    big, _ = gspo_loss(
        torch.full((1, 2), 12.0), torch.zeros(1, 2), torch.tensor([-1.0]), torch.ones(1, 2)
    )
    close(big, [[162754.791419, 162754.791419]], rtol=1e-5)


def test_ppo_clip_and_dual_clip():
    # PPO (Schulman et al. 2017, eq. 7 / verl compute_policy_loss_vanilla), eps 0.2:
    # loss = -min(rho A, clip(rho, 0.8, 1.2) A); rho inside, below and above the range, A = +-2.
    # Dual clip (Ye et al. 2020; verl clip_ratio_c = 3): for A < 0, loss = min(loss, -c A).
    rho = torch.tensor([0.5, 0.9, 1.1, 1.5, 5.0])
    lp, old, adv = torch.log(rho).repeat(2, 1), torch.zeros(2, 5), torch.tensor([2.0, -2.0])
    loss, clipped = clipped_surrogate(lp, old, adv)
    close(loss, [[-1.0, -1.8, -2.2, -2.4, -2.4], [1.6, 1.8, 2.2, 3.0, 10.0]], rtol=1e-5)
    close(clipped, [[0, 0, 0, 1, 1], [1, 0, 0, 0, 0]])
    # rho = 5 with A = -2: 10 > 3 * 2, so dual clip caps it at 6; rho = 1.5 (3.0) stays.
    loss, clipped = clipped_surrogate(lp, old, adv, dual_clip=3.0)
    close(loss, [[-1.0, -1.8, -2.2, -2.4, -2.4], [1.6, 1.8, 2.2, 3.0, 6.0]], rtol=1e-5)
    close(clipped, [[0, 0, 0, 1, 1], [1, 0, 0, 0, 1]])
    # Difference: verl clamps log rho to [-20, 20] before exp; rlcore does not (the paper's ratio).
    # log rho = 25, A = -1, no dual clip: rlcore exp(25) = 7.2004899e10, verl exp(20) = 4.8516520e8.
    huge, _ = clipped_surrogate(torch.tensor([[25.0]]), torch.zeros(1, 1), torch.tensor([-1.0]))
    close(huge, [[72004899337.38588]], rtol=1e-5)


def test_gae_returns_and_whitening():
    # GAE (Schulman et al. 2016, eq. 16 / verl compute_gae_advantage_return), gamma 0.9, lam 0.8:
    # delta_t = r_t + gamma V_next - V_t, A_t = delta_t + gamma lam A_next, V after the last token 0,
    # returns = A + V. Row 1 is right-padded (garbage), row 2 has an interior masked token that is
    # skipped (verl: "skip values and TD-error on observation tokens"), row 3 is empty.
    rewards = torch.tensor(
        [[-0.01, -0.02, 0.03, 1.0], [0.0, 0.5, X, X], [0.1, X, -0.2, 1.0], [X, X, X, X]]
    )
    values = torch.tensor([[0.5, 0.6, 0.7, 0.8], [0.2, 0.4, -X, X], [0.3, X, 0.1, 0.9], [X] * 4])
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0], [1, 0, 1, 1], [0, 0, 0, 0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    close(
        adv,
        [[0.1377696, 0.14968, 0.194, 0.2], [0.232, 0.1, 0, 0], [0.30904, 0, 0.582, 0.1], [0] * 4],
    )
    # rlcore zeroes padding; verl leaves A carried / A + V there (never read under the mask).
    close(
        ret,
        [[0.6377696, 0.74968, 0.894, 1.0], [0.432, 0.5, 0, 0], [0.60904, 0, 0.682, 1.0], [0] * 4],
    )
    # verl whitens inside compute_gae_advantage_return (masked_whiten: unbiased var + 1e-8); rlcore
    # returns raw A and the PPO strategy applies masked_whiten.
    whitened = [
        [-0.565350998, -0.486087428, -0.191138356, -0.151208428],
        [0.0617511907, -0.816707235, 0.0, 0.0],
        [0.574451472, 0.0, 2.39099702, -0.816707235],
        [0.0, 0.0, 0.0, 0.0],
    ]
    close(masked_whiten(adv, mask), whitened)


def test_clipped_value_loss():
    # PPO value clipping (verl compute_value_loss / OpenRLHF ValueLoss):
    # 0.5 * max((v - R)^2, (clip(v, v_old - 0.2, v_old + 0.2) - R)^2).
    v = torch.tensor([[1.5, 1.5, 0.9], [0.0, 0.0, X]])
    old = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, -X]])
    ret = torch.tensor([[1.0, 2.0, 0.0], [0.5, 1.0, X * 3]])
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0]])
    loss, clipped = clipped_value_loss(v, old, ret, mask, clip=0.2)
    close(loss, [[0.125, 0.32, 0.405], [0.125, 0.5, 0.0]])  # (1.2 - 2)^2 / 2 = 0.32 is clipped
    close(clipped, [[0, 1, 0], [0, 0, 0]])
    # Convention: rlcore puts the 0.5 in each token's loss; verl multiplies the aggregated loss by
    # 0.5 (OpenRLHF likewise). Aggregation is linear, so token-mean gives verl's 0.5 * 0.59.
    close(aggregate(loss, mask, "token-mean"), 0.295)
    plain, _ = clipped_value_loss(v, old, ret, mask, clip=None)  # no clip: 0.5 * (v - R)^2
    close(plain, [[0.125, 0.125, 0.405], [0.125, 0.5, 0.0]])


def test_kl_estimators_k1_k2_k3():
    # Schulman, "Approximating KL divergence" (2020), samples from pi_theta, d = log pi_ref - log pi:
    # k1 = -d = logp - logref (verl "kl"/"k1"), k2 = d^2 / 2 (verl "mse"/"k2"),
    # k3 = exp(d) - d - 1 (verl "low_var_kl"/"k3").
    logp = torch.tensor([[-0.5, -1.2, -2.0, -0.3, -3.0, -4.0]])
    logref = torch.tensor([[-1.5, -1.3, -2.0, 0.0, -1.0, -1.0]])  # d = [-1, -.1, 0, .3, 2, 3]
    close(kl_estimate(logp, logref, "k1"), [[1.0, 0.1, 0.0, -0.3, -2.0, -3.0]], rtol=1e-5)
    close(kl_estimate(logp, logref, "k2"), [[0.5, 0.005, 0.0, 0.045, 2.0, 4.5]], rtol=1e-5)
    k3 = [[0.367879441, 0.00483741804, 0.0, 0.0498588076, 4.3890561, 16.0855369]]
    close(kl_estimate(logp, logref, "k3"), k3, rtol=1e-5)
    # Direction: under x ~ p, E[k1] = E[k3] = KL(p || q) exactly (0.21801191 for these p, q), and
    # k2 is biased (0.20905830). A reversed log-ratio would give -KL for k1.
    p, q = torch.tensor([[0.5, 0.3, 0.2]]), torch.tensor([[0.25, 0.25, 0.5]])
    for kind, want in (("k1", 0.218011911), ("k3", 0.218011911), ("k2", 0.2090582965)):
        close((p * kl_estimate(p.log(), q.log(), kind)).sum(), want)
    # Difference: both clamp d to [-20, 20] before exp, but verl ALSO clamps the k3 value to
    # [-10, 10]; rlcore does not: d = 3 gives 16.0855 above (verl: 10), d = 25 gives
    # exp(20) - 20 - 1 = 485165174.4 (verl: 10).
    close(
        kl_estimate(torch.zeros(1, 1), torch.full((1, 1), 25.0), "k3"), [[485165174.4]], rtol=1e-5
    )


def test_tis_weights():
    # Truncated importance sampling (Yao et al. 2025, "Your efficient RL framework secretly brings
    # you off-policy RL training"; verl tis_imp_ratio_cap / OpenRLHF): w = min(exp(log pi_learner -
    # log pi_rollout), C), C = 2, a constant (no gradient) multiplying each token's loss.
    learner = torch.tensor([[-1.0, -0.7, -0.2, 0.0, 0.5]], requires_grad=True)
    rollout = torch.tensor([[-0.5, -0.7, -0.5, -1.0, -2.0]])  # d = [-.5, 0, .3, 1, 2.5]
    w = tis_weights(learner, rollout, cap=2.0)
    close(w, [[0.60653066, 1.0, 1.34985881, 2.0, 2.0]])
    assert not w.requires_grad
