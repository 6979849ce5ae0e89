"""The offline pass@k sweep: checkpoints x benchmarks, sampled through a rollout engine, verified by
the rows' verifiers, cached so that a rerun pays only for what changed (cache.py).

    results = run_eval(load_suite("tiny", ["n=8"]), ["tiny-base"])      # `rlcore eval` calls this

Targets (targets.py): model folders, run checkpoints, run directories, embedded model names. Samples
come from `rlcore.rollout.make_engine` in this process (no Ray), the problems of every benchmark
that share sampling parameters batched together; verdicts from one `rlcore.verifiers.Scorer` (a
pool of processes).

Output (OUT = out_dir, default RUN/eval or runs/eval-<model>):
    OUT/results.json                 one target outside a run: benchmarks, buckets, counts, config
    OUT/<label>/results.json         each target of a run or of a multi-target sweep
    OUT/sweep.json, sweep.md, *.png  several targets: the table and plots (plots.py)
    OUT/cache/                       samples and verdicts (cache.py)
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlcore.eval.cache import BenchmarkCache, digest, model_key, verifier_key
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
from rlcore.eval.targets import (
    Target,
    model_window,
    prompt_format,
    resolve_targets,
    stop_token_ids,
)

log = logging.getLogger(__name__)
SCORE_CHUNK = 256  # verdicts flushed to disk after each chunk


class Resources:
    """The engine (one model at a time) and the verifier pool, started only when needed."""

    def __init__(self, cfg: SuiteConfig) -> None:
        self.cfg = cfg
        self.engine: Any = None
        self.engine_model = ""
        self.scorer: Any = None

    def generate(self, model_path: str, window: int, prompts: list[list[int]], params: Any) -> Any:
        if self.engine_model != model_path:
            self.close_engine()
            from rlcore.rollout import EngineSpec, make_engine

            t0 = time.time()
            self.engine = make_engine(
                EngineSpec(
                    model_path,
                    self.cfg.engine,
                    dtype=self.cfg.dtype,
                    seed=self.cfg.sampling.seed,
                    max_model_len=window,
                )
            )
            self.engine_model = model_path
            log.info("engine %s started in %.1f s", self.engine.name, time.time() - t0)
        return self.engine.generate(prompts, params)

    def score(self, items: list[tuple[Any, Any]]) -> list[Any]:
        from rlcore.verifiers import Scorer, parse_spec

        names = {n for spec, _ in items for n, _ in parse_spec(spec)}
        if self.scorer is None or names - set(self.scorer.verifiers):
            from rlcore.rundir import resolve_verifier_models

            old = set(self.scorer.verifiers) if self.scorer else set()
            self.close_scorer()
            options = resolve_verifier_models(self.cfg.verifier_options)
            self.scorer = Scorer(names | old, options, workers=self.cfg.verifier_workers)
        return self.scorer.score(items)

    def close_engine(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine, self.engine_model = None, ""
            gc.collect()

    def close_scorer(self) -> None:
        if self.scorer is not None:
            self.scorer.close()
            self.scorer = None

    def close(self) -> None:
        self.close_engine()
        self.close_scorer()


@dataclass
class _Bench:
    """A prepared benchmark with its cache and the sample / verdict keys of its problems."""

    prep: Prepared
    cache: BenchmarkCache
    keys: list[str]
    vkeys: list[list[str]]  # per problem: primary verifier, then the extra ones
    drawn: int = 0
    verified: int = 0


def _open(prep: Prepared, cache: BenchmarkCache, cfg: SuiteConfig, stop_ids: tuple) -> _Bench:
    keys = [
        digest([str(p.item["id"]), digest(p.prompt_ids), prep.sampling.__dict__, stop_ids])
        for p in prep.problems
    ]
    vkeys = [
        [verifier_key(s, cfg.verifier_options, p.item.get("reference", {})) for s in prep.specs(p)]
        for p in prep.problems
    ]
    return _Bench(prep, cache, keys, vkeys)


def _draw(benches: list[_Bench], n: int, ctx: dict) -> None:
    """Samples the indices each problem lacks. Problems of every benchmark that share sampling
    parameters, first missing index and count go to the engine together (bigger batches)."""
    todo: dict[tuple[str, int, int], list[tuple[_Bench, int]]] = {}
    for b in benches:
        for i, key in enumerate(b.keys):
            have = b.cache.count(key)
            if have < n:
                group = (json.dumps(b.prep.sampling.__dict__), have, n - have)
                todo.setdefault(group, []).append((b, i))
    batch = ctx["cfg"].batch_prompts
    for (_, have, m), items in sorted(todo.items(), key=lambda kv: kv[0]):
        for c0 in range(0, len(items), batch):
            chunk = items[c0 : c0 + batch]
            params = chunk[0][0].prep.params(m, ctx["stop_ids"])  # reruns repeat via the cache
            prompts = [b.prep.problems[i].prompt_ids for b, i in chunk]
            groups = ctx["res"].generate(ctx["model_path"], ctx["window"], prompts, params)
            rows: dict[int, list[dict[str, Any]]] = {}
            for (b, i), group in zip(chunk, groups, strict=True):
                rows.setdefault(id(b), []).extend(
                    {
                        "key": b.keys[i],
                        "j": have + j,
                        "id": str(b.prep.problems[i].item["id"]),
                        "ids": c.token_ids,
                        "text": ctx["tokenizer"].decode(c.token_ids, skip_special_tokens=True),
                        "finish": c.finish_reason,
                        "engine": ctx["res"].engine.name,
                    }
                    for j, c in enumerate(group)
                )
            for b in {id(b): b for b, _ in chunk}.values():
                b.cache.add_samples(rows[id(b)])
                b.drawn += len(rows[id(b)])
            log.info("sampled %d x %d: %d / %d prompts", m, have, c0 + len(chunk), len(items))


def _verify(benches: list[_Bench], n: int, ctx: dict) -> None:
    """Verifies every (sample, verifier) pair without a cached verdict, all benchmarks together."""
    queue = []
    for b in benches:
        for i, key in enumerate(b.keys):
            p = b.prep.problems[i]
            for spec, vk in zip(b.prep.specs(p), b.vkeys[i], strict=True):
                for j in range(n):
                    if (key, j, vk) not in b.cache.verdicts:
                        s = b.cache.samples[(key, j)]
                        sample = sample_for(p, b.prep.bench, s["text"], s["ids"])
                        queue.append((b, key, j, vk, spec, sample))
    for c0 in range(0, len(queue), SCORE_CHUNK):
        chunk = queue[c0 : c0 + SCORE_CHUNK]
        results = ctx["res"].score([(spec, s) for *_, spec, s in chunk])
        rows: dict[int, list[dict[str, Any]]] = {}
        for (b, k, j, vk, _, _), r in zip(chunk, results, strict=True):
            rows.setdefault(id(b), []).append({"key": k, "j": j, "vkey": vk, **verdict(r)})
        for b in {id(b): b for b, *_ in chunk}.values():
            b.cache.add_verdicts(rows[id(b)])
            b.verified += len(rows[id(b)])
        log.info("verified %d / %d", c0 + len(chunk), len(queue))


def draw_target(
    cfg: SuiteConfig, target: Target, cache_root: Path, res: Resources
) -> tuple[list[_Bench], dict[str, Any]]:
    """Every selected benchmark of the suite prepared for one model, its missing samples drawn
    (and cached). Returns the benchmarks and the model's context (tokenizer, window, ...)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(target.model_path)
    window = model_window(target.model_path, cfg.max_model_len)
    stop_ids = stop_token_ids(tokenizer, target.model_path)
    fmt, raw = prompt_format(cfg, target)
    mkey = model_key(target.model_path, cache_root / "hashes.json")
    ctx = dict(cfg=cfg, res=res, model_path=target.model_path, window=window, stop_ids=stop_ids)
    ctx.update(tokenizer=tokenizer, model_key=mkey, prompt_format=fmt)
    benches = [
        _open(
            prepare(cfg, bench, tokenizer, window, fmt, raw),
            BenchmarkCache(cache_root, mkey, bench.name),
            cfg,
            stop_ids,
        )
        for bench in standalone(cfg)
    ]
    _draw(benches, cfg.num_samples, ctx)
    return benches, ctx


