"""The `Cluster` of Ray actors the loop drives (the run's directory and model path: rlcore/rundir.py).

`Cluster` starts the learner ranks, rollout engines and verifier workers (rule-based and
model-based, rlcore/verifier_actors.py), joins the learner and engines into one weight-sync group, and
offers the loop batched calls: generate_parts, submit / collect (verification); `weights`
(rlcore/sync/weights.py) is the sync group the loop pushes the weights through.
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
    init_ray,
    process_pss_mib,
)
from rlcore.algo import Algorithm
from rlcore.config import TrainConfig
from rlcore.learner.rank import LearnerSpec
from rlcore.placement import Placement
from rlcore.rollout import engine_spec
from rlcore.rollout.versioned import StaleWeightsError
from rlcore.rundir import resolve_verifier_models
from rlcore.sync.weights import SyncError, WeightSync
from rlcore.verifier_actors import Pending, VerifierActors, VerifierError, model_based_names, split

# SyncError lives in rlcore/sync/weights.py; re-exported for the trainer
__all__ = ["Cluster", "RolloutError", "SyncError", "VerifierError"]

log = logging.getLogger(__name__)


class RolloutError(RuntimeError):
    """A rollout worker hung past its timeout or died more often than allowed."""


@dataclass
class Cluster:
    cfg: TrainConfig
    learners: ActorGroup
    rollouts: ActorGroup
    verifiers: VerifierActors  # rule-based and model-based verifier actor groups
    weights: WeightSync  # learner -> engines: the sync group, weight version and checks
    critics: ActorGroup | None = None  # PPO's value model ranks
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
        engine = engine_spec(cfg, model_path)
        rollouts = ActorGroup(
            [
                RolloutWorker.options(
                    **placement.options("rollout", i),
                    max_restarts=rc.max_restarts,
                    name=f"rollout-{i}-{run_tag}",
                ).remote(engine)
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
        verifiers = VerifierActors.start(
            cfg, unique_specs, placement, run_tag, options, model_names
        )
        weights = WeightSync(cfg, learners, rollouts, meta, placement)
        cluster = cls(cfg, learners, rollouts, verifiers, weights, critics, placement=placement)
        verifiers.get = cluster._get  # its waits call on_wait too (the preemption check)
        log.info(
            "cluster: %d learner rank(s), engines %s, %d verifier actor(s), %d model-based",
            len(learners),
            info,
            len(cluster.verifiers.rule),
            len(cluster.verifiers.model),
        )
        return cluster

    def _each_actor(self, method: str) -> dict[str, Any]:
        """`method`'s answer from every actor, by `<role><rank>` (learner0, rollout0, ...)."""
        groups = [
            ("learner", self.learners),
            ("critic", self.critics),
            ("rollout", self.rollouts),
            ("verifier", self.verifiers.rule),
            ("model_verifier", self.verifiers.model),
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

    # ---- the weight sync (rlcore/sync/weights.py: self.weights) ------------------------------
    @property
    def version(self) -> int:
        """The weight version the engines hold (one per sync; 0 = the checkpoint on disk)."""
        return self.weights.version

    @property
    def restarts(self) -> int:
        """Rollout worker recoveries so far."""
        return self.weights.restarts

    # ---- rollout and verification (rlcore/sampling.py drives these) ----------------------------
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
        """Sends (verifier spec, Sample) items to the verifier actors (rlcore/verifier_actors.py)."""
        return self.verifiers.submit(items)

    def collect(self, pending: Pending) -> list[dict[str, Any]]:
        """The submitted items' results; a dead verifier actor is restarted and scores its whole
        part again."""
        return self.verifiers.collect(pending)

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
                self.weights.recover()
                ref = self.rollouts.actors[i].generate.remote(part, params, self.version)
        raise AssertionError("unreachable")

    @property
    def verifier_restarts(self) -> int:
        """Verifier actor recoveries so far (rule-based and model-based)."""
        return self.verifiers.restarts

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
        return self.verifiers.stats()

    def shutdown(self) -> None:
        """Stops every actor of the run (also after one died or a signal came); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.verifiers.close()  # their process pools
        critics = self.critics.actors if self.critics is not None else []
        for a in self.learners.actors + critics + self.rollouts.actors + self.verifiers.actors:
            ray.kill(a, no_restart=True)
        if self.placement is not None:
            self.placement.remove()


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
