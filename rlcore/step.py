"""One RL step's two halves, shared by every algorithm: `collect` (rollouts -> verified, shaped
rewards, with DAPO's dynamic sampling) and `update` (learner/critic preparation -> advantages ->
policy and critic updates over epochs x minibatches). rlcore/trainer.py calls them once per step.

Nothing here branches on the algorithm's name: it asks the strategy object (rlcore/algo) what it
needs (a critic, a reference, the KL in the reward) and how to shape, filter and estimate.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from rlcore.algo import Algorithm
from rlcore.algo.kl import kl_estimate
from rlcore.config import TrainConfig
from rlcore.learner import reduce
from rlcore.learner.batch import TokenBatch, cat_padded, pad_batch, shard
from rlcore.rollout.engine import Completion, SamplingParams
from rlcore.rollout.multiturn import episode_metrics
from rlcore.sampling import Sampler
from rlcore.verifiers import parse_spec

log = logging.getLogger(__name__)
EXAMPLE_KEYS = ("reward", "correct", "error", "details")


@dataclass
class Collected:
    """The groups kept for training (n contiguous samples per prompt) and what was sampled."""

    rows: list[dict[str, Any]] = field(default_factory=list)  # one per kept group
    prompt_ids: list[list[int]] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)  # flat, groups contiguous
    rewards: list[float] = field(default_factory=list)  # shaped, flat
    prompts_used: int = 0  # prompts drawn from the data this step (kept or not)
    version: int = 0  # the engines' weight version when sampled (staleness = learner's - this)
    position_end: int = 0  # the data position after this batch's draws (for resume)
    metrics: dict[str, float] = field(default_factory=dict)
    # every sample drawn this step (dropped groups too): prompt, response, reward, correct, error,
    # details; what log.completions_every tables show
    examples: list[dict[str, Any]] = field(default_factory=list)
    scored: list[dict[str, Any]] = field(default_factory=list)  # the kept samples' examples, flat
    # verifiers that left more than verifier.error_alarm of their samples unjudged, one line each
    alarms: list[str] = field(default_factory=list)


class RowStream:
    """The training rows as RL draws them: one seeded shuffle, `count` at a time, cycling.
    `position` counts rows drawn so far; a checkpoint keeps it and a resumed run starts there
    (with `sample_seed`, a resumed run samples exactly what the uninterrupted one did)."""

    def __init__(self, rows: list[dict[str, Any]], seed: int, position: int = 0) -> None:
        self.rows, self.position = rows, position
        self.order = list(range(len(rows)))
        random.Random(seed).shuffle(self.order)

    def next(self, count: int) -> tuple[list[dict[str, Any]], int]:
        """The next `count` rows, and the stream position of the first."""
        first = self.position
        rows = [self.rows[self.order[(first + i) % len(self.order)]] for i in range(count)]
        self.position += count
        return rows, first


def collect(
    sampler: Sampler,
    algo: Algorithm,
    cfg: TrainConfig,
    next_rows: Callable[[int], tuple[list[dict[str, Any]], int]],
    params: SamplingParams,
) -> Collected:
    """Rollout rounds until `rollout.prompts_per_step` groups are kept (one round unless dynamic
    sampling drops groups; at most algo.max_sample_rounds). The kept count is cut so that the batch
    splits over minibatches x learner ranks; it may be 0 (the step is then skipped).

    `next_rows(k)` gives the next k rows and the data-stream position of the first: each sample's
    seed derives from (seed, position, sample), so a resumed run samples exactly what the
    uninterrupted one did."""
    want, n = cfg.rollout.prompts_per_step, cfg.rollout.n
    out = Collected()
    sampled: list[tuple[dict[str, Any], Completion]] = []
    raw: list[dict[str, Any]] = []
    specs: list[Any] = []  # each sample's verifier spec
    rounds, t_generate, t_verify, unjudged_groups = 0, 0.0, 0.0, 0
    while len(out.rows) < want and rounds < (
        algo.max_sample_rounds if algo.dynamic_sampling else 1
    ):
        rounds += 1
        rows, position = next_rows(want)
        out.prompts_used += len(rows)
        scored = sampler.sample(rows, replace(params, seed=sample_seed(cfg.seed, position, n)))
        prompt_ids, groups, results = scored.prompt_ids, scored.groups, scored.results
        flat = [(row, c) for row, g in zip(rows, groups, strict=True) for c in g]
        drawn = [
            {"prompt": s.prompt, "response": s.response, **{k: r[k] for k in EXAMPLE_KEYS}}
            for s, r in zip(scored.samples, results, strict=True)
        ]
        out.examples += drawn
        t_generate, t_verify = t_generate + scored.time_rollout, t_verify + scored.time_verify
        sampled += flat
        raw += results
        specs += scored.specs
        rewards = finite_rewards(results)
        lengths = torch.tensor([_policy_tokens(c) for _, c in flat])
        shaped = algo.shape_rewards(rewards, lengths)
        judged = judged_groups(results, n)
        unjudged_groups += int((~judged).sum())
        keep = algo.keep_groups(outcomes(results, rewards)) & judged
        for g in torch.nonzero(keep).squeeze(-1).tolist():
            if len(out.rows) == want:
                break
            out.rows.append(rows[g])
            out.prompt_ids.append(prompt_ids[g])
            out.completions += [c for _, c in flat[g * n : (g + 1) * n]]
            out.scored += drawn[g * n : (g + 1) * n]
            out.rewards += shaped[g * n : (g + 1) * n].tolist()
    unit = cfg.algo.minibatches * cfg.learner.world_size
    kept = len(out.rows)
    while kept and (kept * n) % unit:
        kept -= 1
    if kept < len(out.rows):
        out.rows, out.prompt_ids = out.rows[:kept], out.prompt_ids[:kept]
        out.completions, out.rewards = out.completions[: kept * n], out.rewards[: kept * n]
        out.scored = out.scored[: kept * n]
    check_unjudged(raw, cfg.verifier.max_error_frac)
    out.metrics = _sample_metrics(sampled, raw)
    rates, out.alarms = verifier_error_rates(specs, raw, cfg.verifier.error_alarm)
    out.metrics.update(rates)
    out.metrics["groups_unjudged"] = float(unjudged_groups)
    if cfg.rollout.max_turns > 1:
        out.metrics.update(episode_metrics([c for _, c in sampled]))
    out.metrics.update(
        sample_rounds=float(rounds),
        groups_kept=float(kept),
        time_rollout=t_generate,
        time_verify=t_verify,
    )
    out.metrics["groups_dropped"] = float(out.prompts_used - kept)
    return out


def sample_seed(seed: int, position: int, n: int) -> int:
    """The seed of sample 0 of the prompt at data-stream `position`; sample j of the prompt
    `position + i` gets this + i * n + j (rlcore/rollout/engine.py): every sample of the run its
    own seed, for any number of rounds and engines. Kept below 2**62 (engines take int64)."""
    return (seed * 1_000_003 * 2**31 + position * n) % 2**62


def finite_rewards(results: list[dict[str, Any]]) -> torch.Tensor:
    """[N] float32 rewards; a non-finite one (a reward model can return NaN) becomes 0, so that
    one bad score cannot turn its group's or the batch's advantages into NaN. The Scorer already
    records such a score as a "nonfinite" error; this is the last guard, counted in the metrics
    as nonfinite_rewards either way."""
    rewards = torch.tensor([float(r["reward"]) for r in results], dtype=torch.float32)
    return torch.where(torch.isfinite(rewards), rewards, torch.zeros_like(rewards))


def _unjudged(result: dict[str, Any]) -> bool:
    """Result.unjudged on a result dict: the verifier failed before judging (error, no verdict)."""
    return result["error"] is not None and result["correct"] is None


def judged_groups(results: list[dict[str, Any]], n: int) -> torch.Tensor:
    """[G] bool: False for a group with a sample its verifier could not judge. Such a group leaves
    the step whole: its 0.0 is no verdict, and a group baseline without that sample would compare
    the others with a different set than every other group's."""
    failed = torch.tensor([_unjudged(r) for r in results], dtype=torch.bool)
    return ~failed.view(-1, n).any(dim=1)


