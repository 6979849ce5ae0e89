"""The one loop, a Ray driver: [sft] -> rl, reading top to bottom.

    rlcore train configs/tiny_coldstart.yaml      # the CLI calls train(cfg)

Zero-style RL is `stages: [rl]` from a base model; cold start is `stages: [sft, rl]`. Per RL step:
sample prompts -> rollouts (n per prompt, token ids + logprobs) -> verify -> advantages -> policy
update on the learner ranks -> sync weights to every engine -> log; checkpoint every C steps.
Held-out accuracy is measured on problems never trained on, before training and after each stage.
The loop branches on no backend and no algorithm name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import shutil
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rlcore import checkpoint, preflight, rl
from rlcore.actors import ActorDiedError, init_ray
from rlcore.algo import build_algorithm
from rlcore.canaries import CanaryError, CanaryWatch, hacking_alarm, top_rewarded
from rlcore.cluster import Cluster, RolloutError, SyncError, VerifierError
from rlcore.cold_start import Target, distilled_examples
from rlcore.config import ConfigError, TrainConfig
from rlcore.data.chat import completion_ids, render_prompt
from rlcore.data.dataset import sft_completion
from rlcore.eval.retention import bucket_table
from rlcore.hangs import HUNG, Watchdog, process_info, register_stack_dump, write_pids
from rlcore.learner.batch import pad_batch, shard
from rlcore.metrics import MetricsLogger, plot_rewards, read_metrics, truncate_metrics
from rlcore.plan.report import live, live_line
from rlcore.preempt import Preempted, StartupSignals, StopRequests
from rlcore.rollout.engine import SamplingParams
from rlcore.run_data import load_run_rows, refuse_long_prompts
from rlcore.rundir import prepare_run_dir, resolve_model_path, write_summary
from rlcore.sync.verify import mismatch_alarm
from rlcore.trackers import make_trackers

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int, dict[str, Any]], None]


def train(
    cfg: TrainConfig, progress: Progress | None = None, replay_step: int | None = None
) -> dict[str, Any]:
    """Runs the config's stages. `replay_step` (rlcore/replay.py): stop after that RL step's
    update, with its trained samples recorded in RUN_DIR/replay_step_file(step)."""
    t_start = time.time()
    preflight.check(cfg)  # the rules that need the subsystems, before anything is loaded
    # bad model paths and bad data fail here, before the run directory is written
    model_path = resolve_model_path(cfg.model.path)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    heldout, train_rows, sft_rows = load_run_rows(cfg)
    d = cfg.data
    rows_by_key = {"data.train": train_rows, "data.heldout": heldout, "data.sft": sft_rows}
    longest = refuse_long_prompts(
        rows_by_key, lambda row: _prompt_ids(tokenizer, d, row), cfg.rollout.max_model_len
    )
    stop_ids = _stop_token_ids(tokenizer, model_path)
    specs = [r.get("verifier", d.verifier) for r in train_rows + heldout]
    try:
        canaries = CanaryWatch.load(cfg, specs) if "rl" in cfg.stages else None
    except (OSError, ValueError) as e:
        raise ConfigError(f"verifier.canaries: {e}") from None
    prompt_tokens = cfg.plan.prompt_tokens or longest["data.train"]
    predicted = _plan_or_refuse(cfg, prompt_tokens, specs)  # before anything is written
    run_dir = prepare_run_dir(cfg)
    log.info("run directory: %s", run_dir)

    # ---- the Ray actors: learner ranks, rollout engines, verifiers; one weight-sync group ---------
    algo = build_algorithm(cfg)
    if "sft" in cfg.stages and cfg.sft.distill_n:
        specs += [_distill_verifier(cfg, r) for r in sft_rows]
    evaluator = None
    if cfg.eval.every:
        from rlcore.eval import PeriodicEval

        evaluator = PeriodicEval.from_config(
            cfg.eval,
            tokenizer,
            stop_ids,
            cfg.rollout.max_model_len,
            d.prompt_format,
            d.raw_template,
            run_dir / "eval",
        )
        specs += evaluator.specs
    startup = StartupSignals()  # a signal now stops the start-up cleanly (nothing to save yet)
    try:
        with startup:
            init_ray(cfg.ray_address, cfg.num_cpus)
            startup.install()  # ray.init replaced the SIGTERM handler with its own
            cluster = Cluster.start(
                cfg,
                model_path,
                specs,
                algo,
                verifier_options=dict(evaluator.suite.cfg.verifier_options) if evaluator else None,
            )
            startup.check()  # a signal whose exception a library caught (ray.init does)
    except BaseException as e:  # e.g. the placement group was not granted: leave no run directory
        if not cfg.resume:
            shutil.rmtree(run_dir, ignore_errors=True)
        signame = startup.signal or _ray_sigterm(e)
        if signame is not None:
            _stop_ray()
            raise Preempted(signame, run_dir=str(run_dir) if cfg.resume else "") from None
        raise
    stop = StopRequests(cfg.preempt_grace_s, on_expire=lambda name: _hard_stop(cluster, name))
    run = Run(
        cfg=cfg,
        tokenizer=tokenizer,
        run_dir=run_dir,
        cluster=cluster,
        algo=algo,
        evaluator=evaluator,
        heldout=heldout,
        train_rows=train_rows,
        sft_rows=sft_rows,
        stop_ids=stop_ids,
        progress=progress or (lambda stage, step, total, metrics: None),
        t_start=t_start,
        stop=stop,
        canaries=canaries,
        replay_step=replay_step,
        predicted_peak_mib=predicted,
        plan_prompt_tokens=prompt_tokens,
        watchdog=Watchdog(
            run_dir, cfg.watchdog_s, cfg.watchdog_action, stop.request, cfg.watchdog_floor_s
        ),
    )
    cluster.on_wait = run.stop.check
    register_stack_dump()  # the driver's stack too, for `rlcore stacks RUN_DIR` and the watchdog
    write_pids(run_dir, {"driver": process_info(), **cluster.processes()})
    try:
        with run.stop.installed():
            cluster.init_sync(probe=cluster.sample_probe(run.encode(heldout[0]), seed=cfg.seed))
            backends = list(cfg.log.backends)
            trackers = make_trackers(backends, asdict(cfg), run_dir, cfg.log.project, cfg.log.name)
            run.metrics = MetricsLogger(run_dir, backends, trackers)
            _resume(run)
            if run.state["stage"] == "start":
                with run.stop.interruptible():
                    run.evaluate("base")
                _periodic_eval(run, 0)  # the suite's baseline: the model the run starts from
            if "sft" in cfg.stages and run.state["stage"] == "start":
                _sft_stage(run)
            last: dict[str, Any] = {}
            if "rl" in cfg.stages and run.state["stage"] != "rl_done":
                last = _rl_stage(run)
            return _finish(run, last)
    except ReplayDone as done:
        return {"run_dir": str(run_dir), "replayed": done.step}
    except Preempted as p:
        if p.signame == HUNG:  # the watchdog stopped it (watchdog_action=stop)
            raise RunFailed(f"hung: {run.watchdog.reason}", str(run_dir)) from None
        if not p.run_dir:  # stopped before RL (base evaluation or SFT): nothing to keep yet
            raise Preempted(p.signame, run_dir=str(run_dir)) from None
        raise
    except (ActorDiedError, CanaryError, RolloutError, SyncError, VerifierError) as e:
        raise RunFailed(str(e), str(run_dir)) from e
    finally:
        run.watchdog.close()
        if run.metrics is not None:
            run.metrics.close()
        cluster.shutdown()


class ReplayDone(Exception):
    """The step a replay asked for is done (rlcore/replay.py)."""

    def __init__(self, step: int) -> None:
        super().__init__(f"replayed step {step}")
        self.step = step


def replay_step_file(step: int) -> str:
    return f"replay_step_{step:06d}.jsonl"


class RunFailed(RuntimeError):
    """An actor the run needs died for good, or a weight sync failed; `run_dir` can be resumed."""

    def __init__(self, message: str, run_dir: str) -> None:
        super().__init__(message)
        self.run_dir = run_dir


@dataclass
class Run:
    """What every stage of one run shares, built once by train()."""

    cfg: TrainConfig
    tokenizer: Any
    run_dir: Path
    cluster: Cluster
    algo: Any
    evaluator: Any
    heldout: list[dict[str, Any]]
    train_rows: list[dict[str, Any]]
    sft_rows: list[dict[str, Any]]
    stop_ids: list[int]
    progress: Progress
    t_start: float
    stop: StopRequests
    watchdog: Watchdog  # dumps every process's stack when a phase hangs (rlcore/hangs.py)
    canaries: CanaryWatch | None  # planted items of known verdict (rlcore/canaries.py)
    replay_step: int | None = None  # rlcore replay: stop after this RL step, its samples recorded
    predicted_peak_mib: dict[str, float] = field(default_factory=dict)  # rlcore/plan/, MiB
    plan_prompt_tokens: int = 0  # the longest prompt the plan was made for
    metrics: Any = None  # MetricsLogger, once the sync group is up
    state: dict[str, Any] = field(
        default_factory=lambda: {"stage": "start", "step": 0, "heldout": {}, "wall_s": 0.0}
    )
    wall_before: float = 0.0  # wall seconds of earlier attempts (resume)
    # async runs: the next step's batch, already sampled (one version old) when a step ends; a
    # checkpoint keeps it, so a resumed run trains on the same samples as the uninterrupted one
    inflight: rl.Collected | None = None

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.stop_ids[0]

    def encode(self, row: dict[str, Any]) -> list[int]:
        return _prompt_ids(self.tokenizer, self.cfg.data, row)

    def elapsed(self) -> float:
        """Wall seconds of the whole run, across resumes."""
        return self.wall_before + time.time() - self.t_start

    def evaluate(self, stage: str) -> float:
        acc = _evaluate(self, stage)
        self.state["heldout"][stage] = acc
        log.info("held-out accuracy after %s: %.3f (%d problems)", stage, acc, len(self.heldout))
        self.progress("eval", 0, 0, {"stage": stage, "accuracy": acc})
        return acc

    def save(self, step: int) -> Path:
        state = dict(self.state, wall_s=self.elapsed(), version=self.cluster.version)
        return _save(self.cluster, self.run_dir, step, state, self.tokenizer, self.inflight)

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


def _plan_or_refuse(cfg: TrainConfig, prompt_tokens: int, specs: list[Any]) -> dict[str, float]:
    """Each actor's predicted peak (MiB) for prompts of up to `prompt_tokens`. Refuses
    (ConfigError) a config whose prediction clearly exceeds this machine's memory, naming the
    actor and fixes the planner accepts, unless plan.force."""
    from rlcore.plan import PlanError, check_fits, config_model_verifiers, suggest_fixes
    from rlcore.plan.report import predicted_peaks, refusal

    try:
        plan = check_fits(cfg, prompt_tokens, config_model_verifiers(cfg, specs))
    except PlanError as e:  # a model the planner cannot describe is no reason not to run
        log.warning("plan: skipped (%s)", e)
        return {}
    if plan is None:  # on a cluster: its nodes are not this machine
        return {}
    if not plan.fits:
        message = refusal(plan, suggest_fixes(cfg, plan))
        if not cfg.plan.force:
            raise ConfigError(message)
        log.warning("%s (plan.force=true: starting anyway)", message)
    peaks = predicted_peaks(plan)
    log.info("plan: predicted peak memory (MiB) %s", peaks)
    return peaks


def _memory(run: Run) -> dict[str, float]:
    """Every actor's PSS now (pss_mib/<role><rank>, pss_mib/total); the run keeps each one's peak."""
    mem = run.cluster.memory()
    mem["pss_mib/total"] = sum(mem.values())
    peak = run.state.setdefault("peak_pss_mib", {})
    for k, v in mem.items():
        name = k.removeprefix("pss_mib/")
        peak[name] = max(peak.get(name, 0.0), round(v, 1))
    return mem


def _watch_mismatch(run: Run, step: int, metrics: dict[str, Any]) -> None:
    """With sync.verify, warns when the batch's learner/rollout mismatch leaves its early level."""
    if run.cfg.sync.verify and "mismatch_abs" in metrics:
        early = run.state.setdefault("mismatch_early", [])
        alarm = mismatch_alarm(metrics["mismatch_abs"], early, run.cfg.sync.verify_factor)
        if alarm is not None:
            log.warning("step %d: %s", step, alarm)


