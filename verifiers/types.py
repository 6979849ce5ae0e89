"""The plain data a verifier takes and gives: `Sample`, `Result`, `VerifierConfig` (rlcore/verifiers/base.py
re-exports them with the `Verifier` class; the process pool imports only these, so that the base class
and the pool do not import each other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]


@dataclass(frozen=True)
class Sample:
    """One completion to score.

    prompt: the prompt as a string or as chat messages ({"role", "content", ...}).
    response: the completion text (what the policy generated, special tokens stripped).
    token_ids: the completion's token ids when the trainer has them, else None.
    reference: the data row's verifier-specific reference (e.g. {"answer": "42"}).
    metadata: anything else from the data row (id, bucket, language, ...).
    """

    prompt: str | list[Message]
    response: str
    reference: dict[str, Any] = field(default_factory=dict)
    token_ids: tuple[int, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        """The prompt as plain text: the last user message for chat prompts."""
        if isinstance(self.prompt, str):
            return self.prompt
        users = [m.get("content", "") for m in self.prompt if m.get("role") == "user"]
        return str(users[-1]) if users else ""


@dataclass(frozen=True)
class Result:
    """The verdict on one sample.

    reward: the scalar reward (0.0 when the sample could not be scored; see `error`).
    correct: True/False where the verifier judges correctness, None where it does not apply.
    details: per-verifier information for logging (extracted answer, per-test results, ...).
    error: None, or why the sample could not be scored: "timeout", "crash: ...", "unparseable: ...".
    elapsed_s: wall seconds spent on this sample.
    """

    reward: float
    correct: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    elapsed_s: float = 0.0

    @property
    def unjudged(self) -> bool:
        """The verifier failed before it could judge (a crash, a timeout of the verifier itself, a
        bad reference): its 0.0 is no verdict on the answer. A result with an error that still
        judges (`correct` False: code that times out in the sandbox, an unparseable tool call) is
        a verdict."""
        return self.error is not None and self.correct is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "reward": self.reward,
            "correct": self.correct,
            "details": self.details,
            "error": self.error,
            "elapsed_s": self.elapsed_s,
        }


@dataclass(frozen=True)
class VerifierConfig:
    """Settings every verifier has; subclasses add their own fields in their own frozen config."""

    timeout_s: float = (
        10.0  # per-sample wall-clock limit in the pool; past it the result is "timeout"
    )
