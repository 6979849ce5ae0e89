"""A weighted combination of verifiers: reward = sum(weight_i * reward_i).

Semantics (also what `Scorer` does for a data row that names a weighted list):
- reward: the weighted sum of the components' rewards; weights are not normalised.
- correct: over the components that judge correctness (correct is not None), True only when all of
  them are; None when none of them judges (e.g. format alone), and None when any component could
  not judge (`Result.unjudged`: [math, ifeval] with math crashed is no verdict, not ifeval's alone).
- details: {"components": {name: {"weight", "reward", "correct", "details", "error"}}}.
- error: None when no component failed, else "<error> [<name>]" joined by "; " (its leading word is
  the first failing component's error kind, e.g. "timeout").
- elapsed_s: the sum over components.

How it runs in the pool: each component is scored as its own pool item (under its own timeout, so a
hanging component costs only its share) and the parent combines. `CompositeVerifier.verify` runs the
components one after another in the calling process, under the composite's `timeout_s` (by default
the sum of the components') when a pool runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlcore.verifiers.base import Result, Sample, Verifier, VerifierConfig


def combine(parts: Sequence[tuple[str, float, Result]]) -> Result:
    """Combine (name, weight, result) parts into one Result (see the module docstring)."""
    judged = [r.correct for _, _, r in parts if r.correct is not None]
    errors = [f"{r.error} [{name}]" for name, _, r in parts if r.error is not None]
    failed = any(r.unjudged for _, _, r in parts)
    return Result(
        reward=float(sum(w * r.reward for _, w, r in parts)),
        correct=all(judged) if judged and not failed else None,
        details={"components": {name: {"weight": w, **r.to_dict()} for name, w, r in parts}},
        error="; ".join(errors) if errors else None,
        elapsed_s=sum(r.elapsed_s for _, _, r in parts),
    )


class CompositeVerifier(Verifier):
    """Weighted sum of component verifiers. Checks what its components check, nothing more."""

    name = "composite"

    def __init__(
        self, components: Sequence[tuple[Verifier, float]], config: VerifierConfig | None = None
    ) -> None:
        if not components:
            raise ValueError("CompositeVerifier needs at least one (verifier, weight)")
        names = [v.name or type(v).__name__ for v, _ in components]
        if len(set(names)) != len(names):
            raise ValueError(f"CompositeVerifier: duplicate component names {names}")
        if config is None:
            config = VerifierConfig(timeout_s=sum(v.config.timeout_s for v, _ in components))
        super().__init__(config)
        self.components = [(n, v, float(w)) for n, (v, w) in zip(names, components, strict=True)]

    def verify(self, sample: Sample) -> Result:
        parts = []
        for name, v, w in self.components:
            try:
                r = v.verify(sample)
            except Exception as e:  # recorded like the pool records it, never dropped
                r = Result(reward=0.0, error=f"crash: {type(e).__name__}: {e}")
            parts.append((name, w, r))
        return combine(parts)

    def verify_batch(self, samples: list[Sample], workers: int = 1) -> list[Result]:
        """Each component scored in one pool (its own timeout), combined here."""
        from rlcore.verifiers.pool import WorkerPool

        if not samples:
            return []
        with WorkerPool({n: v for n, v, _ in self.components}, workers=workers) as pool:
            flat = pool.score([(n, s) for s in samples for n, _, _ in self.components])
        k = len(self.components)
        return [
            combine([(n, w, flat[i * k + j]) for j, (n, _, w) in enumerate(self.components)])
            for i in range(len(samples))
        ]

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": n, "weight": w} for n, _, w in self.components]