def _prompt_ids(tokenizer: Any, d: Any, row: dict[str, Any]) -> list[int]:
    """A row's prompt as the engines see it (data.prompt_format, data.raw_template)."""
    return render_prompt(
        tokenizer, row["prompt"], d.prompt_format, d.raw_template, d.parse_special_tokens
    )


def _resume(run: Run) -> None:
    """resume=RUN_DIR: the learners load the latest good checkpoint; the engines get its weights."""
    if not run.cfg.resume:
        return
    ckpt = checkpoint.latest(run.run_dir)
    if ckpt is None:  # stopped before its first checkpoint: start over
        truncate_metrics(run.run_dir, -1)
        return
    cluster, state = run.cluster, checkpoint.read_state(ckpt)
    if state["stage"] == "rl_done" and state["step"] < run.cfg.steps:
        state["stage"] = "rl"  # a finished run given more steps continues its RL stage
    cluster.learners.call("load", str(ckpt))
    if cluster.critics is not None:
        cluster.critics.call("load", str(ckpt))
    if state.get("reference"):
        cluster.learners.call("load_reference", str(_reference_path(run.run_dir, state)))
    cluster.sync_weights()
    inflight = ckpt / INFLIGHT
    if inflight.is_file() and run.cfg.rollout.async_steps and state["stage"] == "rl":
        import torch

        carried: rl.Collected = torch.load(inflight, weights_only=False)
        # versions restart in a new cluster; the batch keeps its distance from the weights
        carried.version = cluster.version - (int(state["version"]) - carried.version)
        run.inflight = carried
    truncate_metrics(run.run_dir, state["step"])
    run.state, run.wall_before = state, float(state.get("wall_s", 0.0))
    log.info("resumed from %s (stage %s, step %d)", ckpt, state["stage"], state["step"])


