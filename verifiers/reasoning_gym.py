"""`reasoning_gym`: a reasoning-gym dataset's own scorer on the response's last \\boxed{} answer.

Reference fields (written by rlcore/data/reasoning_gym.py): `dataset` (the reasoning-gym dataset name) and
`entry` ({"question", "answer", "metadata"}: what the dataset's `score_answer` reads).

Try it:
    from rlcore.verifiers.base import Sample
    from rlcore.verifiers.reasoning_gym import GymVerifier
    GymVerifier().verify(Sample(prompt="", response="... \\\\boxed{12}",
        reference={"dataset": "basic_arithmetic", "entry": {"question": "", "answer": "12",
                                                            "metadata": {}}}))
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rlcore.verifiers.base import Result, Sample, Verifier, VerifierConfig
from rlcore.verifiers.math import last_boxed
from rlcore.verifiers.text import strip_think


@dataclass(frozen=True)
class GymConfig(VerifierConfig):
    max_response_chars: int = 20000  # only the tail is searched for the final \boxed{}


class GymVerifier(Verifier):
    """Reward = the dataset's `score_answer(answer, entry)` in [0, 1]; correct = reward is 1. The
    answer is the last box outside the reasoning (verifiers/text.py), as in the math verifier.

    Does NOT check: the reasoning (only the final boxed answer), nor a final answer given without
    \\boxed{} (reward 0, reason recorded). Partial credit is the dataset's own (some reasoning-gym
    scorers give 0.01-0.5 for near misses); `correct` is strict."""

    name: ClassVar[str] = "reasoning_gym"
    config_cls: ClassVar[type[VerifierConfig]] = GymConfig
    config: GymConfig

    def setup(self) -> None:
        import reasoning_gym  # noqa: F401  (imported once per worker, not per sample)

    def verify(self, sample: Sample) -> Result:
        ref = sample.reference
        dataset, entry = ref.get("dataset"), ref.get("entry")
        if not isinstance(dataset, str) or not isinstance(entry, dict) or "answer" not in entry:
            return Result(reward=0.0, error="bad_reference: needs 'dataset' and 'entry.answer'")
        part = strip_think(sample.response[-self.config.max_response_chars :])
        answer = last_boxed(part)
        if answer is None or not answer.strip():
            return Result(
                reward=0.0, correct=False, details={"extracted": answer, "reason": "no \\boxed{}"}
            )
        try:
            score_fn = _score_fn(dataset)
        except Exception as e:  # noqa: BLE001 - an unknown dataset is the reference's fault
            return Result(reward=0.0, error=f"bad_reference: {dataset!r}: {e}")
        score = float(score_fn(answer.strip(), _entry(entry)))
        details: dict[str, Any] = {"extracted": answer.strip()[:200], "score": score}
        return Result(reward=score, correct=score >= 1.0, details=details)


def _entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {"question": "", "metadata": {}, **entry}


@functools.cache
def _score_fn(dataset: str) -> Callable[[str, dict[str, Any]], float]:
    """The dataset's scorer, built once per process: reasoning-gym builds a dataset instance for it
    (5 ms for word_sorting), too slow to repeat for every sample."""
    import reasoning_gym

    return reasoning_gym.get_score_answer_fn(dataset)  # type: ignore[return-value]