def standalone(cfg: SuiteConfig) -> list[Any]:
    """The selected benchmarks, less those judged against a training run's start (`against:
    start`): a run's own evaluations have that start, a single checkpoint does not (compare two
    with `rlcore eval --compare`)."""
    out = []
    for bench in selected(cfg):
        if bench.against == "start":
            log.info("%s: judged against a run's first answers, in training only", bench.name)
        else:
            out.append(bench)
    return out


def evaluate_target(cfg: SuiteConfig, target: Target, cache_root: Path, res: Resources) -> dict:
    """Every selected benchmark of the suite on one model: sample what is missing, verify what is
    unverified, summarise. Returns the content of its results.json."""
    t0 = time.time()
    n, ks = cfg.num_samples, sorted(set(cfg.k))
    benches, ctx = draw_target(cfg, target, cache_root, res)
    _verify(benches, n, ctx)
    benchmarks: dict[str, Any] = {}
    totals = dict.fromkeys(("drawn", "reused", "verified", "verdicts_reused"), 0)
    for b in benches:
        bench, problems = b.prep.bench, b.prep.problems
        records = []
        for p, key, vks in zip(problems, b.keys, b.vkeys, strict=True):
            verdicts = [[b.cache.verdicts[(key, j, vk)] for j in range(n)] for vk in vks]
            finishes = [b.cache.samples[(key, j)]["finish"] for j in range(n)]
            records.append(record(p, verdicts, finishes, bench.extra_verifiers, votes_on(bench)))
        counts = {
            "drawn": b.drawn,
            "reused": n * len(problems) - b.drawn,
            "verified": b.verified,
            "verdicts_reused": n * sum(map(len, b.vkeys)) - b.verified,
        }
        for k, v in counts.items():
            totals[k] += v
        log.info(
            "%s %s: %d problems x n=%d: samples drawn %d, reused %d; verdicts computed %d, "
            "reused %d",
            target.label,
            bench.name,
            len(problems),
            n,
            *counts.values(),
        )
        result = benchmark_result(b.prep, records, ks, cfg.bootstrap)
        benchmarks[bench.name] = result | {"counts": counts}
    res.close_engine()
    log.info(
        "%s: samples drawn %d, reused %d; verdicts computed %d, reused %d",
        target.label,
        *totals.values(),
    )
    return {
        "suite": cfg.name,
        "label": target.label,
        "step": target.step,
        "run": target.run_dir.name if target.run_dir else None,
        "model_path": target.model_path,
        "model_key": ctx["model_key"],
        "model_key_kind": "sha256 of the weight files' content and config.json",
        "prompt_format": ctx["prompt_format"],
        "window": ctx["window"],
        "k": ks,
        "n": n,
        "benchmarks": benchmarks,
        "buckets": bucket_results(benchmarks, cfg.bootstrap),
        "counts": totals,
        "wall_s": round(time.time() - t0, 1),
        "config": dataclasses.asdict(cfg),
    }


