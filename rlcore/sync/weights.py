"""`WeightSync`: the learner -> rollout engines weight sync of one run, as one object.

It holds the sync group (learner rank 0 is group rank 0, the engines' workers ranks 1..N, over the
transport `sync.type` picks, rlcore/sync/__init__.py), the weight version the engines serve, and
the checks of every push: the exact per-tensor digests (digest.py) and the probe's logprobs
(verify.py, calibrated once at start-up). `Cluster` (rlcore/cluster.py) owns the actors and calls:

    probe = sync.sample_probe(prompt_ids, seed)   # a held-out prompt + the policy's sample
    sync.init(probe)                              # join the group; calibrate the probe check
    metrics = sync.push()                         # after every optimizer step
    sync.recover()                                # an engine was restarted: new group, resend
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ray

from rlcore.learner.batch import pad_batch
from rlcore.ports import free_port
from rlcore.sync.buckets import ParamMeta, plan_buckets
from rlcore.sync.digest import digest_failure
from rlcore.sync.ipc import WHOLE
from rlcore.sync.verify import ProbeCheck

if TYPE_CHECKING:
    from rlcore.actors import ActorGroup
    from rlcore.config import TrainConfig
    from rlcore.placement import Placement

log = logging.getLogger(__name__)


class SyncError(RuntimeError):
    """The engines do not serve the learner's weights after a sync."""


