"""Evaluation inside training: the suite sampled through the trainer's own engines and verifiers,
and the retention alarm (a capability bucket fell more than `margin` below the starting checkpoint).

    evaluator = PeriodicEval.build(suite_config(cfg.eval), tokenizer, stop_ids, window=256,
                                   out_dir=run_dir / "eval")
    specs += evaluator.specs                         # the verifier actors must know them
    metrics, alarms = evaluator(sampler, step)       # step 0 sets the baseline

`sampler` is the run's rlcore.sampling.Sampler: its `generate` samples the suite's prompts (already
encoded in the suite's own format) and its `score` verifies. The two are separate calls because a
benchmark judged `against: start` needs the first answers before it builds its samples. Nothing is
cached here: the weights change every step.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlcore.eval.items import (
    Prepared,
    benchmark_result,
    bucket_results,
    prepare,
    record,
    sample_for,
    verdict,
)
from rlcore.eval.suite import SuiteConfig, selected, votes_on

if TYPE_CHECKING:
    from rlcore.sampling import Sampler

log = logging.getLogger(__name__)


@dataclass
class PreparedSuite:
    cfg: SuiteConfig
    benchmarks: list[Prepared]
    stop_ids: tuple[int, ...]
    decode: Callable[[list[int]], str]


def prepare_suite(
    cfg: SuiteConfig,
    tokenizer: Any,
    stop_ids: tuple[int, ...],
    window: int,
    prompt_format: str = "chat",
    raw_template: str = "Q: {prompt}\nA:",
) -> PreparedSuite:
    fmt = cfg.prompt_format or prompt_format
    raw = cfg.raw_template or raw_template
    benches = [prepare(cfg, b, tokenizer, window, fmt, raw) for b in selected(cfg)]
    return PreparedSuite(
        cfg,
        [b for b in benches if b.problems],
        tuple(stop_ids),
        lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
    )


def retention_alarms(
    buckets: dict[str, Any], baseline: dict[str, float] | None, margin: float, metric: str
) -> list[str]:
    """One message per bucket whose `metric` is more than `margin` below its baseline value."""
    alarms = []
    for name, base in sorted((baseline or {}).items()):
        now = buckets.get(name, {}).get("metrics", {}).get(metric)
        if now is not None and base - now > margin:
            alarms.append(
                f"retention: bucket {name!r} {metric} fell from {base:.3f} at the start to "
                f"{now:.3f} ({now - base:+.3f}, margin {margin})"
            )
    return alarms


def periodic_eval(
    sampler: Sampler,
    suite: PreparedSuite,
    step: int,
    baseline: dict[str, float] | None = None,
    start_answers: dict[str, list[str]] | None = None,
    final: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """Samples n per problem, verifies, summarises. Returns (flat metrics, retention alarms):
    metrics hold `<bucket>/<metric>` and `<benchmark>/<metric>` floats and a "_results" entry with
    the full per-benchmark results. `start_answers` (benchmark -> the first evaluation's first
    answer per problem): what `against: start` benchmarks are judged against; filled in here by
    the first evaluation, which is then judged against itself."""
    start_answers = {} if start_answers is None else start_answers
    cfg = suite.cfg
    n, ks = cfg.num_samples, sorted(set(cfg.k))
    benchmarks: dict[str, Any] = {}
    for prep in suite.benchmarks:
        every = prep.bench.every
        if every and step and not final and step % every:
            continue  # kept to the ends and its own cadence (BenchmarkConfig.every)
        t0 = time.time()
        params = prep.params(n, suite.stop_ids)
        groups = sampler.generate([p.prompt_ids for p in prep.problems], params)
        against = None
        if prep.bench.against == "start":
            first = [suite.decode(g[0].token_ids) for g in groups]
            against = start_answers.setdefault(prep.bench.name, first)
        items, where = [], []
        for i, (p, group) in enumerate(zip(prep.problems, groups, strict=True)):
            for j, c in enumerate(group):
                s = sample_for(p, prep.bench, suite.decode(c.token_ids), c.token_ids)
                if against is not None:
                    s = replace(s, reference={**s.reference, "response": against[i]})
                for v, spec in enumerate(prep.specs(p)):
                    items.append((spec, s))
                    where.append((i, v, j))
        results = sampler.score(items)
        table: dict[tuple[int, int, int], dict[str, Any]] = {
            w: verdict(r) for w, r in zip(where, results, strict=True)
        }
        records = []
        for i, (p, group) in enumerate(zip(prep.problems, groups, strict=True)):
            nspec = len(prep.specs(p))
            vs = [[table[(i, v, j)] for j in range(len(group))] for v in range(nspec)]
            finishes = [c.finish_reason for c in group]
            records.append(
                record(p, vs, finishes, prep.bench.extra_verifiers, votes_on(prep.bench))
            )
        benchmarks[prep.bench.name] = benchmark_result(prep, records, ks, cfg.bootstrap)
        log.info(
            "eval at step %d: %s (%d problems x %d) in %.1f s",
            step,
            prep.bench.name,
            len(records),
            n,
            time.time() - t0,
        )
    buckets = bucket_results(benchmarks, cfg.bootstrap)
    flat: dict[str, Any] = {}
    for name, b in list(buckets.items()) + list(benchmarks.items()):
        flat.update({f"{name}/{m}": v for m, v in b.get("metrics", {}).items()})
    flat["_results"] = {"step": step, "benchmarks": benchmarks, "buckets": buckets}
    return flat, retention_alarms(buckets, baseline, cfg.margin, cfg.alarm_metric)


# The step periodic_eval is given for the evaluation after a cold start: not a multiple of any
# benchmark's own cadence, so only the benchmarks that run through RL run.
RL_START = -1


class PeriodicEval:
    """A prepared suite plus its baseline (the first evaluation, kept in out_dir across resumes)."""

    def __init__(self, suite: PreparedSuite, out_dir: Path | None = None) -> None:
        self.suite = suite
        self.out_dir = out_dir
        self.baseline: dict[str, float] | None = None
        self.history: list[dict[str, Any]] = []  # {"step", "buckets"} of every evaluation so far
        self.start_answers: dict[str, list[str]] = {}  # `against: start` benchmarks' first answers
        if out_dir is not None and (out_dir / "start_answers.json").is_file():
            self.start_answers = json.loads((out_dir / "start_answers.json").read_text())
        if out_dir is not None and (out_dir / "periodic_baseline.json").is_file():
            self.baseline = json.loads((out_dir / "periodic_baseline.json").read_text())
        # after a cold start: the weights RL starts from (see rl_start); kept across resumes
        self.rl_start_buckets: dict[str, Any] | None = None
        if out_dir is not None and (out_dir / "rl_start.json").is_file():
            self.rl_start_buckets = json.loads((out_dir / "rl_start.json").read_text())
        if out_dir is not None and (out_dir / "periodic.jsonl").is_file():
            for line in (out_dir / "periodic.jsonl").read_text().splitlines():
                r = json.loads(line)
                self.history.append({"step": r["step"], "buckets": r["buckets"]})

    @classmethod
    def build(
        cls,
        cfg: SuiteConfig,
        tokenizer: Any,
        stop_ids: tuple[int, ...] | list[int],
        window: int,
        prompt_format: str = "chat",
        raw_template: str = "Q: {prompt}\nA:",
        out_dir: Path | None = None,
    ) -> PeriodicEval:
        """`cfg`: a suite, e.g. `suite_config(train_cfg.eval)` (the trainer's `eval` section)."""
        suite = prepare_suite(cfg, tokenizer, tuple(stop_ids), window, prompt_format, raw_template)
        return cls(suite, out_dir)

    @property
    def specs(self) -> list[Any]:
        """Every verifier spec the suite scores with (give them to Cluster.start)."""
        return [s for b in self.suite.benchmarks for p in b.problems for s in b.specs(p)]

    def __call__(
        self, sampler: Sampler, step: int, final: bool = False
    ) -> tuple[dict[str, float], list[str]]:
        """The suite at RL step `step`; `final`: the run's last step (every benchmark runs)."""
        t0 = time.time()
        known = len(self.start_answers)
        metrics, alarms = periodic_eval(
            sampler, self.suite, step, self.baseline, self.start_answers, final
        )
        if self.out_dir is not None and len(self.start_answers) > known:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "start_answers.json").write_text(json.dumps(self.start_answers))
        metrics["time_eval"] = time.time() - t0
        results = metrics.pop("_results")
        metric = self.suite.cfg.alarm_metric
        if self.baseline is None:
            self.baseline = {
                b: m["metrics"][metric]
                for b, m in results["buckets"].items()
                if metric in m.get("metrics", {})
            }
            if self.out_dir is not None:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                (self.out_dir / "periodic_baseline.json").write_text(json.dumps(self.baseline))
        self.history = [h for h in self.history if h["step"] < step]  # a resume repeats steps
        self.history.append({"step": step, "buckets": results["buckets"]})
        if self.out_dir is not None:
            with (self.out_dir / "periodic.jsonl").open("a") as f:
                f.write(json.dumps({**results, "alarms": alarms}, default=str) + "\n")
        for a in alarms:
            log.warning("step %d: %s", step, a)
        return metrics, alarms

    def rl_start(self, sampler: Sampler) -> dict[str, float]:
        """After a cold start, on the weights RL starts from: the benchmarks that run through RL
        (those without a cadence of their own), so the RL stage's own gain is measured from here.
        Kept apart from the history: the retention baseline and the curve's step 0 stay the
        model the run started from. summary.json's "rl_start", the bucket table's column."""
        t0 = time.time()
        metrics, _ = periodic_eval(sampler, self.suite, RL_START, None, self.start_answers, False)
        self.rl_start_buckets = metrics.pop("_results")["buckets"]
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "rl_start.json").write_text(json.dumps(self.rl_start_buckets))
        metrics["time_eval"] = time.time() - t0
        return metrics

    def finish(self, trained: list[str]) -> dict[str, Any]:
        """The run's bucket summary (first vs last evaluation; rlcore/eval/retention.py), also
        written as out_dir/buckets.md and a plot of every bucket against step, buckets.png."""
        from rlcore.eval.plots import plot_buckets
        from rlcore.eval.retention import bucket_summary, bucket_table

        out = bucket_summary(self.history, trained, list(self.suite.cfg.k), self.rl_start_buckets)
        out["curve"] = bucket_curve(self.history)
        if self.out_dir is not None and self.history:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "buckets.md").write_text(bucket_table(out) + "\n")
            plot_buckets(self.history, self.out_dir / "buckets.png")
            out["table"] = str(self.out_dir / "buckets.md")
            out["bucket_plot"] = str(self.out_dir / "buckets.png")
        return out


