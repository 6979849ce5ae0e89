"""Held-out accuracy inside a run: one sample per problem (greedy unless eval_temperature > 0)
through the run's own engines and verifiers, on problems never trained on; every answer is
written to RUN_DIR/heldout_<stage>.jsonl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlcore.rollout.engine import SamplingParams
from rlcore.sampling import Sampler


def heldout_accuracy(
    sampler: Sampler,
    rows: list[dict[str, Any]],
    params: SamplingParams,
    path: Path,
) -> float:
    """The share of `rows` whose sample its verifier marks correct; one JSON line per row."""
    scored = sampler.sample(rows, params)
    with path.open("w") as f:
        for r, s, res in zip(rows, scored.samples, scored.results, strict=True):
            answer = {"id": r.get("id"), "prompt": r["prompt"], "response": s.response}
            f.write(json.dumps({**answer, "correct": res["correct"], "reward": res["reward"]}))
            f.write("\n")
    return sum(res["correct"] is True for res in scored.results) / len(scored.results)
