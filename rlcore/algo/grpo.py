"""GRPO as a small strategy object over the pure functions in this package.

The learner asks an algorithm three things: which extra models it needs (a frozen reference when the
KL coefficient is positive), the advantages of a rollout batch, and the per-token loss of a
micro-batch. The trainer never branches on the algorithm's name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlcore.algo.advantages import grpo_advantages
from rlcore.algo.kl import kl_estimate
from rlcore.algo.policy_loss import clipped_surrogate


@dataclass(frozen=True)
class GRPO:
    group_size: int
    clip_low: float = 0.2
    clip_high: float = 0.2
    std_normalize: bool = True
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    entropy_coef: float = 0.0

    @property
    def needs_reference(self) -> bool:
        return self.kl_coef > 0

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        """rewards [N] (groups contiguous) -> advantages [N]."""
        return grpo_advantages(rewards, self.group_size, self.std_normalize)

    def token_loss(
        self,
        logprob: torch.Tensor,
        old_logprob: torch.Tensor,
        advantages: torch.Tensor,
        entropy: torch.Tensor,
        ref_logprob: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-token loss [B, T] and per-token stats [B, T] (to be aggregated under the mask)."""
        loss, clipped = clipped_surrogate(
            logprob, old_logprob, advantages, self.clip_low, self.clip_high
        )
        stats = {"clip_frac": clipped, "entropy": entropy.detach()}
        if self.entropy_coef:
            loss = loss - self.entropy_coef * entropy
        if ref_logprob is not None:
            kl = kl_estimate(logprob, ref_logprob, self.kl_estimator)
            loss = loss + self.kl_coef * kl
            stats["kl"] = kl.detach()
        return loss, stats
