"""The one loop, a Ray driver: [sft] -> rl, reading top to bottom.

    rlcore train configs/tiny_coldstart.yaml      # the CLI calls train(cfg)

Zero-style RL is `stages: [rl]` from a base model; cold start is `stages: [sft, rl]`. Per RL step:
sample prompts -> rollouts (n per prompt, token ids + logprobs) -> verify -> advantages -> policy
update on the learner ranks -> sync weights to every engine -> log; checkpoint every C steps.
Held-out accuracy is measured on problems never trained on, before training and after each stage.
The loop branches on no backend and no algorithm name.
"""

from __future__ import annotations

import json
import logging
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from rlcore import checkpoint, preflight
from rlcore.actors import ActorDiedError
from rlcore.canaries import CanaryError, hacking_alarm, top_rewarded
from rlcore.cluster import RolloutError, SyncError, VerifierError
from rlcore.cold_start import Target, distilled_examples
from rlcore.config import TrainConfig
from rlcore.data.chat import completion_ids
from rlcore.data.dataset import sft_completion
from rlcore.eval.heldout import heldout_accuracy
from rlcore.eval.retention import bucket_table
from rlcore.hangs import HUNG, process_info, write_pids
from rlcore.learner.batch import pad_batch, shard
from rlcore.metrics_log import plot_rewards, read_metrics, truncate_metrics
from rlcore.plan.report import live, live_line
from rlcore.preempt import Preempted
from rlcore.rollout.engine import SamplingParams
from rlcore.run import Progress, Run
from rlcore.rundir import write_summary
from rlcore.step import Collected, RowStream, collect, update
from rlcore.sync.verify import mismatch_alarm

log = logging.getLogger(__name__)


def train(
    cfg: TrainConfig, progress: Progress | None = None, replay_step: int | None = None
) -> dict[str, Any]:
    """Runs the config's stages. `replay_step` (rlcore/replay.py): stop after that RL step's
    update, with its trained samples recorded in RUN_DIR/replay_step_file(step)."""
    preflight.check(cfg)  # the rules that need the subsystems, before anything is loaded
    run = Run.start(cfg, progress, replay_step)
    try:
        with run.stop.installed():
            run.open()
            _resume(run)
            if run.state["stage"] == "start":
                with run.stop.interruptible():
                    _heldout(run, "base")
                _periodic_eval(run, 0)  # the suite's baseline: the model the run starts from
            if "sft" in cfg.stages and run.state["stage"] == "start":
                _sft_stage(run)
            last: dict[str, Any] = {}
            if "rl" in cfg.stages and run.state["stage"] != "rl_done":
                last = _rl_stage(run)
            return _finish(run, last)
    except ReplayDone as done:
        return {"run_dir": str(run.run_dir), "replayed": done.step}
    except Preempted as p:
        if p.signame == HUNG:  # the watchdog stopped it (watchdog_action=stop)
            raise RunFailed(f"hung: {run.watchdog.reason}", str(run.run_dir)) from None
        if not p.run_dir:  # stopped before RL (base evaluation or SFT): nothing to keep yet
            raise Preempted(p.signame, run_dir=str(run.run_dir)) from None
        raise
    except (ActorDiedError, CanaryError, RolloutError, SyncError, VerifierError) as e:
        raise RunFailed(str(e), str(run.run_dir)) from e
    finally:
        run.close()


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
        cluster.learners.call("load_reference", str(checkpoint.reference_path(run.run_dir, state)))
    cluster.weights.push()
    inflight = ckpt / checkpoint.INFLIGHT
    if inflight.is_file() and run.cfg.rollout.async_steps and state["stage"] == "rl":
        import torch

        carried: Collected = torch.load(inflight, weights_only=False)
        # versions restart in a new cluster; the batch keeps its distance from the weights
        carried.version = cluster.version - (int(state["version"]) - carried.version)
        run.inflight = carried
    truncate_metrics(run.run_dir, state["step"])
    run.state, run.wall_before = state, float(state.get("wall_s", 0.0))
    log.info("resumed from %s (stage %s, step %d)", ckpt, state["stage"], state["step"])


