"""Train/inference mismatch: truncated importance sampling and the statistics users debug first.

The engine samples with its own kernels (vLLM), the learner scores the same tokens with others
(DeepSpeed/transformers), so pi_rollout != pi_learner even with identical weights; with stale
(async) rollouts they differ more. Shapes: learner_logprob, rollout_logprob, mask [B, T].
"""

from __future__ import annotations

import torch


def tis_weights(
    learner_logprob: torch.Tensor, rollout_logprob: torch.Tensor, cap: float
) -> torch.Tensor:
    """Truncated importance weights min(pi_learner / pi_rollout, cap), per token [B, T], no gradient.

    Multiplying each token's policy-gradient loss by this weight corrects for sampling from
    pi_rollout instead of pi_learner (Yao et al. 2025, "Your efficient RL framework secretly brings
    you off-policy RL training"); the cap bounds the variance.
    """
    if cap <= 0:
        raise ValueError(f"tis cap must be > 0, got {cap}")
    log_w = (learner_logprob.detach().float() - rollout_logprob.float()).clamp(max=20.0)
    return torch.exp(log_w).clamp(max=cap)


def mismatch_sums(
    learner_logprob: torch.Tensor,
    rollout_logprob: torch.Tensor,
    mask: torch.Tensor,
    cap: float | None = None,
) -> dict[str, torch.Tensor]:
    """Per-token SUMS under the mask (divide by the token count, over all micro-batches and ranks):

    mismatch_abs    |log pi_learner - log pi_rollout|
    mismatch_kl     k3 estimate of KL(pi_rollout || pi_learner) from the rollout's samples:
                    exp(d) - 1 - d with d = log pi_learner - log pi_rollout (>= 0, unbiased)
    tis_weight      the (truncated, when cap is given) importance weight
    tis_truncated   1 where the weight hit the cap
    Also `mismatch_abs_max` (a max, not a sum).
    """
    m = mask.float()
    d = (learner_logprob.detach().float() - rollout_logprob.float()).clamp(-20.0, 20.0)
    d = torch.where(m > 0, d, torch.zeros_like(d))
    w = torch.exp(d)
    out = {
        "mismatch_abs": (d.abs() * m).sum(),
        "mismatch_kl": ((w - 1.0 - d) * m).sum(),
        "mismatch_abs_max": (d.abs() * m).max() if m.numel() else torch.tensor(0.0),
    }
    if cap is not None:
        out["tis_weight"] = (w.clamp(max=cap) * m).sum()
        out["tis_truncated"] = ((w > cap).float() * m).sum()
    return out
