"""Where the run's actors go: one placement group from the config's `resources` section.

    placement = Placement.create(cfg, needs_critic)        # after ray.init
    LearnerWorker.options(**placement.options("learner", rank)).remote(...)

`resources.nodes = 0` (the default, one machine): no placement group. Actors ask for 0 CPUs and, on
GPUs, plain `num_gpus` (learner.gpus_per_rank; rollout.tensor_parallel_size when `gpus > 0`), as
they always have. `resources.nodes > 0` (a cluster): every actor gets its own bundle of ONE placement
group, reserved all at once so a run never starts half-placed:

    learner / critic rank   {GPU: learner.gpus_per_rank, CPU: 1}
    rollout engine          {GPU: rollout.tensor_parallel_size (when gpus > 0), CPU: 1}
    verifier actor          {CPU: verifier.workers}
    model verifier actor    {GPU: verifier.model_gpus, CPU: 1}   (when a model-based verifier is named)

in that order; `resources.strategy` pack|spread is Ray's PACK|SPREAD (pack puts the learner ranks
side by side for NCCL, then fills the next nodes with engines). The actors still ask for 0 CPUs of
their bundle (phases run one after another, so each may use every core of its node while it works);
the bundle's CPU reserves the slot. Before anything is reserved the bundles are checked against the
cluster's alive nodes (`ray.nodes()`, the per-node view of `ray.cluster_resources()`): a request
larger than the cluster fails at once with what was asked and what exists.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlcore import threads
from rlcore.errors import ConfigError

if TYPE_CHECKING:
    from rlcore.config import TrainConfig

log = logging.getLogger(__name__)

ROLES = ("learner", "critic", "rollout", "verifier", "model_verifier")
LOCALHOST = "127.0.0.1"


@dataclass(frozen=True)
class Bundle:
    role: str  # learner | critic | rollout | verifier | model_verifier
    index: int  # rank, engine or actor number within the role
    gpus: int
    cpus: int

    def resources(self) -> dict[str, float]:
        out = {"GPU": float(self.gpus), "CPU": float(self.cpus)}
        return {k: v for k, v in out.items() if v > 0}


def plan(cfg: TrainConfig, needs_critic: bool, model_verifiers: int = 0) -> list[Bundle]:
    """One bundle per actor, in placement order: learner ranks, critic ranks, engines, verifiers,
    model-based verifiers (`model_verifiers` actors: verifier.model_actors when one is named)."""
    lc, rc, vc = cfg.learner, cfg.rollout, cfg.verifier
    rollout_gpus = rc.tensor_parallel_size if cfg.gpus else 0
    out = [Bundle("learner", r, lc.gpus_per_rank, 1) for r in range(lc.world_size)]
    if needs_critic:
        out += [Bundle("critic", r, lc.gpus_per_rank, 1) for r in range(lc.world_size)]
    out += [Bundle("rollout", i, rollout_gpus, 1) for i in range(rc.num_workers)]
    out += [Bundle("verifier", i, 0, max(vc.workers, 1)) for i in range(vc.num_actors)]
    out += [Bundle("model_verifier", i, vc.model_gpus, 1) for i in range(model_verifiers)]
    return out


def describe(bundles: list[Bundle]) -> str:
    """ "learner 2 x {GPU: 1, CPU: 1}, rollout 2 x {GPU: 2, CPU: 1} (6 GPUs, 5 CPUs in total)" """
    groups = Counter((b.role, b.gpus, b.cpus) for b in bundles)
    parts = []
    for (role, gpus, cpus), n in groups.items():
        res = ", ".join(f"{k}: {v:g}" for k, v in Bundle(role, 0, gpus, cpus).resources().items())
        parts.append(f"{role} {n} x {{{res}}}")
    gpus, cpus = sum(b.gpus for b in bundles), sum(b.cpus for b in bundles)
    return f"{', '.join(parts)} ({gpus} GPUs, {cpus} CPUs in total)"


def check_shape(cfg: TrainConfig, bundles: list[Bundle]) -> None:
    """Config-time rule (no cluster needed): the roles fit the node shape `resources` declares."""
    r = cfg.resources
    if r.nodes == 0:
        return
    gpus, cpus = sum(b.gpus for b in bundles), sum(b.cpus for b in bundles)
    widest = max(bundles, key=lambda b: b.gpus)
    if widest.gpus > r.gpus_per_node:
        raise ConfigError(
            f"resources: a {widest.role} actor needs {widest.gpus} GPU(s) on one node but "
            f"resources.gpus_per_node={r.gpus_per_node} (bundles: {describe(bundles)})"
        )
    if gpus > r.nodes * r.gpus_per_node:
        raise ConfigError(
            f"resources: the roles need {gpus} GPUs ({describe(bundles)}) but resources declares "
            f"nodes={r.nodes} x gpus_per_node={r.gpus_per_node} = {r.nodes * r.gpus_per_node}"
        )
    if r.cpus_per_node and cpus > r.nodes * r.cpus_per_node:
        raise ConfigError(
            f"resources: the roles need {cpus} CPUs ({describe(bundles)}) but resources declares "
            f"nodes={r.nodes} x cpus_per_node={r.cpus_per_node} = {r.nodes * r.cpus_per_node}"
        )


def check_cluster(cfg: TrainConfig, bundles: list[Bundle], nodes: list[dict[str, Any]]) -> None:
    """The cluster (`ray.nodes()` rows) has the nodes `resources` declares and room for every
    bundle (first-fit, largest first); else a ConfigError with what was asked and what exists."""
    r = cfg.resources
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    big = [n for n in alive if _fits(n, r.gpus_per_node, r.cpus_per_node)]
    free = [dict(n) for n in alive]
    placed = all(_first_fit(free, b) for b in sorted(bundles, key=lambda b: (-b.gpus, -b.cpus)))
    if len(big) >= r.nodes and placed:
        return
    per_node = ", ".join(f"{{GPU: {n.get('GPU', 0):g}, CPU: {n.get('CPU', 0):g}}}" for n in alive)
    total_gpu = sum(n.get("GPU", 0) for n in alive)
    total_cpu = sum(n.get("CPU", 0) for n in alive)
    shape = f"nodes={r.nodes} x gpus_per_node={r.gpus_per_node}"
    if r.cpus_per_node:
        shape += f" x cpus_per_node={r.cpus_per_node}"
    raise ConfigError(
        f"resources: this run asks for {shape}; bundles {describe(bundles)}. The cluster has "
        f"{len(alive)} alive node(s) ({len(big)} of them that large): {per_node or 'none'}; "
        f"{total_gpu:g} GPUs, {total_cpu:g} CPUs in total. Use a smaller config (fewer ranks, "
        "engines or verifier workers) or a larger cluster"
    )


def _fits(node: dict[str, float], gpus: float, cpus: float) -> bool:
    return node.get("GPU", 0) >= gpus and node.get("CPU", 0) >= cpus


def _first_fit(free: list[dict[str, float]], b: Bundle) -> bool:
    for node in free:
        if _fits(node, b.gpus, b.cpus):
            node["GPU"] = node.get("GPU", 0) - b.gpus
            node["CPU"] = node.get("CPU", 0) - b.cpus
            return True
    return False


@dataclass
class Placement:
    """Actor options per role; the placement group behind them (None on one machine)."""

    cfg: TrainConfig
    bundles: list[Bundle] = field(default_factory=list)
    pg: Any = None
    threads: dict[str, int] = field(default_factory=dict)  # per actor of a role (rlcore/threads.py)

    @classmethod
    def create(cls, cfg: TrainConfig, needs_critic: bool, model_verifiers: int = 0) -> Placement:
        per_actor = threads.plan(cfg, needs_critic)
        log.info("threads per actor: %s", per_actor)
        if cfg.resources.nodes == 0:
            return cls(cfg, threads=per_actor)
        import ray
        from ray.util import placement_group, remove_placement_group

        bundles = plan(cfg, needs_critic, model_verifiers)
        check_cluster(cfg, bundles, ray.nodes())
        strategy = {"pack": "PACK", "spread": "SPREAD"}[cfg.resources.strategy]
        pg = placement_group([b.resources() for b in bundles], strategy=strategy)
        ready, _ = ray.wait([pg.ready()], timeout=cfg.resources.timeout_s)
        if not ready:
            remove_placement_group(pg)
            raise ConfigError(
                f"resources: the placement group ({describe(bundles)}, {strategy}) was not "
                f"reserved within resources.timeout_s={cfg.resources.timeout_s:g}; other jobs may "
                f"hold the resources. Cluster now: {ray.available_resources()}"
            )
        log.info("placement group %s reserved: %s", strategy, describe(bundles))
        return cls(cfg, bundles, pg, per_actor)

    def _index(self, role: str, index: int) -> int:
        for i, b in enumerate(self.bundles):
            if b.role == role and b.index == index:
                return i
        raise KeyError(f"no bundle for {role} {index}")

    def options(self, role: str, index: int) -> dict[str, Any]:
        """Keyword arguments for `ActorClass.options(...)` of the role's `index`-th actor."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {ROLES}")
        gpus = self.cfg.learner.gpus_per_rank if role in ("learner", "critic") else 0
        if role == "rollout" and self.cfg.gpus:
            gpus = self.cfg.rollout.tensor_parallel_size
        if role == "model_verifier":
            gpus = self.cfg.verifier.model_gpus
        preload = None
        if role in ("learner", "critic", "rollout") and not gpus:  # the CPU processes' allocator
            preload = threads.malloc_preload(self.cfg.resources.malloc)
        env = threads.runtime_env(self.threads[role], preload) if role in self.threads else {}
        if self.pg is None:
            return {"num_gpus": gpus, **env} if gpus else env
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        i = self._index(role, index)
        strategy = PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=i)
        gpus = self.bundles[i].gpus
        return {"num_cpus": 0, "num_gpus": gpus, "scheduling_strategy": strategy, **env}

    def node_ip(self, role: str, index: int) -> str:
        """The address of the node holding that actor's bundle (rank 0 hosts the process groups)."""
        if self.pg is None:
            return LOCALHOST
        import ray
        from ray.util import placement_group_table

        node_id = placement_group_table(self.pg)["bundles_to_node_id"][self._index(role, index)]
        for n in ray.nodes():
            if n["NodeID"] == node_id:
                return str(n["NodeManagerAddress"])
        raise RuntimeError(f"placement: node {node_id} of {role} {index} is not in ray.nodes()")

    def free_port(self, role: str, index: int) -> int:
        """A free port on the node of that actor's bundle, which is where the socket will open
        (a port free on the driver's machine may be taken there)."""
        from rlcore.ports import free_port

        if self.pg is None:
            return free_port()
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        strategy = PlacementGroupSchedulingStrategy(
            self.pg, placement_group_bundle_index=self._index(role, index)
        )
        pick = ray.remote(num_cpus=0, num_gpus=0)(free_port)
        return int(
            ray.get(pick.options(scheduling_strategy=strategy).remote(self.node_ip(role, index)))
        )

    def remove(self) -> None:
        if self.pg is not None:
            from ray.util import remove_placement_group

            remove_placement_group(self.pg)
            self.pg = None