@dataclass
class WeightSync:
    cfg: TrainConfig
    learners: ActorGroup  # the policy's ranks: rank 0 sends, every rank joins ZeRO-3's gathers
    rollouts: ActorGroup  # the engines (rlcore.actors.RolloutWorker)
    meta: list[ParamMeta]  # (name, dtype, shape) in the order learner rank 0 streams them
    placement: Placement | None = None  # where learner rank 0 runs (None: this machine)
    version: int = 0  # weight version the engines hold (one per push)
    restarts: int = 0  # recoveries so far (an engine restarted, the group rebuilt)
    probe: list[int] | None = None  # the check's token sequence (sample_probe)
    probe_check: ProbeCheck | None = None  # calibrated at the first init

    def sample_probe(self, prompt: list[int], seed: int, max_tokens: int = 32) -> list[int]:
        """The sync check's probe: a held-out prompt and a response the policy samples for it (T=1,
        seeded, from the checkpoint the run starts from), so the check covers the tokens the policy
        generates as well as prompt text."""
        from rlcore.rollout.engine import SamplingParams

        params = SamplingParams(n=1, temperature=1.0, max_tokens=max_tokens, seed=seed)
        completion = ray.get(self.rollouts.actors[0].generate.remote([prompt], params))[0][0]
        return list(prompt) + list(completion.token_ids)

    def init(self, probe: list[int]) -> None:
        """One process group: learner rank 0 is rank 0, engine workers take ranks 1..N."""
        self.probe = probe
        ranks = self.rollouts.call("info")
        world = 1 + sum(i["ranks"] for i in ranks)
        # the group's rank 0 is learner rank 0: its node's address (127.0.0.1 on one machine)
        addr = self.placement.node_ip("learner", 0) if self.placement else "127.0.0.1"
        port = self.placement.free_port("learner", 0) if self.placement else free_port()
        kind = self._transport()
        calls = [self.learners.actors[0].init_sync.remote(kind, addr, port, world)]
        next_rank = 1
        for actor, i in zip(self.rollouts.actors, ranks, strict=True):
            calls.append(actor.init_weight_group.remote(addr, port, next_rank, world, kind))
            next_rank += i["ranks"]
        ray.get(calls)
        if self.cfg.sync.verify and probe and self.probe_check is None:
            # before any sync both sides hold the checkpoint on disk: their difference on the probe
            # is this engine's rounding noise, the floor the check of a bf16 sync is measured from
            check = ProbeCheck(
                self.cfg.model.dtype, self.cfg.sync.verify_atol, self.cfg.sync.verify_factor
            )
            engine_lps, learner_lp = self._probe_logprobs()
            self.probe_check = check.calibrated(engine_lps[0], learner_lp)
            log.info(
                "weight-sync check: %s, noise floor %.2e, limit %.2e",
                "max per-token" if check.exact else "mean per-token",
                self.probe_check.baseline,
                self.probe_check.limit,
            )

    def _transport(self) -> str:
        """sync.type, "auto" resolved by where learner rank 0 and the engines run and the room
        in learner rank 0's /dev/shm."""
        from rlcore.sync import transport

        actors = [self.learners.actors[0], *self.rollouts.actors]
        hosts = {p["host"] for p in ray.get([a.process.remote() for a in actors])}
        gpus = bool(self.cfg.gpus or self.cfg.learner.gpus_per_rank)
        # the sender's shared buffer: the whole model on CPU (rlcore/sync/ipc.py)
        need = max(b.nbytes for b in plan_buckets(self.meta, WHOLE))
        free = ray.get(self.learners.actors[0].shm_free.remote())
        kind = transport(self.cfg.sync.type, gpus, hosts, free, need)
        log.info(
            "weight sync: %s (sync.type=%s; /dev/shm %.0f MiB free, the model %.0f MiB)",
            kind,
            self.cfg.sync.type,
            free / 2**20,
            need / 2**20,
        )
        return kind

    def push(self) -> dict[str, float]:
        """Stream the learner's weights to every engine; optionally check a probe's logprobs.
        An engine that was restarted since the last sync (it left the sync group) is first brought
        back into a new group, so the broadcast never waits on a member that is gone."""
        if self.version and any(i["version"] != self.version for i in self._engine_infos()):
            self.recover()
        return self._send()

    def recover(self) -> None:
        """Waits until every engine answers (Ray restarts a dead one from the checkpoint on disk),
        then rebuilds the weight-sync group and sends the learner's current weights."""
        self._engine_infos()
        self.init(self.probe or [])
        self._send()
        self.restarts += 1
        log.info("rollout workers recovered (%d recoveries so far)", self.restarts)

    def _send(self) -> dict[str, float]:
        bucket = self.cfg.sync.bucket_mb * 2**20
        verify = self.cfg.sync.verify
        # the learner's side of the probe first, at the weights it is about to send: run beside
        # the engines' load or probe forward, its forward made theirs 2-9x slower on 2 cores (two
        # OpenMP pools on the same cores; check 0.3-1.6 s -> 0.12 s, docs/benchmarks.md)
        learner_probe = self._learner_probe() if self.probe_check is not None else None
        sends = self.learners.submit("send_weights", bucket, verify)
        self.version += 1
        receives = self.rollouts.submit("receive_weights", self.meta, bucket, self.version)
        sent = ray.get(sends)[0]
        got = ray.get(receives)
        out = {
            "sync_s": sent.get("seconds", 0.0),
            "sync_bytes": sent.get("bytes", 0.0),
            "load_s": max(r["load_seconds"] for r in got),
        }
        if verify:  # exact: every engine loaded every tensor's bytes as sent
            failure = digest_failure(sent["digests"], [r["digests"] for r in got])
            if failure is not None:
                raise SyncError(f"sync {self.version}: {failure}")
        if self.probe_check is not None:
            t0 = time.perf_counter()
            out[self.probe_check.metric] = self.check_probe(learner_probe)
            out["check_s"] = time.perf_counter() - t0
        return out

    def check_probe(self, learner: list[Any] | None = None) -> float:
        """The worst engine's difference from the learner on the probe (rlcore/sync/verify.py:
        the largest per token in float32, the mean per token against a noise floor in bf16)."""
        assert self.probe_check is not None, "check_probe before init with sync.verify"
        engines, learner_lp = self._probe_logprobs(learner)
        worst = max(self.probe_check.statistic(e, learner_lp) for e in engines)
        for engine in engines:
            failure = self.probe_check.failure(engine, learner_lp)
            if failure is not None:
                raise SyncError(failure)
        return worst

    def _learner_probe(self) -> list[Any]:
        """The learner's logprobs of the probe, submitted (refs, one per rank)."""
        assert self.probe is not None
        half = len(self.probe) // 2
        batch = pad_batch([self.probe[:half]], [self.probe[half:]], [0.0], pad_id=0)
        # every rank runs the forward (a collective under ZeRO-3); they all hold the same weights
        return self.learners.submit("logprobs", batch)

    def _probe_logprobs(
        self, learner: list[Any] | None = None
    ) -> tuple[list[list[float]], list[float]]:
        """The probe's per-token logprobs on every engine, and on the learner (`learner`: its
        refs, when already submitted)."""
        learner = learner if learner is not None else self._learner_probe()
        engines = [lp[0] for lp in self.rollouts.call("score", [self.probe])]
        return engines, ray.get(learner)[0][0]

    def _engine_infos(self) -> list[dict[str, Any]]:
        """Every engine's info, waiting (up to rollout.timeout_s) for any that Ray is restarting."""
        deadline = time.time() + self.cfg.rollout.timeout_s
        while True:
            try:
                return ray.get(self.rollouts.submit("info"))
            except ray.exceptions.RayActorError:  # restarting (ActorUnavailableError) or dead
                if time.time() > deadline:
                    raise
                time.sleep(1.0)
