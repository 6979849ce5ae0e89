"""rlcore.verifiers: reward functions that turn (prompt, response, reference) into a scored Result.

Plain data in, plain data out; this package never imports the rest of rlcore.
"""

from rlcore.verifiers.base import Result, Sample, Verifier, VerifierConfig
from rlcore.verifiers.build import Scorer, build, build_verifier, json_row, parse_spec, row_item
from rlcore.verifiers.composite import CompositeVerifier
from rlcore.verifiers.pool import WorkerPool
from rlcore.verifiers.registry import UnknownVerifierError, available, get_verifier_class

__all__ = [
    "CompositeVerifier",
    "Result",
    "Sample",
    "Scorer",
    "UnknownVerifierError",
    "Verifier",
    "VerifierConfig",
    "WorkerPool",
    "available",
    "build",
    "build_verifier",
    "get_verifier_class",
    "json_row",
    "parse_spec",
    "row_item",
]
