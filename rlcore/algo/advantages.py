"""Advantage estimators: pure tensor functions (no Ray, no torch.distributed, no config objects).

Outcome-reward estimators take rewards [N] with the G responses of one prompt contiguous
(N = num_prompts * group_size) and return one scalar per response [N], which the loss broadcasts over
that response's tokens. GAE and the token-level REINFORCE++ take per-token tensors [B, T] with a mask
[B, T] (1 = a response token that counts; ragged lengths are right-padded with 0).
"""

from __future__ import annotations

import torch


def _grouped(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """rewards [G * group_size] -> float [G, group_size], or ValueError on ragged groups."""
    if rewards.ndim != 1 or group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards {tuple(rewards.shape)} is not a multiple of group {group_size}")
    return rewards.float().view(-1, group_size)


def grpo_advantages(
    rewards: torch.Tensor, group_size: int, std_normalize: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """GRPO's group-relative advantage, one scalar per response.

    rewards: [G * group_size], responses of one prompt contiguous.
    returns: [G * group_size], (r - mean_group) / (std_group + eps) when std_normalize, else
    r - mean_group (Dr. GRPO's choice). std is the unbiased sample std, as in the GRPO reference code.
    A group whose rewards are all equal gets advantage 0 for every response.
    """
    grouped = _grouped(rewards, group_size)
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    if std_normalize and group_size > 1:
        centered = centered / (grouped.std(dim=1, keepdim=True) + eps)
    return centered.reshape(-1)


def drgrpo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Dr. GRPO ("Understanding R1-Zero-Like Training"): r - mean_group, with no std division.

    rewards: [G * group_size] -> [G * group_size]. The paper's other half (no per-response length
    normalisation, a constant normaliser) lives in the loss: policy_loss.aggregate(...,
    "seq-mean-token-sum", constant=max_len).
    """
    return grpo_advantages(rewards, group_size, std_normalize=False)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO: each response's baseline is the mean reward of the OTHER responses of its prompt.

    rewards: [G * group_size] -> [G * group_size].
    A_i = r_i - (sum_j r_j - r_i) / (k - 1) = k / (k - 1) * (r_i - mean_group), k = group_size >= 2.
    """
    if group_size < 2:
        raise ValueError(f"RLOO needs group_size >= 2 (a leave-one-out baseline), got {group_size}")
    grouped = _grouped(rewards, group_size)
    baseline = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)
    return (grouped - baseline).reshape(-1)


def reinforce_pp_advantages(
    rewards: torch.Tensor,
    group_size: int | None = None,
    mask: torch.Tensor | None = None,
    eps: float = 1e-8,
) -> torch.Tensor:
    """REINFORCE++ with an outcome reward: global batch normalisation, optional group baseline.

    rewards: [B] one scalar per response. returns: [B] (broadcast over the response's tokens).
    group_size: when given ("REINFORCE++ with baseline"), first subtract each prompt's group mean
        (responses of one prompt contiguous, B = G * group_size); None skips this step.
    mask: optional [B, T]. The statistics are then taken over TOKENS, each response's value counted
        once per unmasked token, as the reference implementations whiten the broadcast [B, T]
        advantage under the response mask; None weighs every response once.
    A = (x - mean) / sqrt(var + eps), mean and unbiased var over the whole batch (all prompts).
    """
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be [B], got {tuple(rewards.shape)}")
    x = rewards.float() if group_size is None else group_centered(rewards, group_size)
    weight = torch.ones_like(x) if mask is None else mask.float().sum(dim=1)
    return _weighted_whiten(x, weight, eps)


def group_centered(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """rewards [G * group_size] -> float [G * group_size], each minus its prompt group's mean."""
    grouped = _grouped(rewards, group_size)
    return (grouped - grouped.mean(dim=1, keepdim=True)).reshape(-1)


def _weighted_whiten(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """(x - mean_w) / sqrt(var_w + eps); var_w unbiased with n = sum(weight) (integer weights)."""
    n = weight.sum()
    mean = (x * weight).sum() / n.clamp(min=1.0)
    var = ((x - mean).square() * weight).sum() / (n - 1).clamp(min=1.0)
    return (x - mean) * torch.rsqrt(var + eps)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise values [B, T] by the mean and unbiased std of its unmasked entries; masked -> 0.

    values, mask: [B, T] -> [B, T]. (x - mean) / sqrt(var + eps) over all tokens with mask 1.
    """
    m = mask.float()
    x = torch.where(m > 0, values.float(), torch.zeros_like(m))  # padding may hold garbage
    return _weighted_whiten(x, m, eps) * m


def discounted_returns(
    token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0
) -> torch.Tensor:
    """Reward-to-go per token: G_t = r_t + gamma * G_{t'}, t' the next unmasked token of the row.

    token_rewards, mask: [B, T] -> [B, T]; masked tokens neither add reward nor break the chain
    (a masked gap is skipped), and get return 0.
    """
    m = mask.float()
    r = token_rewards.float()
    out = torch.zeros_like(r)
    running = torch.zeros_like(r[:, 0])
    for t in reversed(range(r.shape[1])):
        running = torch.where(m[:, t] > 0, r[:, t] + gamma * running, running)
        out[:, t] = running * m[:, t]
    return out


def reinforce_pp_token_advantages(
    token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, eps: float = 1e-8
) -> torch.Tensor:
    """REINFORCE++ with per-token rewards (e.g. the outcome on the last token plus a per-token KL
    penalty): discounted reward-to-go, then whitened over all unmasked tokens of the batch.

    token_rewards, mask: [B, T] -> advantages [B, T] (0 where mask is 0).
    """
    return masked_whiten(discounted_returns(token_rewards, mask, gamma), mask, eps)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) for a critic.

    rewards: [B, T] per-token rewards (typically the outcome on the last response token, plus any
        per-token KL penalty). values: [B, T] critic values V(s_t). mask: [B, T], 1 on response tokens.
    returns: (advantages [B, T], returns [B, T] = advantages + values), both 0 where mask is 0.
    delta_t = r_t + gamma * V(s_next) - V(s_t); A_t = delta_t + gamma * lam * A_next, where "next" is
    the next UNMASKED token of the row: masked tokens contribute nothing (their rewards and values
    are ignored, a masked gap is skipped) and the value after a row's last unmasked token is 0 (the
    episode ends there). No whitening here: compose with masked_whiten if wanted.
    """
    m = mask.float()
    r, v = rewards.float(), values.float()
    adv = torch.zeros_like(r)
    next_value = torch.zeros_like(r[:, 0])
    next_adv = torch.zeros_like(r[:, 0])
    for t in reversed(range(r.shape[1])):
        delta = r[:, t] + gamma * next_value - v[:, t]
        a_t = delta + gamma * lam * next_adv
        keep = m[:, t] > 0
        next_adv = torch.where(keep, a_t, next_adv)
        next_value = torch.where(keep, v[:, t], next_value)
        adv[:, t] = next_adv * m[:, t]
    return adv, torch.where(m > 0, adv + v, torch.zeros_like(v))


def outcome_token_rewards(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Place each response's scalar reward on its LAST unmasked token.

    rewards: [B]; mask: [B, T] -> [B, T] (0 elsewhere; a row with no unmasked token gets nothing).
    """
    m = mask.float()
    t = torch.arange(m.shape[1], device=m.device).expand_as(m)
    last = torch.where(m > 0, t, torch.full_like(t, -1)).max(dim=1).values  # [B], -1 if empty
    out = torch.zeros_like(m)
    rows = torch.nonzero(last >= 0).squeeze(-1)
    out[rows, last[rows]] = rewards.float()[rows]
    return out
