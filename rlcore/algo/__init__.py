"""Algorithms: advantage estimators, policy/value losses and KL estimators (pure tensor functions),
and the small strategy objects (`Algorithm` and its subclasses: GRPO and its variants, PPO) that
the trainer and learner call. `build_algorithm(cfg)` makes the one a config names."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

from rlcore.algo.strategies import (
    ALGORITHMS,
    DAPO,
    GRPO,
    GSPO,
    PPO,
    RLOO,
    Algorithm,
    DrGRPO,
    ReinforcePP,
    make_algorithm,
)

if TYPE_CHECKING:
    from rlcore.config import TrainConfig

__all__ = [
    "ALGORITHMS",
    "DAPO",
    "LOOP_KEYS",
    "Algorithm",
    "GRPO",
    "GSPO",
    "PPO",
    "RLOO",
    "DrGRPO",
    "ReinforcePP",
    "build_algorithm",
    "make_algorithm",
]

# `algo` keys that the trainer and the learner read (passes, minibatches, the critic's optimizer),
# not the algorithm; every other key of the section is one of its options
LOOP_KEYS = frozenset({"type", "epochs", "minibatches", "critic_lr", "critic_warmup_steps"})


def build_algorithm(cfg: TrainConfig) -> Algorithm:
    """The algorithm named by `algo.type`, given the rest of the `algo` section (None keeps its
    own default; an option it does not have is a ValueError) and two run-level values: the group
    size, and an episode's policy tokens (one turn is capped at max_tokens, an episode at
    max_turns turns)."""
    a = cfg.algo
    options = {f.name: getattr(a, f.name) for f in fields(a) if f.name not in LOOP_KEYS}
    episode_tokens = cfg.rollout.max_tokens * cfg.rollout.max_turns
    return make_algorithm(a.type, group_size=cfg.rollout.n, max_tokens=episode_tokens, **options)
