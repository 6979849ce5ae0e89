"""The verifier interface: a sample in, a result out.

A verifier is a class with a class-level `name`, a constructor that takes its own small frozen config,
and `verify(sample) -> Result`. Rule-based verifiers write plain synchronous `verify`; the default
`verify_batch` runs them in a pool of worker processes with a per-sample timeout (verifiers/pool.py).
Model-based verifiers (reward models, judges, embedding models) set `model_based = True` and
override `verify_batch` to batch on their model; a trainer runs them in actors of their own, with
their own resources, beside the rule-based ones.

This module sees plain data only: it never imports `rlcore` (imports flow launch -> rlcore -> verifiers).
"""

from __future__ import annotations

from typing import ClassVar

from rlcore.verifiers.types import Message, Result, Sample, VerifierConfig

__all__ = ["Message", "Result", "Sample", "Verifier", "VerifierConfig"]


class Verifier:
    """Base class. Subclasses set `name`, optionally `config_cls`, and implement `verify`."""

    name: ClassVar[str] = ""
    config_cls: ClassVar[type[VerifierConfig]] = VerifierConfig
    model_based: ClassVar[bool] = False  # holds a model: scored in batches, in its own actors

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
