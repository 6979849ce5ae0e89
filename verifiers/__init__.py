"""rlcore.verifiers: reward functions that turn (prompt, response, reference) into a scored Result.

Plain data in, plain data out; this package never imports the rest of rlcore.
"""

from rlcore.verifiers.base import Result, Sample, Verifier, VerifierConfig
from rlcore.verifiers.registry import UnknownVerifierError, available, get_verifier_class

__all__ = [
    "Result",
    "Sample",
    "UnknownVerifierError",
    "Verifier",
    "VerifierConfig",
    "available",
    "get_verifier_class",
]