def _periodic_eval(run: Run, step: int) -> dict[str, float]:
    """The eval suite at RL step `step` (0: before SFT and RL, the baseline of the retention
    alarm and of the bucket table); its flat metrics ({} without a suite)."""
    if run.evaluator is None:
        return {}
    with run.stop.interruptible():
        final = step == run.cfg.steps
        result = run.evaluator(run.cluster.generate, run.cluster.score, step, final)[0]
    run.metrics.log(step, "eval", result)
    return result


def _watch_hacking(
    run: Run, step: int, rewards: list[float], result: dict[str, float], examples: list[Any]
) -> None:
    """After a periodic evaluation: the reward-hacking alarm (rlcore/canaries.py), on the mean
    training reward since the previous evaluation and each bucket's alarm metric."""
    vc = run.cfg.verifier
    if not (vc.hacking_window and rewards and result and run.evaluator is not None):
        return
    metric = "/" + run.evaluator.suite.cfg.alarm_metric
    buckets = {k.removesuffix(metric): v for k, v in result.items() if k.endswith(metric)}
    history = run.state.setdefault("hacking_history", [])
    history.append({"step": step, "reward": sum(rewards) / len(rewards), "buckets": buckets})
    alarm = hacking_alarm(history, vc.hacking_window, vc.hacking_margin)
    if alarm is not None:
        log.warning("step %d: %s; the samples that earned the most this step:", step, alarm)
        for line in top_rewarded(examples):
            log.warning("  %s", line)


