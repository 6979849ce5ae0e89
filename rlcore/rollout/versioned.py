"""`VersionedEngine`: one rollout engine and the weight version it serves, what a rollout actor holds
(rlcore/actors.py makes it the RolloutWorker actor).

The version is 0 for the checkpoint on disk and the learner's count after each sync
(rlcore/sync/weights.py). A worker that Ray restarted is back at 0, so `generate` with the version
the trainer expects refuses to sample from stale weights instead of training off-policy in silence.
"""

from __future__ import annotations

from typing import Any

import torch

from rlcore.rollout import make_engine
from rlcore.rollout.engine import Completion, EngineSpec, SamplingParams
from rlcore.sync.buckets import ParamMeta


class StaleWeightsError(RuntimeError):
    """A rollout worker's weights are not the version the trainer expects (it was restarted)."""


class VersionedEngine:
    def __init__(self, spec: EngineSpec) -> None:
        self.engine = make_engine(spec)
        self.version = 0  # weight version: 0 = the checkpoint on disk; each sync sets the learner's

    def info(self) -> dict[str, Any]:
        """The engine's name, its sync-group ranks, weight version and torch threads."""
        return {
            "engine": self.engine.name,
            "ranks": self.engine.workers_per_engine,
            "version": self.version,
            "threads": torch.get_num_threads(),
        }

    def generate(
        self, prompt_ids: list[list[int]], params: SamplingParams, version: int | None = None
    ) -> list[list[Completion]]:
        """`version`: the weight version the caller expects; a restarted worker (back at 0) refuses
        to sample from stale weights instead of training the policy off-policy in silence."""
        if version is not None and version != self.version:
            raise StaleWeightsError(f"engine holds weight version {self.version}, not {version}")
        return self.engine.generate(prompt_ids, params)

    def score(self, sequences: list[list[int]]) -> list[list[float]]:
        """Raw per-token logprobs of each sequence (the weight-sync probe, RolloutEngine.score)."""
        return self.engine.score(sequences)

    def init_weight_group(
        self, addr: str, port: int, rank: int, world_size: int, sync_type: str = "broadcast"
    ) -> None:
        """Joins the weight-sync group (RolloutEngine.init_weight_group)."""
        self.engine.init_weight_group(addr, port, rank, world_size, sync_type)

    def receive_weights(
        self, meta: list[ParamMeta], bucket_bytes: int, version: int = 0
    ) -> dict[str, Any]:
        """Receives and loads one sync, then serves weight `version`."""
        out = self.engine.receive_weights(meta, bucket_bytes)
        self.version = version
        return out
