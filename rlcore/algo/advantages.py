"""Advantage estimators: pure tensor functions (no Ray, no torch.distributed, no config objects)."""

from __future__ import annotations

import torch


def grpo_advantages(
    rewards: torch.Tensor, group_size: int, std_normalize: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """GRPO's group-relative advantage, one scalar per response.

    rewards: [G * group_size], responses of one prompt contiguous.
    returns: [G * group_size], (r - mean_group) / (std_group + eps) when std_normalize, else
    r - mean_group (Dr. GRPO's choice). std is the unbiased sample std, as in the GRPO reference code.
    A group whose rewards are all equal gets advantage 0 for every response.
    """
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards {tuple(rewards.shape)} is not a multiple of group {group_size}")
    grouped = rewards.float().view(-1, group_size)
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    if std_normalize and group_size > 1:
        centered = centered / (grouped.std(dim=1, keepdim=True) + eps)
    return centered.reshape(-1)
