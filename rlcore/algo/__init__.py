"""Algorithms: advantage estimators, policy losses and KL estimators (pure tensor functions), and
the small strategy objects (GRPO) that the learner calls."""

from rlcore.algo.grpo import GRPO

__all__ = ["GRPO"]