def check_unjudged(results: list[dict[str, Any]], limit: float) -> None:
    """VerifierError (the run stops, resumable) when more than `limit` of the step's samples
    went unjudged: a verifier that fails that often is broken, not unlucky."""
    from rlcore.verifier_actors import VerifierError

    failed = [r for r in results if _unjudged(r)]
    if results and len(failed) / len(results) > limit:
        raise VerifierError(
            f"{len(failed)} of {len(results)} samples of this step could not be judged by their "
            f"verifier (more than verifier.max_error_frac={limit}); first: {failed[0]['error']}"
        )


def outcomes(results: list[dict[str, Any]], rewards: torch.Tensor) -> torch.Tensor:
    """[N] what dynamic sampling judges a group on: the verifier's `correct` as 0/1 where it has
    one, else the unshaped reward (never the length-shaped one: DAPO's Eq. 11)."""
    correct = [r["correct"] for r in results]
    return torch.tensor(
        [float(c) if c is not None else float(x) for c, x in zip(correct, rewards, strict=True)]
    )


def _policy_tokens(c: Completion) -> int:
    """Tokens the policy wrote (a multi-turn episode's tool messages excluded)."""
    return len(c.token_ids) if c.mask is None else int(sum(c.mask))


def _sample_metrics(sampled: list[Any], results: list[dict[str, Any]]) -> dict[str, float]:
    """Over everything sampled this step (dropped groups included): what the policy does now."""
    n = max(len(results), 1)
    parts: dict[str, list[float]] = {}  # a weighted list's components, by verifier name
    for r in results:
        for name, c in ((r.get("details") or {}).get("components") or {}).items():
            if math.isfinite(c["reward"]):
                parts.setdefault(name, []).append(float(c["reward"]))
    by_verifier = {f"reward/{name}": sum(v) / len(v) for name, v in sorted(parts.items())}
    return {
        **by_verifier,
        "reward_mean": float(finite_rewards(results).sum()) / n,
        "accuracy": sum(r["correct"] is True for r in results) / n,
        "response_len": sum(_policy_tokens(c) for _, c in sampled) / n,
        "truncated_frac": sum(c.finish_reason == "length" for _, c in sampled) / n,
        "verify_errors": float(sum(r["error"] is not None for r in results)),
        "nonfinite_rewards": float(sum(_nonfinite(r) for r in results)),
    }


