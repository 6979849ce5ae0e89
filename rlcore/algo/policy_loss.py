"""Policy-gradient losses and loss aggregation: pure tensor functions with documented shapes."""

from __future__ import annotations

import torch


def clipped_surrogate(
    logprob: torch.Tensor,
    old_logprob: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, per token, as a loss to minimise.

    logprob, old_logprob: [B, T] logprobs of the sampled tokens under the current / behaviour policy.
    advantages: [B] (one per response, broadcast over tokens) or [B, T].
    returns: (loss [B, T], clipped [B, T] float: 1 where the clipped branch was taken).
    loss = -min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A); separate low/high bounds
    are DAPO's clip-higher (equal bounds give PPO).
    """
    if advantages.ndim == 1:
        advantages = advantages.unsqueeze(-1)
    ratio = torch.exp(logprob - old_logprob)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * advantages
    loss = -torch.minimum(unclipped, clipped)
    was_clipped = (clipped < unclipped).float()
    return loss, was_clipped


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of values [B, T] where mask [B, T] is 1 (the numerator of token-mean aggregation)."""
    return (values * mask).sum()


def token_mean(
    values: torch.Tensor, mask: torch.Tensor, num_tokens: float | None = None
) -> torch.Tensor:
    """Token-level aggregation: sum over all unmasked tokens / num_tokens.

    num_tokens defaults to mask.sum(); pass the GLOBAL token count of the whole batch (all
    micro-batches, all ranks) so that gradient accumulation and data parallelism give exactly the
    update of one big batch (DAPO's token-level loss; no per-response length normalisation).
    """
    denom = mask.sum() if num_tokens is None else torch.tensor(float(num_tokens))
    return masked_sum(values, mask) / denom.clamp(min=1.0)
