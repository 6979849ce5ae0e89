"""`ScorerHost`: what one verifier actor holds (rlcore/actors.py makes it the VerifierWorker actor;
rlcore/scoring.py drives the rule-based and the model-based groups of them).

A `rlcore.verifiers.build.Scorer` for the run's verifier names, each with the run's default timeout
unless its options set one, with any models loaded at start. Its results leave as plain dicts
with the process id that scored them, so the driver sees a restart Ray made between two calls.
"""

from __future__ import annotations

import os
from typing import Any

from rlcore.verifiers.build import Scorer


class ScorerHost(Scorer):
    """A Scorer built from the run's verifier options; `score_dicts` for the driver."""

    def __init__(
        self, names: list[str], options: dict[str, Any], workers: int, timeout_s: float
    ) -> None:
        # (a model-based verifier's torch sizes its pool from the OMP_NUM_THREADS Placement set)
        # every verifier gets the run's default timeout unless its options say otherwise
        configs = {name: {"timeout_s": timeout_s, **opts} for name, opts in options.items()}
        for name in names:
            configs.setdefault(name, {"timeout_s": timeout_s})
        super().__init__(names, configs, workers=workers)
        self.load_models()

    def score_dicts(self, pairs: list[tuple[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        """(this process's id, one result dict per (verifier name, Sample) pair)."""
        return os.getpid(), [r.to_dict() for r in super().score_components(pairs)]