def _sft_stage(run: Run) -> None:
    """Cold start: supervised fine-tuning on worked, correctly formatted solutions. A signal stops
    it between steps without a checkpoint (a resume runs SFT again)."""
    cfg, cluster, tokenizer = run.cfg, run.cluster, run.tokenizer
    rng = random.Random(cfg.seed)
    examples = [
        (
            run.encode(t.row),
            list(
                t.token_ids
                or completion_ids(
                    tokenizer, t.text, tokenizer.eos_token, cfg.data.parse_special_tokens
                )
            ),
        )
        for t in _sft_targets(run)
    ]
    world = cfg.learner.world_size
    per_batch = cfg.sft.batch_size - cfg.sft.batch_size % world
    if len(examples) < per_batch:
        raise ValueError(
            f"sft: {len(examples)} SFT examples, fewer than one batch (sft.batch_size "
            f"{cfg.sft.batch_size}); raise data.sft_size or sft.distill_n"
        )
    total = cfg.sft.epochs * (len(examples) // per_batch)
    sft_step = 0
    for _epoch in range(cfg.sft.epochs):
        rng.shuffle(examples)
        for start in range(0, len(examples) - per_batch + 1, per_batch):
            if run.stop.signal:
                raise Preempted(run.stop.signal)
            chunk = examples[start : start + per_batch]
            batch = pad_batch(
                [p for p, _ in chunk], [c for _, c in chunk], [0.0] * len(chunk), run.pad_id
            )
            tokens = float(batch.loss_mask.sum())
            out = cluster.learners.call_each(
                "sft_step",
                [(shard(batch, r, world), tokens, sft_step, total) for r in range(world)],
            )
            sft_step += 1
            row = {
                "loss": sum(o["loss"] for o in out) / tokens,
                "grad_norm": out[0]["grad_norm"],
                "lr": out[0]["lr"],  # the rank's: it schedules both stages
            }
            run.metrics.log(sft_step, "sft", row)
            run.progress("sft", sft_step, total, row)
    cluster.sync_weights()
    with run.stop.interruptible():
        run.evaluate("sft")
        if run.evaluator is not None and "rl" in cfg.stages:  # where RL's own gain starts from
            rl_start = run.evaluator.rl_start(run.cluster.generate, run.cluster.score)
            run.metrics.log(0, "eval_rl_start", rl_start)
    run.state["stage"] = "sft_done"
    if "rl" in cfg.stages:
        if cfg.sft.fresh_optimizer:  # before step 0 is saved, so a resume starts RL the same way
            cluster.learners.call("reset_optimizer")
        # RL's KL reference is the policy RL starts from (the SFT weights), also on a resume:
        # a checkpoint "step 0" holds them, and every later checkpoint's state names it
        run.state["reference"] = checkpoint.step_dir(run.run_dir, 0).name
        run.save(0)
        cluster.learners.call("load_reference", str(_reference_path(run.run_dir, run.state)))


def _sft_targets(run: Run) -> list[Target]:
    """One target per SFT example: the data's worked completions, or (sft.distill_n) the start
    model's own correct answers (rlcore/cold_start.py), written to sft_data.jsonl."""
    import json

    cfg = run.cfg
    if not cfg.sft.distill_n:
        return [Target(r, sft_completion(r, cfg.data.think), None) for r in run.sft_rows]
    # seeded: a resume (which runs SFT again) samples the same answers
    params = replace(_rollout_params(run), n=cfg.sft.distill_n, seed=cfg.seed)
    run.progress("sft_distill", 0, len(run.sft_rows), {})
    with run.stop.interruptible():
        targets, stats = distilled_examples(
            run.sft_rows,
            run.encode,
            run.cluster.generate,
            run.cluster.score,
            lambda r, c: rl.make_sample(r, c, run.tokenizer),
            lambda r: _distill_verifier(cfg, r),
            params,
            cfg.sft.distill_box_answer,
            rl_verifier_of=lambda r: r.get("verifier", cfg.data.verifier),
        )
    run.metrics.log(0, "sft_distill", stats)
    run.progress("sft_distill", len(run.sft_rows), len(run.sft_rows), stats)
    with (run.run_dir / "sft_data.jsonl").open("w") as f:
        for t in targets:
            row = {"id": t.row.get("id"), "prompt": t.row["prompt"], "completion": t.text}
            f.write(json.dumps({**row, "own_tokens": t.token_ids is not None}) + "\n")
    return targets


def _rollout_params(run: Run) -> SamplingParams:
    """RL's sampling settings (rollout.*), n per prompt."""
    r = run.cfg.rollout
    return SamplingParams(
        n=r.n,
        temperature=r.temperature,
        top_p=r.top_p,
        top_k=r.top_k,
        max_tokens=r.max_tokens,
        stop_token_ids=tuple(run.stop_ids),
    )


def _distill_verifier(cfg: TrainConfig, row: dict[str, Any]) -> Any:
    """The verifier that accepts a distilled SFT answer: sft.distill_verifier, else the row's."""
    return cfg.sft.distill_verifier or row.get("verifier", cfg.data.verifier)


def _rl_stage(run: Run) -> dict[str, Any]:
    """RL: collect (rollout, verify, shape, filter) -> update -> sync, one step at a time. A signal
    while collecting or evaluating stops at once with a checkpoint of the last finished step; one
    during the update or the sync stops after the step, with its checkpoint."""
    cfg, cluster, state = run.cfg, run.cluster, run.state
    order = list(range(len(run.train_rows)))
    random.Random(cfg.seed).shuffle(order)
    position = int(state.get("data_position", 0)) if state["stage"] == "rl" else 0

    def next_rows(count: int) -> tuple[list[dict[str, Any]], int]:
        """The next `count` rows of the shuffled stream, and the stream position of the first."""
        nonlocal position
        first = position
        rows = [run.train_rows[order[(first + i) % len(order)]] for i in range(count)]
        position += count
        return rows, first

    params = _rollout_params(run)
    watch = run.watchdog.phase
    rewards: list[float] = []  # each step's mean training reward since the last evaluation
    canaries = run.canaries
    if canaries is not None and "canary_start" not in state:
        canaries.check(cluster.score, state)  # the start every later check is compared with
    restarts = cluster.restarts + cluster.verifier_restarts

    def collect() -> rl.Collected:
        data = rl.collect(cluster, run.algo, cfg, next_rows, run.encode, params, run.tokenizer)
        data.version, data.position_end = cluster.version, position
        return data

    # rollout.async_steps=1: the rollouts of step t+1 run (on the engines' current weights, in a
    # driver thread) while the learner trains step t; the sync waits for both. Every sample is
    # then one policy version old (logged as staleness), which TIS corrects (algo.tis_cap).
    prefetch = ThreadPoolExecutor(max_workers=1) if cfg.rollout.async_steps else None
    pending: Future[rl.Collected] | None = None
    if run.inflight is not None and prefetch is not None:  # resumed: the batch in flight then
        pending = Future()
        pending.set_result(run.inflight)
        position = run.inflight.position_end
    last: dict[str, Any] = {}
    try:
        first = state["step"] + 1 if state["stage"] == "rl" else 1
        for step in range(first, cfg.steps + 1):
            t0 = time.time()
            with run.stop.interruptible(), watch("rollout"):  # learners hold step - 1's weights
                data = pending.result() if pending is not None else collect()
            pending = None
            if prefetch is not None and step < cfg.steps:
                pending = prefetch.submit(collect)
            t1 = time.time()
            last = dict(data.metrics, staleness=float(cluster.version - data.version))
            for alarm in data.alarms:
                log.warning("step %d: %s", step, alarm)
            record: list[dict[str, Any]] | None = [] if step == run.replay_step else None
            if data.rows:
                with watch("learn"):
                    update = rl.update(cluster, run.algo, cfg, data, run.pad_id, step, record)
                    last.update(update)
                _watch_mismatch(run, step, last)
            else:
                log.warning("step %d: every sampled group was dropped; no update", step)
            t2 = time.time()
            # the engines must be idle to take new weights; the batch they sampled is the next
            # step's, and a checkpoint from here on keeps it (run.inflight)
            run.inflight = pending.result() if pending is not None else None
            t3 = time.time()
            with watch("sync"):
                sync = cluster.sync_weights() if data.rows else {}
            # the probe's statistic, named for what it is (a max in float32, a mean in bf16)
            last.update({k: v for k, v in sync.items() if k.startswith("sync_probe_")})
            last.update(
                time_sync_load=sync.get("load_s", 0.0),  # the engines' receive + weight load
                time_sync_check=sync.get("check_s", 0.0),  # the probe check (sync.verify)
                rollout_restarts=float(cluster.restarts),
                verifier_restarts=float(cluster.verifier_restarts),
                time_learn=t2 - t1,
                time_wait_rollout=t3 - t2 + (t1 - t0 if prefetch is not None else 0.0),
                time_sync=time.time() - t3,
                time_step=time.time() - t0,
            )
            last.update(_memory(run))
            flips: list[str] = []
            if canaries is not None and step % cfg.verifier.canary_every == 0:
                canary_metrics, flips = canaries.check(cluster.score, state)
                last.update(canary_metrics)
                for line in flips:
                    log.warning("step %d: %s", step, line)
            if cluster.restarts + cluster.verifier_restarts != restarts:  # new processes
                restarts = cluster.restarts + cluster.verifier_restarts
                write_pids(run.run_dir, {"driver": process_info(), **cluster.processes()})
            run.metrics.log(step, "rl", last)
            every = cfg.log.completions_every
            if every and step % every == 0:
                shown = data.examples[: cfg.log.completions_max]
                run.metrics.completions(step, [dict(r, step=step) for r in shown])
            run.progress("rl", step, cfg.steps, last)
            if record is not None:  # rlcore replay: this step is the one asked for
                with (run.run_dir / replay_step_file(step)).open("w") as f:
                    f.writelines(json.dumps(r, default=str) + "\n" for r in record)
                raise ReplayDone(step)
            state.update(stage="rl", step=step, data_position=data.position_end)
            if flips and canaries is not None and canaries.action == "stop":
                raise CanaryError(
                    f"step {step}: {len(flips)} canary verdict(s) changed "
                    f"(verifier.canary_action=stop): {flips[0]}"
                )
            if run.stop.signal:
                raise Preempted(run.stop.signal)
            rewards.append(last.get("reward_mean", 0.0))
            if step % max(cfg.eval.every, 1) == 0 or step == cfg.steps:
                with watch("eval"):
                    _watch_hacking(run, step, rewards, _periodic_eval(run, step), data.examples)
                rewards = []
            if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                with watch("checkpoint"):
                    run.save(step)
    except Preempted as p:
        raise run.preempted(p.signame) from None
    finally:
        if prefetch is not None:
            prefetch.shutdown(wait=False, cancel_futures=True)
    with run.stop.interruptible():
        run.evaluate("rl")
    state["stage"] = "rl_done"
    return last


def _finish(run: Run, last: dict[str, Any]) -> dict[str, Any]:
    """The final checkpoint, summary.json, the plot and the capability table."""
    state = run.state
    state["wall_s"] = run.elapsed()
    _save(run.cluster, run.run_dir, state["step"], state, run.tokenizer)
    summary = {
        "run_dir": str(run.run_dir),
        "steps": state["step"],
        "wall_s": round(state["wall_s"], 1),
        "heldout_accuracy": state["heldout"],
        "final_reward_mean": last.get("reward_mean"),
        "final_accuracy": last.get("accuracy"),
        "verifier_stats": run.cluster.verifier_stats(),
        # each actor's peak resident memory (PSS, MiB) over the RL steps, and of their sum
        "peak_pss_mib": state.get("peak_pss_mib", {}),
        # the planner's prediction of the same peaks before the start (rlcore/plan/)
        "predicted_peak_mib": run.predicted_peak_mib,
        "plan_prompt_tokens": run.plan_prompt_tokens,  # what `rlcore plan --compare` re-plans with
    }
    # the bottleneck phase, each actor kind's busy fraction, measured peaks over predicted
    summary["live"] = live(
        read_metrics(run.run_dir), summary["peak_pss_mib"], run.predicted_peak_mib
    )
    log.info("phases: %s", live_line(summary["live"]))
    if run.evaluator is not None:
        trained = sorted({str(r.get("bucket", "")) for r in run.train_rows})
        summary.update(run.evaluator.finish(trained))
        log.info("capability buckets (first vs last evaluation):\n%s", bucket_table(summary))
    plot = plot_rewards(run.run_dir, state["heldout"])
    summary["plot"] = str(plot) if plot else None
    write_summary(run.run_dir, summary)
    files = [summary.get(k) for k in ("plot", "bucket_plot", "table")]
    run.metrics.finish(summary, [Path(f) for f in files if f])
    log.info("done: %s", {k: summary[k] for k in ("steps", "wall_s", "heldout_accuracy")})
    return summary


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


def _stop_token_ids(tokenizer: Any, model_path: str) -> list[int]:
    from transformers import AutoConfig

    eos = AutoConfig.from_pretrained(model_path).eos_token_id
    ids = list(eos) if isinstance(eos, list) else ([eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError(f"model.path: {model_path} defines no EOS token to stop generation on")
    return ids


def _evaluate(run: Run, stage: str) -> float:
    """Held-out accuracy: one sample per problem (greedy unless eval_temperature > 0), verified."""
    import json

    cfg, rows = run.cfg, run.heldout
    params = SamplingParams(
        n=1,
        temperature=cfg.eval_temperature,
        max_tokens=cfg.rollout.max_tokens,
        stop_token_ids=tuple(run.stop_ids),
        seed=cfg.seed if cfg.eval_temperature > 0 else None,  # greedy needs no seed
    )
    groups = run.cluster.generate([run.encode(r) for r in rows], params)
    samples = [rl.make_sample(r, g[0], run.tokenizer) for r, g in zip(rows, groups, strict=True)]
    results = run.cluster.score(
        [(r.get("verifier", cfg.data.verifier), s) for r, s in zip(rows, samples, strict=True)]
    )
    with (run.run_dir / f"heldout_{stage}.jsonl").open("w") as f:
        for r, s, res in zip(rows, samples, results, strict=True):
            f.write(
                json.dumps(
                    {
                        "id": r.get("id"),
                        "prompt": r["prompt"],
                        "response": s.response,
                        "correct": res["correct"],
                        "reward": res["reward"],
                    }
                )
                + "\n"
            )
    return sum(res["correct"] is True for res in results) / len(results)


def _reference_path(run_dir: Path, state: dict[str, Any]) -> Path:
    return run_dir / "checkpoints" / state["reference"] / "policy"


INFLIGHT = "inflight.pt"  # an async run's next batch, sampled before the checkpoint (resume)


def _save(
    cluster: Any,
    run_dir: Path,
    step: int,
    state: dict[str, Any],
    tokenizer: Any,
    inflight: rl.Collected | None = None,
) -> Path:
    tmp = checkpoint.begin(run_dir, step)
    cluster.learners.call("save", str(tmp))
    if inflight is not None:
        import torch

        torch.save(inflight, tmp / INFLIGHT)
    if cluster.critics is not None:
        cluster.critics.call("save", str(tmp))
    tokenizer.save_pretrained(tmp / "policy")
    path = checkpoint.commit(tmp, checkpoint.step_dir(run_dir, step), state)
    log.info("checkpoint: %s", path)
    keep = cluster.cfg.checkpoint_keep
    gone = checkpoint.prune(run_dir, keep, {state.get("reference", ""), path.name})
    if gone:
        log.info("checkpoint_keep=%d: deleted %s", keep, ", ".join(gone))
    return path
