"""The verifier interface: a sample in, a result out.

A verifier is a class with a class-level `name`, a constructor that takes its own small frozen config,
and `verify(sample) -> Result`. Rule-based verifiers write plain synchronous `verify`; the default
`verify_batch` runs them in a pool of worker processes with a per-sample timeout (verifiers/pool.py).
Model-based verifiers override `verify_batch` to batch on their model.

This module sees plain data only: it never imports `rlcore` (imports flow launch -> rlcore -> verifiers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

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


class Verifier:
    """Base class. Subclasses set `name`, optionally `config_cls`, and implement `verify`."""

    name: ClassVar[str] = ""
    config_cls: ClassVar[type[VerifierConfig]] = VerifierConfig

    def __init__(self, config: VerifierConfig | None = None) -> None:
        self.config = config if config is not None else self.config_cls()

    def setup(self) -> None:
        """Called once in each worker process before its first sample: import heavy modules, load
        data. The default does nothing; `verify` must also work without it having been called."""

    def verify(self, sample: Sample) -> Result:
        """Score one sample. May raise: the pool turns exceptions into a Result with `error`."""
        raise NotImplementedError

    def verify_batch(self, samples: list[Sample], workers: int = 1) -> list[Result]:
        """Score many samples in input order, each under `config.timeout_s`, in `workers` processes."""
        from rlcore.verifiers.pool import run_pool

        return run_pool(self, samples, workers=workers)
