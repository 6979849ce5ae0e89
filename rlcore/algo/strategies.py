"""Algorithms as small strategy objects over the pure functions of this package.

The learner asks an algorithm four things: whether it needs a frozen reference model, the advantages
of a rollout batch (rewards of contiguous prompt groups -> one scalar per response), the per-token
loss of a micro-batch, and how to aggregate it (`loss_agg`). The trainer builds one with
`make_algorithm(type, ...)` from `algo.type` and never branches on its name.

    grpo          group mean/std advantages, PPO clip (clip-higher when clip_high > clip_low)
    drgrpo        Dr. GRPO: no std normalisation, token sums divided by a constant (max tokens)
    rloo          leave-one-out group baseline
    reinforce_pp  REINFORCE++: global batch normalisation (optionally after a group baseline)
    gspo          GSPO: sequence-level importance ratio, clipped per sequence
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from rlcore.algo.advantages import (
    drgrpo_advantages,
    grpo_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
)
from rlcore.algo.kl import kl_estimate
from rlcore.algo.policy_loss import aggregate, clipped_surrogate, gspo_loss


@dataclass(frozen=True)
class GRPO:
    group_size: int
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float | None = None  # > 1: cap the loss of negative-advantage tokens (dual-clip PPO)
    std_normalize: bool = True
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    entropy_coef: float = 0.0
    loss_agg: str = "token-mean"  # token-mean | seq-mean-token-mean | seq-mean-token-sum
    loss_agg_constant: float | None = None  # seq-mean-token-sum: divide token sums by this

    @property
    def needs_reference(self) -> bool:
        return self.kl_coef > 0

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        """rewards [N] (groups contiguous) -> advantages [N]."""
        return grpo_advantages(rewards, self.group_size, self.std_normalize)

    def policy_loss(
        self,
        logprob: torch.Tensor,
        old_logprob: torch.Tensor,
        advantages: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token surrogate loss [B, T] and clip indicator [B, T]."""
        return clipped_surrogate(
            logprob, old_logprob, advantages, self.clip_low, self.clip_high, self.dual_clip
        )

    def token_loss(
        self,
        logprob: torch.Tensor,
        old_logprob: torch.Tensor,
        advantages: torch.Tensor,
        entropy: torch.Tensor,
        ref_logprob: torch.Tensor | None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-token loss [B, T] and per-token stats [B, T] (to be aggregated under the mask)."""
        if mask is None:
            mask = torch.ones_like(logprob)
        loss, clipped = self.policy_loss(logprob, old_logprob, advantages, mask)
        stats = {"clip_frac": clipped, "entropy": entropy.detach()}
        if self.entropy_coef:
            loss = loss - self.entropy_coef * entropy
        if ref_logprob is not None:
            kl = kl_estimate(logprob, ref_logprob, self.kl_estimator)
            loss = loss + self.kl_coef * kl
            stats["kl"] = kl.detach()
        return loss, stats

    def aggregate(
        self, token_loss: torch.Tensor, mask: torch.Tensor, num_tokens: float, num_seqs: float
    ) -> torch.Tensor:
        """This micro-batch's share of the whole batch's scalar loss (global denominators)."""
        return aggregate(
            token_loss,
            mask,
            self.loss_agg,
            self.loss_agg_constant,
            num_tokens=num_tokens,
            num_seqs=num_seqs,
        )


@dataclass(frozen=True)
class DrGRPO(GRPO):
    """Dr. GRPO (Liu et al. 2025): no std normalisation and no per-response length normalisation."""

    std_normalize: bool = False
    loss_agg: str = "seq-mean-token-sum"

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        return drgrpo_advantages(rewards, self.group_size)


@dataclass(frozen=True)
class RLOO(GRPO):
    """RLOO: each response's baseline is the mean reward of the other responses to its prompt."""

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        return rloo_advantages(rewards, self.group_size)


@dataclass(frozen=True)
class ReinforcePP(GRPO):
    """REINFORCE++: advantages normalised over the whole batch; `group_baseline` subtracts each
    prompt's mean first (REINFORCE++ with baseline)."""

    group_baseline: bool = True

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        return reinforce_pp_advantages(rewards, self.group_size if self.group_baseline else None)


@dataclass(frozen=True)
class GSPO(GRPO):
    """GSPO (Zheng et al. 2025): GRPO's advantages with a sequence-level, length-normalised ratio."""

    clip_low: float = 3e-4
    clip_high: float = 4e-4
    loss_agg: str = "seq-mean-token-mean"

    def policy_loss(
        self,
        logprob: torch.Tensor,
        old_logprob: torch.Tensor,
        advantages: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return gspo_loss(logprob, old_logprob, advantages, mask, self.clip_low, self.clip_high)


ALGORITHMS: dict[str, type[GRPO]] = {
    "grpo": GRPO,
    "drgrpo": DrGRPO,
    "rloo": RLOO,
    "reinforce_pp": ReinforcePP,
    "gspo": GSPO,
}


def make_algorithm(type: str, **fields: object) -> GRPO:  # noqa: A002 - the config key's name
    """The algorithm named by `algo.type`; fields left out (or None) keep its own defaults."""
    if type not in ALGORITHMS:
        raise ValueError(f"unknown algo.type {type!r}; known: {', '.join(ALGORITHMS)}")
    cls = ALGORITHMS[type]
    given = {k: v for k, v in fields.items() if v is not None}
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"algo.type={type} has no option {', '.join(unknown)}")
    return cls(**given)  # type: ignore[arg-type]
