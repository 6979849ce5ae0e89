"""Algorithms: advantage estimators, policy/value losses and KL estimators (pure tensor functions),
and the small strategy objects (GRPO and its variants) that the learner calls."""

from rlcore.algo.strategies import (
    ALGORITHMS,
    DAPO,
    GRPO,
    GSPO,
    PPO,
    RLOO,
    DrGRPO,
    ReinforcePP,
    make_algorithm,
)

__all__ = [
    "ALGORITHMS",
    "DAPO",
    "GRPO",
    "GSPO",
    "PPO",
    "RLOO",
    "DrGRPO",
    "ReinforcePP",
    "make_algorithm",
]