def verifier_error_rates(
    specs: list[Any], results: list[dict[str, Any]], alarm: float
) -> tuple[dict[str, float], list[str]]:
    """Per verifier, the fraction of its samples it could not judge (error, no verdict) and of
    those that timed out, as verify_error_frac/<name> and verify_timeout_frac/<name>; a line per
    verifier over `alarm` (0: none), naming its first error."""
    counts: dict[str, list[int]] = {}  # name -> [samples, unjudged, timed out]
    first: dict[str, str] = {}
    for spec, r in zip(specs, results, strict=True):
        parts = (r.get("details") or {}).get("components")
        named = parts.items() if parts else [(parse_spec(spec)[0][0], r)]
        for name, c in named:
            count = counts.setdefault(name, [0, 0, 0])
            count[0] += 1
            error = c.get("error")
            if error and c.get("correct") is None:
                count[1] += 1
                count[2] += error.startswith("timeout")
                first.setdefault(name, error)
    rates: dict[str, float] = {}
    for name, (total, errors, timeouts) in sorted(counts.items()):
        rates[f"verify_error_frac/{name}"] = errors / total
        rates[f"verify_timeout_frac/{name}"] = timeouts / total
    alarms = [
        f"verifier {name}: {e} of {t} samples unjudged ({t_o} timed out), over "
        f"verifier.error_alarm={alarm}; the first: {first[name][:200]}"
        for name, (t, e, t_o) in sorted(counts.items())
        if alarm and e / t > alarm
    ]
    return rates, alarms


def _nonfinite(result: dict[str, Any]) -> bool:
    """A score the Scorer had to zero (its error says so), or one that arrives non-finite."""
    return "nonfinite:" in (result["error"] or "") or not math.isfinite(result["reward"])


