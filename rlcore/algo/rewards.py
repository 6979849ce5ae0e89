"""Reward shaping on plain tensors: DAPO's soft overlong penalty and overlong filtering.

Shapes: length, truncated [B] (one per response); mask [B, T].
"""

from __future__ import annotations

import torch


def overlong_penalty(length: torch.Tensor, max_len: int, cache_len: int) -> torch.Tensor:
    """DAPO's soft overlong punishment, added to the task reward.

    length: [B] response lengths in tokens. max_len: the generation cap L_max. cache_len: L_cache.
    returns: float [B] in [-1, 0]:
        0                                   if length <= max_len - cache_len
        (max_len - cache_len - length) / cache_len   if max_len - cache_len < length <= max_len
        -1                                  if length > max_len
    i.e. linear from 0 to -1 over the last cache_len tokens before the cap.
    """
    if not 0 <= cache_len <= max_len:
        raise ValueError(f"need 0 <= cache_len <= max_len, got {cache_len}, {max_len}")
    expected = max_len - cache_len
    over = length.float() - expected
    penalty = -over / max(cache_len, 1)
    penalty = torch.where(over <= 0, torch.zeros_like(penalty), penalty)
    return penalty.clamp(min=-1.0).where(length <= max_len, torch.full_like(penalty, -1.0))


def overlong_filter_mask(truncated: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """DAPO's overlong filtering: truncated responses are excluded from the loss.

    truncated: [B] bool, True where the engine stopped the response at the length cap (finish
    reason "length", not EOS; a length equal to the cap alone does not tell them apart).
    mask: optional [B, T] response mask.
    returns: float [B] keep flags (0 for truncated) when mask is None, else mask [B, T] with the
    rows of truncated responses zeroed. The responses stay in the batch (their rewards still shape
    the group baseline); they only add nothing to the loss or its token count.
    """
    keep = (~truncated.bool()).float()
    if mask is None:
        return keep
    return mask.float() * keep.unsqueeze(-1)
