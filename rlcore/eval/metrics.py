"""Evaluation metrics as plain functions over per-problem counts: pass@k, mean@n, maj@k, bootstrap CIs.

    pass_at_k(n=16, c=3, k=4)           # unbiased estimator of Chen et al. 2021, stable product form
    maj_at_k(votes, k=4)                 # expected majority-vote accuracy over k-subsets of n samples
    bootstrap_ci([values_a, values_b])   # percentile CI of the mean of group means, problems resampled

A benchmark's problems are summarised by `summarize`; buckets average their benchmarks (macro) so a
bucket's score does not depend on how many problems each benchmark's slice holds.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

Vote = tuple[str | None, bool]  # (extracted answer or None, was that sample correct)

MAJ_EXACT_LIMIT = 2000  # enumerate every k-subset up to this many, else sample this many subsets


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k samples drawn without replacement from n, c of them correct, is correct).

    1 - C(n-c, k) / C(n, k), written as 1 - prod_{i=n-c+1}^{n} (1 - k/i): no huge binomials, so
    finite for any n. Exactly 1.0 when fewer than k samples are wrong."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass@k needs 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least k samples, got n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def _majority_correct(votes: Sequence[Vote]) -> float:
    """Credit of one vote: the most frequent answer wins; a tie shares the credit; None abstains."""
    counts = Counter(a for a, _ in votes if a is not None)
    if not counts:
        return 0.0
    top = max(counts.values())
    winners = [a for a, c in counts.items() if c == top]
    right = {a for a, ok in votes if a is not None and ok}
    return sum(a in right for a in winners) / len(winners)


def maj_at_k(votes: Sequence[Vote], k: int, seed: int = 0) -> float:
    """Expected accuracy of a majority vote over k of the n samples (drawn without replacement).

    Exact (every k-subset) when there are at most MAJ_EXACT_LIMIT subsets, else the mean over that
    many random subsets, seeded: the same votes always give the same number."""
    n = len(votes)
    if k > n:
        raise ValueError(f"maj@{k} needs at least k samples, got n={n}")
    if math.comb(n, k) <= MAJ_EXACT_LIMIT:
        subsets: Any = combinations(range(n), k)
        total = math.comb(n, k)
    else:
        rng = random.Random(seed)
        subsets = (rng.sample(range(n), k) for _ in range(MAJ_EXACT_LIMIT))
        total = MAJ_EXACT_LIMIT
    return sum(_majority_correct([votes[i] for i in s]) for s in subsets) / total


def bootstrap_ci(
    groups: Sequence[Sequence[float]], reps: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of mean(group means), resampling each group's problems with replacement.

    One group: the usual CI of a benchmark's mean. Several: a bucket's macro average."""
    arrays = [np.asarray(g, dtype=np.float64) for g in groups if len(g)]
    if not arrays or reps < 1:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    stats = np.zeros(reps)
    for a in arrays:
        stats += a[rng.integers(0, len(a), size=(reps, len(a)))].mean(axis=1)
    stats /= len(arrays)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))


def per_problem(problem: dict[str, Any], ks: Sequence[int], vote: bool) -> dict[str, float]:
    """Metric values of one problem from its record {"n", "c", "rewards", "votes", "extra"}."""
    n, c = problem["n"], problem["c"]
    out = {f"pass@{k}": pass_at_k(n, c, k) for k in ks}
    out["mean@n"] = c / n
    out["reward@n"] = sum(problem["rewards"]) / n
    if vote:
        votes = [tuple(v) for v in problem["votes"]]
        for k in ks:
            out[f"maj@{k}"] = maj_at_k(votes, k)  # type: ignore[arg-type]
        out["answered@n"] = sum(a is not None for a, _ in votes) / n
    for name, hits in problem.get("extra", {}).items():
        out[f"{name}@n"] = sum(hits) / n
        both = [h and ok for h, ok in zip(hits, problem["correct"], strict=True)]
        out[f"correct+{name}@n"] = sum(both) / n
    out["truncated@n"] = problem.get("truncated", 0) / n
    return out


def summarize(
    problems: Sequence[dict[str, Any]], ks: Sequence[int], vote: bool, reps: int = 1000
) -> dict[str, Any]:
    """{"metrics": {name: value}, "ci": {name: [lo, hi]}, "values": {name: [per problem]}}."""
    if not problems:
        return {"metrics": {}, "ci": {}, "values": {}}
    rows = [per_problem(p, ks, vote) for p in problems]
    values = {name: [r[name] for r in rows] for name in rows[0]}
    return {
        "metrics": {name: float(np.mean(v)) for name, v in values.items()},
        "ci": {name: list(bootstrap_ci([v], reps)) for name, v in values.items()},
        "values": values,
    }


def macro(
    summaries: Sequence[dict[str, Any]], reps: int = 1000
) -> dict[str, Any]:  # a bucket from its benchmarks
    """Mean of benchmark metrics over the metrics every benchmark has, with a joint bootstrap CI."""
    summaries = [s for s in summaries if s["metrics"]]
    if not summaries:
        return {"metrics": {}, "ci": {}}
    names = [m for m in summaries[0]["metrics"] if all(m in s["metrics"] for s in summaries)]
    return {
        "metrics": {m: float(np.mean([s["metrics"][m] for s in summaries])) for m in names},
        "ci": {m: list(bootstrap_ci([s["values"][m] for s in summaries], reps)) for m in names},
        "benchmarks": len(summaries),
    }