def update(
    cluster: Any,
    algo: Algorithm,
    cfg: TrainConfig,
    data: Collected,
    pad_id: int,
    step: int,
    record: list[dict[str, Any]] | None = None,
) -> dict[str, float]:
    """Advantages and the policy (and critic) updates for one collected batch; returns metrics.
    `record` (rlcore replay): gets one entry per trained sample (`sample_record`)."""
    world, temp = cfg.learner.world_size, cfg.rollout.temperature
    prompts = [p for p in data.prompt_ids for _ in range(cfg.rollout.n)]
    batch = pad_batch(
        prompts,
        [c.token_ids for c in data.completions],
        [0.0] * len(prompts),
        pad_id,
        [c.logprobs for c in data.completions],
        [c.mask for c in data.completions],
    )
    truncated = torch.tensor([c.finish_reason == "length" for c in data.completions])
    mask = algo.loss_mask(batch.loss_mask, truncated)
    batch = batch.with_(loss_mask=mask)

    # ---- what the estimate needs: learner "old" and reference logprobs, critic values --------
    a = cfg.algo
    if algo.needs_critic or algo.kl_in_reward or a.epochs * a.minibatches > 1:
        shards = [(shard(batch, r, world), temp) for r in range(world)]
        prepared = cluster.learners.call_each("prepare", shards)
        batch = batch.with_(
            old_logprobs=cat_padded([p["old_logprobs"] for p in prepared]),
            ref_logprobs=cat_padded([p["ref_logprobs"] for p in prepared])
            if "ref_logprobs" in prepared[0]
            else None,
        )
    values = None
    if algo.needs_critic:
        values = cat_padded(
            cluster.critics.call_each("values", [(shard(batch, r, world),) for r in range(world)])
        )
    kl = None
    if algo.kl_in_reward and batch.old_logprobs is not None and batch.ref_logprobs is not None:
        kl = kl_estimate(batch.old_logprobs, batch.ref_logprobs, algo.kl_estimator) * mask
    rewards = torch.tensor(data.rewards, dtype=torch.float32)
    advantages, returns = algo.estimate(rewards, mask, kl, values)
    batch = batch.with_(advantages=advantages, returns=returns, old_values=values)
    skip = cfg.learner.skip_zero_advantage and algo.zero_advantage_rows_are_inert
    if record is not None:  # before the update: the weights the batch was sampled from
        record += sample_record(cluster, cfg, algo, batch, data)

    # ---- epochs x minibatches: one optimizer step per minibatch ----------------------------------
    train_policy = step > a.critic_warmup_steps or not algo.needs_critic
    per_minibatch = _optimize(cluster, algo, cfg, batch, step, train_policy, skip)
    # every epoch's minibatches (as verl): clip fraction, entropy and loss move as the policy does
    learned = sum(o.pop("learn_tokens") for o in per_minibatch)
    out = reduce.over_steps(per_minibatch, learned)  # the table in rlcore/learner/reduce.py
    if kl is not None:  # the reward's KL penalty, per loss token of the batch
        out["kl_reward"] = float(kl.sum()) / max(float(mask.sum()), 1.0)
    # the learner's batch as it computes it (padded width), for benchmarks/vs_trl.py's floor
    out.update(learn_seqs=float(len(batch)), learn_width=float(batch.input_ids.shape[1]))
    out.update(_group_metrics(rewards, cfg.rollout.n))
    out["learn_skipped_frac"] = 1.0 - learned / max(float(mask.sum()) * a.epochs, 1.0)
    return out


def sample_record(
    cluster: Any, cfg: TrainConfig, algo: Algorithm, batch: TokenBatch, data: Collected
) -> list[dict[str, Any]]:
    """Per trained sample: what the verifier said, its advantage and loss tokens, and the
    learner/engine importance ratio (exp of the mean per-token logprob difference, the learner's
    at the current weights) with how many tokens fall outside the clip range."""
    world, temp = cfg.learner.world_size, cfg.rollout.temperature
    learner = batch.old_logprobs
    if learner is None:  # a forward of its own: the update's inputs stay as they are
        shards = [(shard(batch, r, world), temp) for r in range(world)]
        learner = cat_padded(
            [p["old_logprobs"] for p in cluster.learners.call_each("prepare", shards)]
        )
    mask = batch.loss_mask.float()
    tokens = mask.sum(1).clamp(min=1.0)
    adv = (
        batch.advantages
        if batch.advantages.dim() == 1
        else (batch.advantages * mask).sum(1) / tokens
    )
    out = []
    low, high = getattr(algo, "clip_low", 0.2), getattr(algo, "clip_high", 0.2)
    for i, scored in enumerate(data.scored):
        row: dict[str, Any] = dict(scored, advantage=float(adv[i]), tokens=int(mask[i].sum()))
        if batch.rollout_logprobs is not None:
            diff = (learner[i] - batch.rollout_logprobs[i]) * mask[i]
            ratio = torch.exp(learner[i] - batch.rollout_logprobs[i])
            outside = ((ratio < 1 - low) | (ratio > 1 + high)) & mask[i].bool()
            row.update(
                ratio=float(torch.exp(diff.sum() / tokens[i])), clipped_tokens=int(outside.sum())
            )
        out.append(row)
    return out


