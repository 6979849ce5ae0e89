"""Algorithms as small strategy objects over the pure functions of this package.

The trainer and learner ask an algorithm what it needs (a reference model, a critic), how to shape
rewards and filter groups (DAPO), the advantages of a rollout batch (`estimate`), the per-token
loss of a micro-batch (`token_loss`) and how to aggregate it (`loss_agg`). The trainer builds one
with `make_algorithm(type, ...)` from `algo.type` and never branches on its name.

    grpo          group mean/std advantages, PPO clip (clip-higher when clip_high > clip_low)
    drgrpo        Dr. GRPO: no std normalisation, token sums divided by a constant (max tokens)
    dapo          DAPO: clip-higher, token-mean loss, dynamic sampling, soft overlong penalty
    rloo          leave-one-out group baseline
    reinforce_pp  REINFORCE++: token-level whitening over the batch (optionally after a group baseline)
    gspo          GSPO: sequence-level importance ratio, clipped per sequence
    ppo           PPO with a critic: GAE advantages (whitened), clipped value loss
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch

from rlcore.algo.advantages import (
    drgrpo_advantages,
    gae,
    group_centered,
    grpo_advantages,
    masked_whiten,
    outcome_token_rewards,
    reinforce_pp_advantages,
    reinforce_pp_token_advantages,
    rloo_advantages,
)
from rlcore.algo.kl import kl_estimate
from rlcore.algo.offpolicy import tis_weights
from rlcore.algo.policy_loss import AGG_MODES, aggregate, clipped_surrogate, gspo_loss
from rlcore.algo.rewards import overlong_filter_mask, overlong_penalty


@dataclass(frozen=True)
class Algorithm:
    """What every algorithm shares: the config's fields, reward shaping and group filtering, the
    KL and loss plumbing. A subclass defines its advantages (`advantages`, or `estimate` for
    token-level estimators) and may override the policy loss."""

    group_size: int
    # the most tokens the policy writes in one episode (rollout.max_tokens x rollout.max_turns):
    # L_max of the overlong penalty and Dr. GRPO's default loss constant, an upper bound either way
    max_tokens: int = 0
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float | None = None  # > 1: cap the loss of negative-advantage tokens (dual-clip PPO)
    std_normalize: bool = True
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    kl_placement: str = "loss"  # loss | reward (a per-token penalty before the advantages)
    entropy_coef: float = 0.0
    loss_agg: str = "token-mean"  # token-mean | seq-mean-token-mean | seq-mean-token-sum
    loss_agg_constant: float | None = None  # seq-mean-token-sum divisor; None: max_tokens
    tis_cap: float | None = None  # truncated importance sampling cap C; None = off
    dynamic_sampling: bool = False  # drop all-correct and all-wrong groups, sample more
    max_sample_rounds: int = 4  # dynamic sampling: rollout rounds per step at most
    overlong_buffer: int = 0  # > 0: soft overlong penalty over the last N tokens before the cap
    overlong_filter: bool = False  # truncated responses get no loss

    needs_critic: ClassVar[bool] = False
    # options of the shared schema this algorithm has but does not use: setting one is an error
    ignores: ClassVar[frozenset[str]] = frozenset()

    @property
    def needs_reference(self) -> bool:
        return self.kl_coef > 0

    @property
    def kl_in_reward(self) -> bool:
        return self.kl_coef > 0 and self.kl_placement == "reward"

    @property
    def zero_advantage_rows_are_inert(self) -> bool:
        """True when a row whose advantage is 0 on every token adds exactly 0 to the policy
        gradient: every loss here is the advantage times a ratio term, so only a KL or entropy
        term in the loss, or a critic trained on the same rows, gives such a row a gradient."""
        kl_in_loss = self.kl_coef > 0 and self.kl_placement == "loss"
        return not (kl_in_loss or self.entropy_coef != 0 or self.needs_critic)

    # ---- rewards and groups (called by the trainer before packing) -----------------------------
    def shape_rewards(self, rewards: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """rewards, lengths [N] -> rewards [N] with DAPO's soft overlong penalty when configured."""
        if self.overlong_buffer <= 0:
            return rewards
        return rewards + overlong_penalty(lengths, self.max_tokens, self.overlong_buffer)

    def keep_groups(self, outcomes: torch.Tensor) -> torch.Tensor:
        """outcomes [G * group_size] -> bool [G]: with dynamic sampling, False for a group whose
        outcomes are all equal (all correct or all wrong: no signal, only cost).

        outcomes: each sample's correctness as 0/1 (the verifier's `correct`, else its UNSHAPED
        reward), as DAPO's Eq. 11 and verl's recipe filter: judged before the overlong penalty, so
        that length differences alone never keep an all-wrong group."""
        grouped = outcomes.view(-1, self.group_size)
        if not self.dynamic_sampling:
            return torch.ones(grouped.shape[0], dtype=torch.bool)
        return (grouped.max(dim=1).values - grouped.min(dim=1).values) > 1e-6

    def loss_mask(self, mask: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
        """mask [N, T], truncated [N] bool -> the mask the loss uses (overlong filtering)."""
        return overlong_filter_mask(truncated, mask) if self.overlong_filter else mask

    # ---- advantages ----------------------------------------------------------------------------
    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        """rewards [N] (groups contiguous) -> advantages [N]."""
        raise NotImplementedError

    def estimate(
        self,
        rewards: torch.Tensor,
        mask: torch.Tensor,
        kl: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Advantages of a batch: ([N] or [N, T], critic returns [N, T] or None).

        rewards [N] outcome rewards; mask [N, T]; kl [N, T] the per-token KL to the reference (used
        when kl_placement=reward: outcome estimators subtract its masked sum from the reward);
        values [N, T] the critic's (only algorithms with a critic use them).
        """
        if kl is not None and self.kl_in_reward:
            rewards = rewards - self.kl_coef * (kl * mask).sum(dim=1)
        return self.advantages(rewards), None

    # ---- the loss ------------------------------------------------------------------------------
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
        rollout_logprob: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-token loss [B, T] and per-token stats [B, T] (to be aggregated under the mask).

        old_logprob: the learner's logprobs before this update (the PPO ratio's denominator);
        rollout_logprob: the engine's, for truncated importance sampling when tis_cap is set.
        """
        if mask is None:
            mask = torch.ones_like(logprob)
        loss, clipped = self.policy_loss(logprob, old_logprob, advantages, mask)
        stats = {"clip_frac": clipped, "entropy": entropy.detach()}
        if self.tis_cap is not None and rollout_logprob is not None:
            loss = loss * tis_weights(old_logprob, rollout_logprob, self.tis_cap)
        if self.entropy_coef:
            loss = loss - self.entropy_coef * entropy
        if ref_logprob is not None:
            kl = kl_estimate(logprob, ref_logprob, self.kl_estimator)
            if self.kl_placement == "loss":
                loss = loss + self.kl_coef * kl
            stats["kl"] = kl.detach()
        return loss, stats

    def aggregate(
        self, token_loss: torch.Tensor, mask: torch.Tensor, num_tokens: float, num_seqs: float
    ) -> torch.Tensor:
        """This micro-batch's share of the whole batch's scalar loss (global denominators)."""
        constant = self.loss_agg_constant
        if constant is None and self.max_tokens > 0:
            constant = float(self.max_tokens)
        return aggregate(
            token_loss, mask, self.loss_agg, constant, num_tokens=num_tokens, num_seqs=num_seqs
        )


@dataclass(frozen=True)
class GRPO(Algorithm):
    """GRPO (Shao et al. 2024): the group's mean (and std) as the baseline, PPO's clipped ratio."""

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        return grpo_advantages(rewards, self.group_size, self.std_normalize)


@dataclass(frozen=True)
class DrGRPO(GRPO):
    """Dr. GRPO (Liu et al. 2025): no std normalisation and no per-response length normalisation."""

    std_normalize: bool = False
    loss_agg: str = "seq-mean-token-sum"

    ignores: ClassVar[frozenset[str]] = frozenset({"std_normalize"})

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        return drgrpo_advantages(rewards, self.group_size)


@dataclass(frozen=True)
class DAPO(GRPO):
    """DAPO (Yu et al. 2025): clip-higher (0.2 / 0.28), token-level loss, dynamic sampling and the
    soft overlong penalty over the last quarter of the generation cap (unless overlong_buffer is
    given; the paper's 4k of 20k)."""

    clip_high: float = 0.28
    dynamic_sampling: bool = True
    overlong_buffer: int = -1  # -1: a quarter of max_tokens

    def shape_rewards(self, rewards: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.overlong_buffer != -1:
            return super().shape_rewards(rewards, lengths)
        buffer = max(self.max_tokens // 4, 1)
        return rewards + overlong_penalty(lengths, self.max_tokens, buffer)


@dataclass(frozen=True)
class RLOO(Algorithm):
    """RLOO: each response's baseline is the mean reward of the other responses to its prompt."""

    ignores: ClassVar[frozenset[str]] = frozenset({"std_normalize"})

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        return rloo_advantages(rewards, self.group_size)


@dataclass(frozen=True)
class ReinforcePP(Algorithm):
    """REINFORCE++ (Hu 2025): per-token rewards (the outcome on the last token, after subtracting
    the prompt's group mean when `group_baseline`, "REINFORCE++ with baseline"; minus the per-token
    KL penalty when kl_placement=reward), reward-to-go, whitened over every response token of the
    batch, as verl (compute_reinforce_plus_plus_outcome_advantage, ..._baseline) and OpenRLHF do.

    One rule on both paths: without a KL reward the reward-to-go of every token is the outcome
    itself, so the advantage is the outcome whitened with token-weighted statistics (each response
    counted once per loss token), exactly what the token path gives as kl_coef -> 0."""

    group_baseline: bool = True

    ignores: ClassVar[frozenset[str]] = frozenset({"std_normalize"})

    def estimate(
        self,
        rewards: torch.Tensor,
        mask: torch.Tensor,
        kl: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        group = self.group_size if self.group_baseline else None
        if kl is None or not self.kl_in_reward:
            return reinforce_pp_advantages(rewards, group, mask=mask), None
        r = rewards.float() if group is None else group_centered(rewards, group)
        token_rewards = outcome_token_rewards(r, mask) - self.kl_coef * kl * mask
        return reinforce_pp_token_advantages(token_rewards, mask), None

    def advantages(self, rewards: torch.Tensor) -> torch.Tensor:
        raise TypeError("ReinforcePP normalises over tokens: call estimate(rewards, mask)")


@dataclass(frozen=True)
class GSPO(GRPO):
    """GSPO (Zheng et al. 2025): GRPO's advantages with a sequence-level, length-normalised ratio."""

    clip_low: float = 3e-4
    clip_high: float = 4e-4
    loss_agg: str = "seq-mean-token-mean"

    ignores: ClassVar[frozenset[str]] = frozenset({"dual_clip"})

    def policy_loss(
        self,
        logprob: torch.Tensor,
        old_logprob: torch.Tensor,
        advantages: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return gspo_loss(logprob, old_logprob, advantages, mask, self.clip_low, self.clip_high)


@dataclass(frozen=True)
class PPO(Algorithm):
    """PPO with a learned critic: token rewards (the outcome on the last token, minus the KL penalty
    when kl_placement=reward), GAE (gamma, lam) advantages whitened over the batch, and a clipped
    value loss for the critic (a separate model: rlcore/learner/critic.py)."""

    gamma: float = 1.0
    lam: float = 0.95
    value_clip: float = 0.2

    needs_critic: ClassVar[bool] = True
    ignores: ClassVar[frozenset[str]] = frozenset({"std_normalize"})

    def estimate(
        self,
        rewards: torch.Tensor,
        mask: torch.Tensor,
        kl: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if values is None:
            raise ValueError("ppo needs the critic's values to estimate advantages")
        token_rewards = outcome_token_rewards(rewards, mask)
        if kl is not None and self.kl_in_reward:
            token_rewards = token_rewards - self.kl_coef * kl * mask
        adv, returns = gae(token_rewards, values, mask, self.gamma, self.lam)
        return masked_whiten(adv, mask), returns


ALGORITHMS: dict[str, type[Algorithm]] = {
    "grpo": GRPO,
    "drgrpo": DrGRPO,
    "dapo": DAPO,
    "rloo": RLOO,
    "reinforce_pp": ReinforcePP,
    "gspo": GSPO,
    "ppo": PPO,
}


def make_algorithm(type: str, **fields: object) -> Algorithm:  # noqa: A002 - the config key's name
    """The algorithm named by `algo.type`; fields left out (or None) keep its own defaults.
    An option the algorithm does not have, or has and would ignore, is a ValueError naming both."""
    if type not in ALGORITHMS:
        raise ValueError(f"unknown algo.type {type!r}; known: {', '.join(ALGORITHMS)}")
    cls = ALGORITHMS[type]
    given = {k: v for k, v in fields.items() if v is not None}
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"algo.type={type} has no option {', '.join(unknown)}")
    ignored = sorted(set(given) & cls.ignores)
    if ignored:
        raise ValueError(f"algo.type={type} does not use {', '.join(ignored)}; remove it")
    algo = cls(**given)  # type: ignore[arg-type]
    _check(algo, type, given)
    return algo


def _check(algo: Algorithm, name: str, given: dict[str, object]) -> None:
    """Value rules, and options that only mean something beside another one."""
    if algo.kl_estimator not in ("k1", "k2", "k3"):
        raise ValueError(f"kl_estimator {algo.kl_estimator!r} is not k1, k2 or k3")
    if algo.kl_placement not in ("loss", "reward"):
        raise ValueError(f"kl_placement {algo.kl_placement!r} is not loss or reward")
    if algo.loss_agg not in AGG_MODES:
        raise ValueError(f"loss_agg {algo.loss_agg!r} is not one of {', '.join(AGG_MODES)}")
    if "loss_agg_constant" in given and algo.loss_agg != "seq-mean-token-sum":
        raise ValueError(
            f"loss_agg_constant divides token sums under loss_agg=seq-mean-token-sum; "
            f"algo.type={name} aggregates by {algo.loss_agg}"
        )
    if algo.tis_cap is not None and algo.tis_cap <= 0:
        raise ValueError(f"tis_cap must be > 0, got {algo.tis_cap}")
    if algo.clip_low < 0 or algo.clip_high < 0:
        raise ValueError(
            f"clip_low and clip_high must be >= 0, got {algo.clip_low}, {algo.clip_high}"
        )
    if algo.dual_clip is not None and algo.dual_clip <= 1:
        raise ValueError(f"dual_clip must be > 1, got {algo.dual_clip}")
    if "max_sample_rounds" in given and not algo.dynamic_sampling:
        raise ValueError(
            f"max_sample_rounds limits dynamic sampling, which algo.type={name} has off here; "
            "set dynamic_sampling: true or remove it"
        )
    if algo.max_sample_rounds < 1:
        raise ValueError(f"max_sample_rounds must be >= 1, got {algo.max_sample_rounds}")