def default_out_dir(targets: list[Target]) -> Path:
    runs = {t.run_dir for t in targets}
    if len(runs) == 1 and None not in runs:
        return next(iter(runs)) / "eval"  # type: ignore[operator]
    return Path("runs") / ("eval-" + "+".join(t.label for t in targets))[:80]


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def run_eval(cfg: SuiteConfig, checkpoints: list[str]) -> dict[str, Any]:
    """Evaluates every target named by `checkpoints`; writes results (module docstring)."""
    targets = [t for arg in checkpoints for t in resolve_targets(arg, cfg.every, cfg.base)]
    labels = [t.label for t in targets]
    if len(set(labels)) < len(labels):  # several runs: step_000060 of each
        targets = [
            dataclasses.replace(t, label=f"{t.run_dir.name}/{t.label}") if t.run_dir else t
            for t in targets
        ]
    out = Path(cfg.out_dir) if cfg.out_dir else default_out_dir(targets)
    per_target = len(targets) > 1 or targets[0].run_dir is not None
    res = Resources(cfg)
    results = []
    try:
        for t in targets:
            r = evaluate_target(cfg, t, out / "cache", res)
            path = out / t.label / "results.json" if per_target else out / "results.json"
            write_json(path, r)
            r["path"] = str(path)
            results.append(r)
    finally:
        res.close()
    sweep: dict[str, Any] = {"out_dir": str(out), "results": results}
    if len(results) > 1:
        from rlcore.eval.plots import plot_sweep
        from rlcore.eval.report import sweep_table

        table = sweep_table(results)
        (out / "sweep.md").write_text(table + "\n")
        rows = [{k: r[k] for k in ("label", "step", "path", "buckets")} for r in results]
        write_json(out / "sweep.json", {"suite": cfg.name, "checkpoints": rows})
        sweep["plots"] = [str(p) for p in plot_sweep(results, out)]
        sweep["table"] = table
    return sweep
