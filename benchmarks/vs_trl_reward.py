"""The reward of benchmarks/vs_trl.py's `*-varied` cases: rlcore's `math` verifier plus a tie-break
under 0.001 from a hash of the response, so that a group's rewards differ whenever its responses
do (at temperature 1 and 64 tokens, always). Every group then has a nonzero advantage, and
leaving zero-advantage rows out of the learner cannot help: the case measures the rest.

Importable as `vs_trl_reward:TiebrokenMath` with benchmarks/ on PYTHONPATH (vs_trl.py sets it)."""

from __future__ import annotations

import dataclasses
import zlib

from rlcore.verifiers.math import MathVerifier
from rlcore.verifiers.types import Result, Sample


def tiebreak(response: str) -> float:
    return 1e-3 * (zlib.crc32(response.encode()) % 1000) / 1000


class TiebrokenMath(MathVerifier):
    name = "tiebroken_math"

    def verify(self, sample: Sample) -> Result:
        result = super().verify(sample)
        return dataclasses.replace(result, reward=result.reward + tiebreak(sample.response))
