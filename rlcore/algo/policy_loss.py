"""Policy-gradient losses and loss aggregation: pure tensor functions with documented shapes.

Losses return a per-token loss [B, T] (to minimise) and a per-token clip indicator [B, T]; turn them
into one scalar with `aggregate` (or `token_mean`) under the response mask [B, T].
"""

from __future__ import annotations

import torch


def clipped_surrogate(
    logprob: torch.Tensor,
    old_logprob: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, per token, as a loss to minimise.

    logprob, old_logprob: [B, T] logprobs of the sampled tokens under the current / behaviour policy.
    advantages: [B] (one per response, broadcast over tokens) or [B, T].
    returns: (loss [B, T], clipped [B, T] float: 1 where a clipped branch was taken).
    loss = -min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A); separate low/high bounds
    are DAPO's clip-higher (equal bounds give PPO).
    dual_clip: c > 1 turns on dual-clip PPO (Ye et al. 2020): where A < 0 the loss is further capped
    at -c * A, so a huge ratio on a negative-advantage token cannot blow the update up. None = off.
    """
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
    if advantages.ndim == 1:
        advantages = advantages.unsqueeze(-1)
    ratio = torch.exp(logprob - old_logprob)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * advantages
    loss = -torch.minimum(unclipped, clipped)
    was_clipped = (clipped < unclipped).float()
    if dual_clip is not None:
        cap = -dual_clip * advantages
        dual = (advantages < 0) & (loss > cap)
        loss = torch.where(dual, cap.expand_as(loss), loss)
        was_clipped = torch.maximum(was_clipped, dual.float())
    return loss, was_clipped


def gspo_loss(
    logprob: torch.Tensor,
    old_logprob: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 3e-4,
    clip_high: float = 4e-4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GSPO (Zheng et al. 2025): a sequence-level importance ratio, clipped per sequence.

    logprob, old_logprob, mask: [B, T]. advantages: [B] (one per sequence), or [B, T] (GSPO-token).
    returns: (loss [B, T], clipped [B, T]), 0 where mask is 0.
    s_i = exp(mean over the sequence's unmasked tokens of (logprob - old_logprob)); the loss of
    sequence i is -min(s_i * A_i, clip(s_i, 1 - clip_low, 1 + clip_high) * A_i). It is written per
    token in the GSPO-token form s_i,t = sg[s_i] * pi_t / sg[pi_t]: every token of sequence i carries
    the value of sequence i's loss, and aggregate(..., "seq-mean-token-mean") gives exactly GSPO's
    objective and gradient (mean over sequences of the sequence loss). Default clip ranges are the
    paper's (sequence ratios sit much closer to 1 than token ratios).
    """
    m = mask.float()
    if advantages.ndim == 1:
        advantages = advantages.unsqueeze(-1)
    log_ratio = torch.where(m > 0, logprob - old_logprob, torch.zeros_like(m))
    seq_log_ratio = log_ratio.sum(dim=1, keepdim=True) / m.sum(dim=1, keepdim=True).clamp(min=1.0)
    # value s_i at every token, gradient that of log pi_t scaled by s_i (the GSPO-token form)
    log_s = logprob - logprob.detach() + seq_log_ratio.detach()
    ratio = torch.exp(log_s.clamp(max=20.0))
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * advantages
    loss = -torch.minimum(unclipped, clipped) * m
    was_clipped = (clipped < unclipped).float() * m
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


AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")


def aggregate(
    token_loss: torch.Tensor,
    mask: torch.Tensor,
    mode: str,
    constant: float | None = None,
    *,
    num_tokens: float | None = None,
    num_seqs: float | None = None,
) -> torch.Tensor:
    """Reduce a per-token loss [B, T] under mask [B, T] to a scalar.

    "token-mean":          sum over all unmasked tokens / number of unmasked tokens (DAPO); every
                           token weighs the same, so long responses weigh more.
    "seq-mean-token-mean": mean over sequences of each sequence's token mean (GRPO paper); every
                           sequence weighs the same, so a long response's tokens weigh less.
    "seq-mean-token-sum":  mean over sequences of each sequence's token sum, divided by `constant`
                           when given (Dr. GRPO: constant = the max generation length, so no
                           per-response length normalisation).
    Sequences with no unmasked token are not counted. num_tokens / num_seqs replace the local
    denominators with the GLOBAL counts of the whole batch (all micro-batches, all ranks), so that
    summing the micro-batch losses gives exactly the loss of one big batch.
    """
    m = mask.float()
    x = torch.where(m > 0, token_loss, torch.zeros_like(token_loss))
    if mode == "token-mean":
        denom = m.sum() if num_tokens is None else torch.tensor(float(num_tokens))
        return x.sum() / denom.clamp(min=1.0)
    lengths = m.sum(dim=1)
    seq = x.sum(dim=1)
    if mode == "seq-mean-token-mean":
        seq = seq / lengths.clamp(min=1.0)
    elif mode == "seq-mean-token-sum":
        if constant is not None:
            seq = seq / constant
    else:
        raise ValueError(f"unknown loss aggregation {mode!r} ({', '.join(AGG_MODES)})")
    n = (lengths > 0).float().sum() if num_seqs is None else torch.tensor(float(num_seqs))
    return seq.sum() / n.clamp(min=1.0)