def bucket_curve(history: list[dict[str, Any]], metric: str = "pass@1") -> dict[str, Any]:
    """Every evaluation's `metric` per bucket: {bucket: [[step, value, ci_low, ci_high], ...]}
    (the curve a run draws, not only its two ends; buckets kept to the ends have two points)."""
    curve: dict[str, list[list[float]]] = {}
    for h in history:
        for name, b in h["buckets"].items():
            value = b.get("metrics", {}).get(metric)
            if value is None:
                continue
            lo, hi = (b.get("ci") or {}).get(metric) or (float("nan"), float("nan"))
            curve.setdefault(name, []).append([h["step"], value, lo, hi])
    return curve


def suite_config(ecfg: Any) -> SuiteConfig:
    """The suite named by the trainer's `eval` section, with its fields (n, k, limit, max_tokens,
    margin, metric; 0 or empty keeps the suite's value) applied; SuiteError if they do not fit."""
    from rlcore.eval.suite import load_suite

    pairs = [
        ("n", ecfg.n),
        ("limit", ecfg.limit),
        ("sampling.max_tokens", ecfg.max_tokens),
        ("margin", ecfg.margin),
        ("alarm_metric", ecfg.metric),
    ]
    overrides = [f"{k}={v}" for k, v in pairs if v]
    if ecfg.k:
        overrides.append(f"k=[{','.join(map(str, ecfg.k))}]")
    return load_suite(ecfg.suite, overrides)
