"""Algorithms: advantage estimators, policy/value losses and KL estimators (pure tensor functions),
and the small strategy objects (`Algorithm` and its subclasses: GRPO and its variants, PPO) that
the trainer and learner call."""

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

__all__ = [
    "ALGORITHMS",
    "DAPO",
    "Algorithm",
    "GRPO",
    "GSPO",
    "PPO",
    "RLOO",
    "DrGRPO",
    "ReinforcePP",
    "make_algorithm",
]
