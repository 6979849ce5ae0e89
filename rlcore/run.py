"""What every stage of one run shares, built once before the first stage (rlcore/trainer.py).

    run = Run.start(cfg, progress, replay_step)   # rows, plan check, run directory, actors
    run.open()                                    # sync group, trackers (signals installed)

`Run.start` does everything that can fail before a step is taken, in the order that leaves
nothing behind on failure: the model path and data (bad ones fail before the run directory is
written), the memory plan, the run directory, then the Ray actors (a placement group that is not
granted, or a signal during start-up, removes the new run directory again).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlcore import checkpoint
from rlcore.actors import init_ray
from rlcore.algo import Algorithm, build_algorithm
from rlcore.canaries import CanaryWatch
from rlcore.cluster import Cluster
from rlcore.config import ConfigError, TrainConfig
from rlcore.data.chat import stop_token_ids
from rlcore.data.run_rows import load_run_rows, refuse_long_prompts
from rlcore.eval.periodic import PeriodicEval, suite_config
from rlcore.hangs import Watchdog, process_info, register_stack_dump, write_pids
from rlcore.metrics_log import MetricsLogger
from rlcore.plan.report import plan_or_refuse
from rlcore.preempt import Preempted, StartupSignals, StopRequests
from rlcore.rollout.engine import SamplingParams
from rlcore.rundir import prepare_run_dir, resolve_model_path
from rlcore.sampling import Sampler, encode
from rlcore.step import Collected
from rlcore.trackers import make_trackers

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int, dict[str, Any]], None]  # stage, step, total, metrics


@dataclass
class Run:
    cfg: TrainConfig
    tokenizer: Any
    run_dir: Path
    cluster: Cluster
    sampler: Sampler  # sample-and-verify through the cluster (rlcore/sampling.py)
    algo: Algorithm
    evaluator: PeriodicEval | None  # the eval suite (eval.every > 0)
    heldout: list[dict[str, Any]]
    train_rows: list[dict[str, Any]]
    sft_rows: list[dict[str, Any]]
    stop_ids: list[int]
    progress: Progress
    stop: StopRequests
    watchdog: Watchdog  # dumps every process's stack when a phase hangs (rlcore/hangs.py)
    canaries: CanaryWatch | None  # planted items of known verdict (rlcore/canaries.py)
    replay_step: int | None = None  # rlcore replay: stop after this RL step, its samples recorded
    predicted_peak_mib: dict[str, float] = field(default_factory=dict)  # rlcore/plan/, MiB
    plan_prompt_tokens: int = 0  # the longest prompt the plan was made for
    t_start: float = field(default_factory=time.time)
    metrics: MetricsLogger | None = None  # once the sync group is up (open)
    state: dict[str, Any] = field(
        default_factory=lambda: {"stage": "start", "step": 0, "heldout": {}, "wall_s": 0.0}
    )
    wall_before: float = 0.0  # wall seconds of earlier attempts (resume)
    # async runs: the next step's batch, already sampled (one version old) when a step ends; a
    # checkpoint keeps it, so a resumed run trains on the same samples as the uninterrupted one
    inflight: Collected | None = None
    restarts_seen: tuple[int, int] = (0, 0)  # engine and verifier actor restarts (hang dumps)

    @classmethod
    def start(cls, cfg: TrainConfig, progress: Progress, replay_step: int | None) -> Run:
        t_start = time.time()
        model_path = resolve_model_path(cfg.model.path)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path)
        heldout, train_rows, sft_rows = load_run_rows(cfg)
        rows_by_key = {"data.train": train_rows, "data.heldout": heldout, "data.sft": sft_rows}
        longest = refuse_long_prompts(
            rows_by_key, lambda row: encode(tokenizer, cfg.data, row), cfg.rollout.max_model_len
        )
        stop_ids = stop_token_ids(tokenizer, model_path)
        specs = [r.get("verifier", cfg.data.verifier) for r in train_rows + heldout]
        try:
            canaries = CanaryWatch.load(cfg, specs) if "rl" in cfg.stages else None
        except (OSError, ValueError) as e:
            raise ConfigError(f"verifier.canaries: {e}") from None
        prompt_tokens = cfg.plan.prompt_tokens or longest["data.train"]
        predicted = plan_or_refuse(cfg, prompt_tokens, specs)  # before anything is written
        run_dir = prepare_run_dir(cfg)
        log.info("run directory: %s", run_dir)

        algo = build_algorithm(cfg)
        if "sft" in cfg.stages and cfg.sft.distill_n:
            specs += [
                cfg.sft.distill_verifier or r.get("verifier", cfg.data.verifier) for r in sft_rows
            ]
        evaluator = None
        if cfg.eval.every:
            d = cfg.data
            evaluator = PeriodicEval.build(
                suite_config(cfg.eval),
                tokenizer,
                stop_ids,
                cfg.rollout.max_model_len,
                d.prompt_format,
                d.raw_template,
                run_dir / "eval",
            )
            specs += evaluator.specs
        cluster = _start_cluster(cfg, model_path, specs, algo, evaluator, run_dir)
        stop = StopRequests(cfg.preempt_grace_s, on_expire=lambda name: _hard_stop(cluster, name))
        cluster.on_wait = stop.check
        sampler = Sampler(cluster, tokenizer, cfg.data, cfg.rollout, cfg.verifier.overlap)
        watchdog = Watchdog(
            run_dir, cfg.watchdog_s, cfg.watchdog_action, stop.request, cfg.watchdog_floor_s
        )
        register_stack_dump()  # the driver's stack too, for `rlcore stacks RUN_DIR` and the watchdog
        write_pids(run_dir, {"driver": process_info(), **cluster.processes()})
        return cls(
            cfg=cfg,
            tokenizer=tokenizer,
            run_dir=run_dir,
            cluster=cluster,
            sampler=sampler,
            algo=algo,
            evaluator=evaluator,
            heldout=heldout,
            train_rows=train_rows,
            sft_rows=sft_rows,
            stop_ids=stop_ids,
            progress=progress or (lambda stage, step, total, metrics: None),
            stop=stop,
            watchdog=watchdog,
            canaries=canaries,
            replay_step=replay_step,
            predicted_peak_mib=predicted,
            plan_prompt_tokens=prompt_tokens,
            t_start=t_start,
        )

    def open(self) -> None:
        """The weight-sync group (with the check's probe) and the metrics log with its trackers."""
        cfg = self.cfg
        weights = self.cluster.weights
        weights.init(weights.sample_probe(self.sampler.encode(self.heldout[0]), seed=cfg.seed))
        backends = list(cfg.log.backends)
        trackers = make_trackers(backends, asdict(cfg), self.run_dir, cfg.log.project, cfg.log.name)
        self.metrics = MetricsLogger(self.run_dir, backends, trackers)

    def close(self) -> None:
        self.watchdog.close()
        if self.metrics is not None:
            self.metrics.close()
        self.cluster.shutdown()

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.stop_ids[0]

    def rollout_params(self) -> SamplingParams:
        """RL's sampling settings (rollout.*), n per prompt."""
        r = self.cfg.rollout
        return SamplingParams(
            n=r.n,
            temperature=r.temperature,
            top_p=r.top_p,
            top_k=r.top_k,
            max_tokens=r.max_tokens,
            stop_token_ids=tuple(self.stop_ids),
        )

    def elapsed(self) -> float:
        """Wall seconds of the whole run, across resumes."""
        return self.wall_before + time.time() - self.t_start

    def save(self, step: int) -> Path:
        state = dict(self.state, wall_s=self.elapsed(), version=self.cluster.version)
        return checkpoint.save(
            self.cluster, self.run_dir, step, state, self.tokenizer, self.inflight
        )

    def preempted(self, signame: str) -> Preempted:
        """Checkpoint what the learners hold (the last finished step), unless one exists."""
        step, latest = self.state["step"], checkpoint.latest(self.run_dir)
        if self.state["stage"] == "start":  # nothing trained yet: a resume starts over
            ckpt = None
        elif latest is not None and checkpoint.read_state(latest).get("step") == step:
            ckpt = latest
        else:
            ckpt = self.save(step)
        return Preempted(signame, step, str(ckpt) if ckpt else None, str(self.run_dir))


def _start_cluster(
    cfg: TrainConfig,
    model_path: str,
    specs: list[Any],
    algo: Algorithm,
    evaluator: PeriodicEval | None,
    run_dir: Path,
) -> Cluster:
    """The Ray actors: learner ranks, rollout engines, verifiers. A failure or a signal during
    start-up leaves no new run directory behind."""
    startup = StartupSignals()  # a signal now stops the start-up cleanly (nothing to save yet)
    try:
        with startup:
            init_ray(cfg.ray_address, cfg.num_cpus)
            startup.install()  # ray.init replaced the SIGTERM handler with its own
            options = dict(evaluator.suite.cfg.verifier_options) if evaluator else None
            cluster = Cluster.start(cfg, model_path, specs, algo, verifier_options=options)
            startup.check()  # a signal whose exception a library caught (ray.init does)
            return cluster
    except BaseException as e:  # e.g. the placement group was not granted
        if not cfg.resume:
            shutil.rmtree(run_dir, ignore_errors=True)
        signame = startup.signal or _ray_sigterm(e)
        if signame is not None:
            _stop_ray()
            raise Preempted(signame, run_dir=str(run_dir) if cfg.resume else "") from None
        raise


def _ray_sigterm(e: BaseException) -> str | None:
    """ray.init's own SIGTERM handler exits with the signal's number: a SIGTERM during ray.init."""
    return "SIGTERM" if isinstance(e, SystemExit) and e.code == signal.SIGTERM else None


def _stop_ray() -> None:
    """Stops the actors started so far (a local Ray cluster goes with them)."""
    import ray

    with contextlib.suppress(Exception):
        ray.shutdown()


def _hard_stop(cluster: Cluster, signame: str) -> None:
    """The grace period is over (or a second signal came): stop every actor and exit now."""
    import os

    import ray

    log.error(
        "%s: the run did not reach a safe point in time; stopping without a checkpoint", signame
    )
    try:
        cluster.shutdown()
        ray.shutdown()
    finally:
        os._exit(128 + int(getattr(signal, signame, signal.SIGTERM)))
