"""Critic losses for PPO: pure tensor functions with documented shapes."""

from __future__ import annotations

import torch


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float | None = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped value loss, per token, as a loss to minimise.

    values: [B, T] the critic's current predictions; old_values: [B, T] its predictions at rollout
    time; returns: [B, T] the regression targets (e.g. from gae); mask: [B, T].
    returns: (loss [B, T], clipped [B, T] float: 1 where the clipped term was the larger), 0 where
    mask is 0.
    v_clip = old_values + clamp(values - old_values, -clip, clip);
    loss = 0.5 * max((values - returns)^2, (v_clip - returns)^2). clip=None: plain 0.5 * squared error.
    Aggregate with policy_loss.aggregate like the policy loss.
    """
    m = mask.float()
    unclipped = (values - returns).square()
    if clip is None:
        loss, was_clipped = unclipped, torch.zeros_like(unclipped)
    else:
        v_clip = old_values + (values - old_values).clamp(-clip, clip)
        clipped = (v_clip - returns).square()
        loss = torch.maximum(unclipped, clipped)
        was_clipped = (clipped > unclipped).float()
    zero = torch.zeros_like(loss)
    return torch.where(m > 0, 0.5 * loss, zero), torch.where(m > 0, was_clipped, zero)