def _optimize(
    cluster: Any,
    algo: Algorithm,
    cfg: TrainConfig,
    batch: TokenBatch,
    step: int,
    train_policy: bool,
    skip: bool,
) -> list[dict[str, float]]:
    """`algo.epochs` passes over the batch in `algo.minibatches` shuffled minibatches, one optimizer
    step each; returns every minibatch's sums, in order."""
    a = cfg.algo
    gen = torch.Generator().manual_seed(cfg.seed * 100003 + step)
    out = []
    for _ in range(a.epochs):
        order = torch.randperm(len(batch), generator=gen) if a.epochs * a.minibatches > 1 else None
        size = len(batch) // a.minibatches
        for m in range(a.minibatches):
            idx = (
                order[m * size : (m + 1) * size] if order is not None else torch.arange(len(batch))
            )
            out.append(_update_minibatch(cluster, algo, cfg, batch.select(idx), train_policy, skip))
    return out


def loss_rows(mask: torch.Tensor) -> float:
    """mask [B, T] -> rows with at least one loss token: the sequence-mean losses' denominator
    (a row overlong_filter emptied counts in none, as in `aggregate`)."""
    return float((mask.sum(dim=1) > 0).sum())


def _group_metrics(rewards: torch.Tensor, n: int) -> dict[str, float]:
    """rewards [G * n] (the kept groups): the share of groups whose rewards are all equal (no
    signal for a group-relative advantage) and the mean reward std within a group."""
    grouped = rewards.view(-1, n)
    spread = grouped.max(dim=1).values - grouped.min(dim=1).values
    std = grouped.std(dim=1, unbiased=False) if n > 1 else torch.zeros(len(grouped))
    return {
        "zero_var_frac": float((spread <= 1e-6).float().mean()),
        "group_reward_std": float(std.mean()),
    }


def _inert_rows(mb: TokenBatch, world: int) -> torch.Tensor:
    """Rows [B] bool whose advantage is 0 on every loss token: left out of the forward/backward.
    A few are kept back so that the rows sent still split evenly over `world` ranks."""
    adv = mb.advantages
    assert adv is not None
    if adv.ndim == 1:  # one advantage per response
        inert = adv == 0
    else:  # per token [B, T]: zero wherever the loss looks
        inert = ((adv * mb.loss_mask) == 0).all(dim=1)
    extra = int((~inert).sum()) % world
    if extra:
        keep_back = inert.nonzero().flatten()[: world - extra]
        inert[keep_back] = False
    if bool(inert.all()):  # nothing to learn from: one row still goes (its gradient is 0)
        inert[:world] = False
    return inert


def _update_minibatch(
    cluster: Any,
    algo: Algorithm,
    cfg: TrainConfig,
    mb: TokenBatch,
    train_policy: bool,
    skip_inert: bool = False,
) -> dict[str, float]:
    """One optimizer step on `mb`. skip_inert: rows with zero advantage everywhere (exactly no
    gradient, see Algorithm.zero_advantage_rows_are_inert) are not sent; the loss denominators
    (tokens, sequences) stay those of the whole minibatch, so the update is the same."""
    world = cfg.learner.world_size
    tokens = float(mb.loss_mask.sum())
    seqs = loss_rows(mb.loss_mask)
    policy_mb = mb
    if skip_inert:
        policy_mb = mb.select((~_inert_rows(mb, world)).nonzero().flatten())
    calls = []
    if train_policy:
        shards = [shard(policy_mb, r, world) for r in range(world)]
        args = [(s, tokens, cfg.rollout.temperature, seqs) for s in shards]
        calls += cluster.learners.submit_each("rl_step", args)
    if algo.needs_critic:
        clip = getattr(algo, "value_clip", None)
        shards = [shard(mb, r, world) for r in range(world)]
        calls += cluster.critics.submit_each("value_step", [(s, tokens, clip) for s in shards])
    import ray

    summed = reduce.over_ranks(ray.get(calls))
    # the learner's sums are over the tokens it saw: their means divide by those
    summed["learn_tokens"] = float(policy_mb.loss_mask.sum()) if train_policy else tokens
    return summed