def _sft_stage(run: Run) -> None:
    """Cold start: supervised fine-tuning on worked, correctly formatted solutions. A signal stops
    it between steps without a checkpoint (a resume runs SFT again)."""
    cfg, cluster, tokenizer = run.cfg, run.cluster, run.tokenizer
    rng = random.Random(cfg.seed)
    examples = [
        (
            run.sampler.encode(t.row),
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
    cluster.weights.push()
    with run.stop.interruptible():
        _heldout(run, "sft")
        if run.evaluator is not None and "rl" in cfg.stages:  # where RL's own gain starts from
            rl_start = run.evaluator.rl_start(run.sampler)
            run.metrics.log(0, "eval_rl_start", rl_start)
    run.state["stage"] = "sft_done"
    if "rl" in cfg.stages:
        if cfg.sft.fresh_optimizer:  # before step 0 is saved, so a resume starts RL the same way
            cluster.learners.call("reset_optimizer")
        # RL's KL reference is the policy RL starts from (the SFT weights), also on a resume:
        # a checkpoint "step 0" holds them, and every later checkpoint's state names it
        run.state["reference"] = checkpoint.step_dir(run.run_dir, 0).name
        run.save(0)
        cluster.learners.call(
            "load_reference", str(checkpoint.reference_path(run.run_dir, run.state))
        )


def _rl_stage(run: Run) -> dict[str, Any]:
    """RL: collect (rollout, verify, shape, filter) -> update -> sync, one step at a time. A signal
    while collecting or evaluating stops at once with a checkpoint of the last finished step; one
    during the update or the sync stops after the step, with its checkpoint."""
    cfg, cluster, state = run.cfg, run.cluster, run.state
    position = int(state.get("data_position", 0)) if state["stage"] == "rl" else 0
    stream = RowStream(run.train_rows, cfg.seed, position)
    params = run.rollout_params()
    rewards: list[float] = []  # each step's mean training reward since the last evaluation
    if run.canaries is not None and "canary_start" not in state:
        run.canaries.check(run.sampler.score, state)  # what every later check is compared with

    def draw() -> Collected:
        data = collect(run.sampler, run.algo, cfg, stream.next, params)
        data.version, data.position_end = cluster.version, stream.position
        return data

    # rollout.async_steps=1: the rollouts of step t+1 run (on the engines' current weights, in a
    # driver thread) while the learner trains step t; the sync waits for both. Every sample is
    # then one policy version old (logged as staleness), which TIS corrects (algo.tis_cap).
    prefetch = ThreadPoolExecutor(max_workers=1) if cfg.rollout.async_steps else None
    pending: Future[Collected] | None = None
    if run.inflight is not None and prefetch is not None:  # resumed: the batch in flight then
        pending = Future()
        pending.set_result(run.inflight)
        stream.position = run.inflight.position_end
    last: dict[str, Any] = {}
    try:
        first = state["step"] + 1 if state["stage"] == "rl" else 1
        for step in range(first, cfg.steps + 1):
            t0 = time.time()
            with run.stop.interruptible(), run.watchdog.phase("rollout"):  # step - 1's weights
                data = pending.result() if pending is not None else draw()
            rollout_s = time.time() - t0
            pending = prefetch.submit(draw) if prefetch is not None and step < cfg.steps else None
            record: list[dict[str, Any]] | None = [] if step == run.replay_step else None
            last = _learn_and_sync(run, step, data, pending, record)
            if prefetch is not None:  # async: this step only waited for its batch
                last["time_wait_rollout"] += rollout_s
            last["time_step"] = time.time() - t0
            flips = _log_step(run, step, data, last)
            if record is not None:  # rlcore replay: this step is the one asked for
                with (run.run_dir / replay_step_file(step)).open("w") as f:
                    f.writelines(json.dumps(r, default=str) + "\n" for r in record)
                raise ReplayDone(step)
            state.update(stage="rl", step=step, data_position=data.position_end)
            if flips and run.canaries is not None and run.canaries.action == "stop":
                raise CanaryError(
                    f"step {step}: {len(flips)} canary verdict(s) changed "
                    f"(verifier.canary_action=stop): {flips[0]}"
                )
            if run.stop.signal:
                raise Preempted(run.stop.signal)
            rewards.append(last.get("reward_mean", 0.0))
            if step % max(cfg.eval.every, 1) == 0 or step == cfg.steps:
                with run.watchdog.phase("eval"):
                    _watch_hacking(run, step, rewards, _periodic_eval(run, step), data.examples)
                rewards = []
            if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                with run.watchdog.phase("checkpoint"):
                    run.save(step)
    except Preempted as p:
        raise run.preempted(p.signame) from None
    finally:
        if prefetch is not None:
            prefetch.shutdown(wait=False, cancel_futures=True)
    with run.stop.interruptible():
        _heldout(run, "rl")
    state["stage"] = "rl_done"
    return last


def _learn_and_sync(
    run: Run,
    step: int,
    data: Collected,
    pending: Future[Collected] | None,
    record: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """The update on the collected batch, then the weights to every engine once they are idle
    (an async run's next batch, `pending`, is then in hand: run.inflight, which a checkpoint
    keeps). `record` (rlcore replay) gets the trained samples."""
    cluster, watch = run.cluster, run.watchdog.phase
    t1 = time.time()
    last = dict(data.metrics, staleness=float(cluster.version - data.version))
    for alarm in data.alarms:
        log.warning("step %d: %s", step, alarm)
    if data.rows:
        with watch("learn"):
            last.update(update(cluster, run.algo, run.cfg, data, run.pad_id, step, record))
        _watch_mismatch(run, step, last)
    else:
        log.warning("step %d: every sampled group was dropped; no update", step)
    t2 = time.time()
    run.inflight = pending.result() if pending is not None else None
    t3 = time.time()
    with watch("sync"):
        sync = cluster.weights.push() if data.rows else {}
    # the probe's statistic, named for what it is (a max in float32, a mean in bf16)
    last.update({k: v for k, v in sync.items() if k.startswith("sync_probe_")})
    last.update(
        time_sync_load=sync.get("load_s", 0.0),  # the engines' receive + weight load
        time_sync_check=sync.get("check_s", 0.0),  # the probe check (sync.verify)
        time_learn=t2 - t1,
        time_wait_rollout=t3 - t2,  # + the rollout itself in async mode (the caller adds it)
        time_sync=time.time() - t3,
    )
    return last


def _log_step(run: Run, step: int, data: Collected, last: dict[str, Any]) -> list[str]:
    """Memory, restarts and (every verifier.canary_every steps) the canaries into `last`, then
    the metrics log, the completions table and progress. Returns the canaries whose verdict
    changed."""
    cfg, cluster = run.cfg, run.cluster
    restarts = (cluster.restarts, cluster.verifier_restarts)
    last.update(rollout_restarts=float(restarts[0]), verifier_restarts=float(restarts[1]))
    last.update(_memory(run))
    flips: list[str] = []
    if run.canaries is not None and step % cfg.verifier.canary_every == 0:
        canary_metrics, flips = run.canaries.check(run.sampler.score, run.state)
        last.update(canary_metrics)
        for line in flips:
            log.warning("step %d: %s", step, line)
    if run.restarts_seen != restarts:  # new processes: their ids for hang dumps
        run.restarts_seen = restarts
        write_pids(run.run_dir, {"driver": process_info(), **cluster.processes()})
    run.metrics.log(step, "rl", last)
    every = cfg.log.completions_every
    if every and step % every == 0:
        shown = data.examples[: cfg.log.completions_max]
        run.metrics.completions(step, [dict(r, step=step) for r in shown])
    run.progress("rl", step, cfg.steps, last)
    return flips


def _finish(run: Run, last: dict[str, Any]) -> dict[str, Any]:
    """The final checkpoint, summary.json, the plot and the capability table."""
    state = run.state
    state["wall_s"] = run.elapsed()
    checkpoint.save(run.cluster, run.run_dir, state["step"], state, run.tokenizer)
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


def _heldout(run: Run, stage: str) -> float:
    """Held-out accuracy after `stage` (rlcore/eval/heldout.py), kept in the run's state."""
    cfg = run.cfg
    params = SamplingParams(
        n=1,
        temperature=cfg.eval_temperature,
        max_tokens=cfg.rollout.max_tokens,
        stop_token_ids=tuple(run.stop_ids),
        seed=cfg.seed if cfg.eval_temperature > 0 else None,  # greedy needs no seed
    )
    path = run.run_dir / f"heldout_{stage}.jsonl"
    acc = heldout_accuracy(run.sampler, run.heldout, params, path)
    run.state["heldout"][stage] = acc
    log.info("held-out accuracy after %s: %.3f (%d problems)", stage, acc, len(run.heldout))
    run.progress("eval", 0, 0, {"stage": stage, "accuracy": acc})
    return acc


def _periodic_eval(run: Run, step: int) -> dict[str, float]:
    """The eval suite at RL step `step` (0: before SFT and RL, the baseline of the retention
    alarm and of the bucket table); its flat metrics ({} without a suite)."""
    if run.evaluator is None:
        return {}
    with run.stop.interruptible():
        final = step == run.cfg.steps
        result = run.evaluator(run.sampler, step, final)[0]
    run.metrics.log(step, "eval", result)
    return result


def _sft_targets(run: Run) -> list[Target]:
    """One target per SFT example: the data's worked completions, or (sft.distill_n) the start
    model's own correct answers (rlcore/cold_start.py), written to sft_data.jsonl."""
    import json

    cfg = run.cfg
    if not cfg.sft.distill_n:
        return [Target(r, sft_completion(r, cfg.data.think), None) for r in run.sft_rows]
    # seeded: a resume (which runs SFT again) samples the same answers
    params = replace(run.rollout_params(), n=cfg.sft.distill_n, seed=cfg.seed)
    run.progress("sft_distill", 0, len(run.sft_rows), {})
    with run.stop.interruptible():
        targets, stats = distilled_examples(
            run.sampler, run.sft_rows, params, cfg.sft.distill_box_answer, cfg.sft.distill_verifier
        )
    run.metrics.log(0, "sft_distill", stats)
    run.progress("sft_distill", len(run.sft_rows), len(run.sft_rows), stats)
    with (run.run_dir / "sft_data.jsonl").open("w") as f:
        for t in targets:
            row = {"id": t.row.get("id"), "prompt": t.row["prompt"], "completion": t.text}
            f.write(json.dumps({**row, "own_tokens": t.token_ids is not None}) + "\n")
    return targets


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
