"""TRL-style reward functions as verifiers: name `pkg.mod:fn` where a verifier goes.

    # my_rewards.py, unchanged from a TRL script
    def correctness(prompts, completions, answer, **kwargs):
        return [1.0 if c.strip().endswith(a) else 0.0 for c, a in zip(completions, answer)]

    data:
      verifier: my_rewards:correctness          # or in a row: "verifier": "my_rewards:correctness"

`fn(prompts, completions, **columns) -> list[float]` with TRL's conventions: a row whose prompt is
chat messages gives `prompts` as message lists and `completions` as [{"role": "assistant",
"content": ...}] lists, a string prompt gives strings; every field of the row's `reference` is
passed as a keyword column (a list, one value per sample), as TRL passes dataset columns. A
returned None means "does not apply" (reward 0, correct None). The function runs like any
rule-based verifier: one sample per call in the process pool, under `timeout_s`, so a function
that hangs or raises costs one sample an error record ("timeout", "crash: ..."), not the batch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rlcore.verifiers.base import Result, Sample, Verifier, VerifierConfig


@dataclass(frozen=True)
class FunctionConfig(VerifierConfig):
    function: str = ""  # "pkg.mod:fn" (set from the name the config or row uses)


class FunctionVerifier(Verifier):
    name: ClassVar[str] = "function"
    config_cls: ClassVar[type[VerifierConfig]] = FunctionConfig

    def __init__(self, config: VerifierConfig | None = None) -> None:
        super().__init__(config)
        self._fn: Callable[..., Any] | None = None

    def __getstate__(self) -> dict[str, Any]:  # the pool pickles the verifier; not the function
        return {**self.__dict__, "_fn": None}

    def setup(self) -> None:
        self._fn = load_function(self.config.function)  # type: ignore[attr-defined]

    def verify(self, sample: Sample) -> Result:
        if self._fn is None:
            self.setup()
        assert self._fn is not None
        chat = not isinstance(sample.prompt, str)
        completion: Any = (
            [{"role": "assistant", "content": sample.response}] if chat else sample.response
        )
        columns = {k: [v] for k, v in sample.reference.items()}
        out = self._fn(prompts=[sample.prompt], completions=[completion], **columns)
        if not isinstance(out, list | tuple) or len(out) != 1:
            fn = self.config.function  # type: ignore[attr-defined]
            raise TypeError(f"{fn} returned {out!r}, not a list of one reward")
        value = out[0]
        if value is None:
            return Result(reward=0.0, correct=None, details={"applies": False})
        reward = float(value)  # a NaN is recorded as "nonfinite" by the Scorer, as for any verifier
        return Result(reward=reward, correct=None, details={"reward_fn": reward})


def load_function(path: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    fn = getattr(importlib.import_module(module), attr)
    if not callable(fn) or isinstance(fn, type):
        raise TypeError(f"{path} is not a function")
    return fn
