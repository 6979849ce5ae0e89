"""Verification on Ray: rule-based and model-based verifier actors, two groups scoring at once.

    verifiers = VerifierActors.start(cfg, specs, placement, run_tag, options)
    pending = verifiers.submit(items)    # (row verifier spec, Sample) items; returns at once
    results = verifiers.collect(pending) # one result dict per item, in input order

A row's verifier spec names one verifier or a weighted list. Its components are routed by kind:
rule-based ones (math, format, ifeval, code, ...) to the `verifier` actors, each with a process
pool and per-sample timeouts; model-based ones (`model_based = True`: reward_model, judge,
similarity) to the `model verifier` actors, which hold the model and get their own resources
(verifier.model_actors, verifier.model_gpus). Both groups work on a batch at the same time; the
driver combines each row's components into its weighted composite (rlcore.verifiers.build.assemble).
With verifier.model_actors=0 every verifier runs in the rule-based actors.

An actor that dies is restarted by Ray and scores its whole part again: a part's results arrive
together or not at all, so no sample is lost or counted twice. Each actor (`VerifierWorker`) is a
`ScorerHost`: a Scorer for the run's verifier names, each with the run's default timeout unless its
options set one, models loaded at start; its results leave as plain dicts with the id of the
process that scored them, so the driver sees a restart Ray made between two calls.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray

from rlcore.actors import ActorGroup, actor
from rlcore.config import TrainConfig
from rlcore.placement import Placement
from rlcore.verifiers.build import Scorer, assemble, flatten, is_model_based, parse_spec
from rlcore.verifiers.types import Result

log = logging.getLogger(__name__)


class VerifierError(RuntimeError):
    """A verifier actor died more often than allowed."""


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


VerifierWorker = actor(ScorerHost, "VerifierWorker", set_threads=False)


def model_based_names(cfg: TrainConfig, specs: list[Any], options: dict[str, Any]) -> set[str]:
    """The verifiers of these row specs that get actors of their own (none if model_actors=0)."""
    if cfg.verifier.model_actors == 0:
        return set()
    names = {n for spec in specs for n, _ in parse_spec(spec)}
    return {n for n in names if is_model_based(n, options)}


@dataclass
class _Job:
    group: ActorGroup
    actor: int
    index: list[int]  # positions of this part's components in the flat component list
    pairs: list[tuple[str, Any]]
    ref: Any


@dataclass
class Pending:
    """A submitted batch: its parsed specs and the parts out at the actors."""

    specs: list[Any]
    size: int  # components in all
    jobs: list[_Job] = field(default_factory=list)


@dataclass
class VerifierActors:
    cfg: TrainConfig
    rule: ActorGroup  # may be empty (every named verifier is model-based)
    model: ActorGroup  # empty unless a model-based verifier is named
    model_names: set[str]
    # ray.get(ref, timeout); the cluster puts its own here, which calls its wait hook meanwhile
    get: Callable[[Any, float | None], Any] = lambda ref, timeout: ray.get(ref, timeout=timeout)
    restarts: int = 0  # actor restarts seen so far, both groups
    # each actor's process id as last seen, by (role, index): a restart Ray made while the actor
    # was idle fails no call, so a new id is how it shows
    pids: dict[tuple[str, int], int] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        cfg: TrainConfig,
        specs: list[Any],
        placement: Placement,
        run_tag: str,
        options: dict[str, Any],
        model_names: set[str] | None = None,
    ) -> VerifierActors:
        """model_names: `model_based_names(cfg, specs, options)`, when the caller has it already."""
        vc = cfg.verifier
        if model_names is None:
            model_names = model_based_names(cfg, specs, options)
        rule_names = {n for spec in specs for n, _ in parse_spec(spec)} - model_names

        def group(role: str, prefix: str, names: set[str], count: int, workers: int) -> ActorGroup:
            actors = [
                VerifierWorker.options(
                    **placement.options(role, i),
                    max_restarts=vc.max_restarts,
                    name=f"{prefix}-{i}-{run_tag}",
                ).remote(sorted(names), options, workers, vc.timeout_s)
                for i in range(count if names else 0)
            ]
            return ActorGroup(actors, role=prefix.replace("-", " ") + " actor")

        rule = group("verifier", "verifier", rule_names, vc.num_actors, vc.workers)
        model = group("model_verifier", "model-verifier", model_names, vc.model_actors, 1)
        # every model loaded (a bad model path fails here, naming the actor)
        pids = {(g.role, i): pid for g in (rule, model) for i, pid in enumerate(g.call("ready"))}
        if model_names:
            log.info(
                "model-based verifiers %s: %d actor(s) of their own, %d GPU(s) each",
                sorted(model_names),
                len(model),
                vc.model_gpus,
            )
        return cls(cfg, rule, model, model_names, pids=pids)

    @property
    def actors(self) -> list[Any]:
        return self.rule.actors + self.model.actors

    def submit(self, items: list[tuple[Any, Any]]) -> Pending:
        """Sends the batch's components to both groups at once; returns without waiting."""
        specs, pairs = flatten(items)
        pending = Pending(specs, len(pairs))
        for grp, mine in (
            (self.model, [k for k, (n, _) in enumerate(pairs) if n in self.model_names]),
            (self.rule, [k for k, (n, _) in enumerate(pairs) if n not in self.model_names]),
        ):
            if not mine:
                continue
            for i, index in enumerate(split(mine, len(grp))):
                if index:
                    part = [pairs[k] for k in index]
                    ref = grp.actors[i].score_dicts.remote(part)
                    pending.jobs.append(_Job(grp, i, index, part, ref))
        return pending

    def collect(self, pending: Pending) -> list[dict[str, Any]]:
        """Every part's results (restarting dead actors), combined per item, as dicts."""
        scored: list[Result | None] = [None] * pending.size
        for job in pending.jobs:
            for k, d in zip(job.index, self._result(job), strict=True):
                scored[k] = Result(**d)
        return [r.to_dict() for r in assemble(pending.specs, scored)]  # type: ignore[arg-type]

    def score(self, items: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
        return self.collect(self.submit(items))

    def _result(self, job: _Job) -> list[dict[str, Any]]:
        """The part's results. A model-based part slower than verifier.timeout_s per sample gets
        "timeout" results (its actor is killed and restarted: a hung model would block every
        later batch); an actor that dies is restarted and scores the part again."""
        limit, ref = self.cfg.verifier.max_restarts, job.ref
        role = job.group.role
        budget = self.cfg.verifier.timeout_s * len(job.pairs) if job.group is self.model else None
        for attempt in range(limit + 1):
            try:
                pid, results = self.get(ref, budget)
                self._seen(job, pid)
                return list(results)
            except ray.exceptions.GetTimeoutError:
                log.warning(
                    "%s %d: %d samples not scored in %.0f s",
                    role,
                    job.actor,
                    len(job.pairs),
                    budget,
                )
                ray.kill(job.group.actors[job.actor], no_restart=False)
                error = (
                    f"timeout: {role} {job.actor} did not score its {len(job.pairs)} samples "
                    f"within verifier.timeout_s={self.cfg.verifier.timeout_s} each"
                )
                return [Result(reward=0.0, error=error).to_dict() for _ in job.pairs]
            except ray.exceptions.RayActorError as e:
                if attempt == limit:
                    raise VerifierError(
                        f"{role} {job.actor} died {attempt + 1} times (verifier.max_restarts="
                        f"{limit}); last error: {e}"
                    ) from None
                log.warning(
                    "%s %d died (%s); waiting for its restart, then scoring its %d samples again",
                    role,
                    job.actor,
                    type(e).__name__,
                    len(job.pairs),
                )
                actor = job.group.actors[job.actor]
                self._seen(job, wait_ready(actor, self.cfg.rollout.timeout_s))
                ref = actor.score_dicts.remote(job.pairs)
        raise AssertionError("unreachable")

    def _seen(self, job: _Job, pid: int) -> None:
        """Counts a restart when the actor answers from a process it did not answer from before."""
        key = (job.group.role, job.actor)
        if self.pids.setdefault(key, pid) != pid:
            self.pids[key] = pid
            self.restarts += 1
            log.info("%s %d was restarted (%d restarts so far)", *key, self.restarts)

    def stats(self) -> list[dict[str, Any]]:
        return self.rule.call("stats") + self.model.call("stats")

    def close(self) -> None:
        """Closes the actors' process pools; the caller kills the actors."""
        try:
            ray.get([a.close.remote() for a in self.actors], timeout=30)
        except Exception as e:  # a dead or hung verifier actor: ray.kill ends it anyway
            log.warning("verifier actors did not close cleanly: %s", type(e).__name__)


def wait_ready(actor: Any, timeout_s: float) -> Any:
    """What `ready` answers once a restarting actor is back (Ray re-runs its constructor), waiting
    at most timeout_s."""
    deadline = time.time() + timeout_s
    while True:
        try:
            return ray.get(actor.ready.remote(), timeout=max(deadline - time.time(), 1.0))
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """`parts` contiguous slices of `items`, as even as ceil division makes them."""
    size = -(-len(items) // max(parts, 1))
    return [items[i * size : (i + 1) * size] for i in range(parts)]
