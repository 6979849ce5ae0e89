"""Verifier throughput: samples/s per verifier in-process and in a WorkerPool of 1 and 2 workers.

    .venv/bin/python benchmarks/verifiers.py                       # math and format, 500 samples
    .venv/bin/python benchmarks/verifiers.py --verifiers math,code --samples-file rows.jsonl
    .venv/bin/python benchmarks/verifiers.py --json runs/bench_verifiers.json

Rows: `inline` is a bare loop of `verify` in this process (no timeout protection); `pool-N` is a warm
persistent pool of N workers scoring the whole batch in one `score` call (what the trainer does every
step), `startup_s` the time to start that pool. `overhead_us` is the pool's extra cost per sample
over the inline loop with one worker (pipe round trip, pickling, scheduling).

Samples come from the built-in generators below (math, format) or, for any verifier, from a JSONL
file of {verifier, prompt, response, reference} rows (`--samples-file`; rows naming the verifier).
Add a generator to GENERATORS to benchmark another verifier without a file.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlcore.verifiers import Sample, WorkerPool, build_verifier


def math_samples(n: int, rng: random.Random) -> list[Sample]:
    """A mix like a GRPO batch: right and wrong boxed answers, fractions vs decimals, no answer."""
    out = []
    for i in range(n):
        a, b = rng.randint(1, 99), rng.randint(2, 99)
        gold = f"\\frac{{{a}}}{{{b}}}"
        kind = i % 5
        if kind == 0:
            resp = f"<think>compute</think> The answer is \\boxed{{\\dfrac{{{a}}}{{{b}}}}}"
        elif kind == 1:
            resp = f"<think>compute</think> \\boxed{{{a / b:.6f}}}"
        elif kind == 2:
            resp = f"<think>compute</think> \\boxed{{{a + 1}/{b}}}"
        elif kind == 3:
            resp = f"so it is {a}/{b}"  # no box
        else:
            resp = f"\\boxed{{x = \\frac{{{a}}}{{{b}}} + \\sqrt{{{a}}} - \\sqrt{{{a}}}}}"
        out.append(Sample(prompt="q", response=resp, reference={"answer": gold}))
    return out


def format_samples(n: int, rng: random.Random) -> list[Sample]:
    words = "we add the two numbers and check the result carefully".split()
    out = []
    for i in range(n):
        think = " ".join(rng.choice(words) for _ in range(rng.randint(20, 400)))
        tail = ["", " extra text", " \\boxed{2}"][i % 3]
        out.append(Sample(prompt="q", response=f"<think>{think}</think> \\boxed{{{i}}}{tail}"))
    return out


GENERATORS: dict[str, Callable[[int, random.Random], list[Sample]]] = {
    "math": math_samples,
    "format": format_samples,
}


def file_samples(path: str, name: str, n: int) -> list[Sample]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    got = [
        Sample(prompt=r.get("prompt", ""), response=r["response"], reference=r.get("reference", {}))
        for r in rows
        if r.get("verifier") == name
    ]
    if not got:
        raise SystemExit(f"{path}: no rows with verifier {name!r}")
    return (got * (n // len(got) + 1))[:n]


def bench(name: str, batches: list[list[Sample]], workers: list[int]) -> list[dict[str, Any]]:
    """Time distinct batches (no answer seen twice, as in training) inline and in warm pools."""
    v = build_verifier(name)
    v.setup()
    n = sum(len(b) for b in batches)
    for s in batches[0][:20]:  # warm imports, as a running worker would be
        v.verify(s)
    t0 = time.perf_counter()
    for batch in batches:
        for s in batch:
            v.verify(s)
    inline = (time.perf_counter() - t0) / n
    rows = [_row(name, "inline", len(batches[0]), inline, None, None)]
    for w in workers:
        t0 = time.perf_counter()
        with WorkerPool({name: v}, workers=w) as pool:
            startup = time.perf_counter() - t0
            pool.score([(name, s) for s in batches[0][: 4 * w]])  # warm each worker
            t0 = time.perf_counter()
            for batch in batches:
                pool.score([(name, s) for s in batch])
            per = (time.perf_counter() - t0) / n
        overhead = (per - inline) * 1e6 if w == 1 else None
        rows.append(_row(name, f"pool-{w}", len(batches[0]), per, startup, overhead))
    return rows


def _row(name: str, mode: str, n: int, per: float, startup: float | None, over: float | None):
    return {
        "verifier": name,
        "mode": mode,
        "samples": n,
        "samples_per_s": 1.0 / per if per > 0 else float("inf"),
        "us_per_sample": per * 1e6,
        "startup_s": startup,
        "overhead_us": over,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--verifiers", default="math,format", help="comma-separated names")
    ap.add_argument("--n", type=int, default=500, help="samples per batch (a trainer step)")
    ap.add_argument("--workers", default="1,2", help="comma-separated pool sizes")
    ap.add_argument("--reps", type=int, default=3, help="batches timed per row")
    ap.add_argument("--samples-file", help="JSONL rows {verifier, prompt, response, reference}")
    ap.add_argument("--json", help="write the rows to this JSON file")
    args = ap.parse_args()
    rng = random.Random(0)
    rows: list[dict[str, Any]] = []
    for name in [n.strip() for n in args.verifiers.split(",") if n.strip()]:
        if name in GENERATORS:
            samples = GENERATORS[name](args.n * args.reps, rng)
        elif args.samples_file:
            samples = file_samples(args.samples_file, name, args.n * args.reps)
        else:
            raise SystemExit(f"no generator for {name!r}: pass --samples-file")
        batches = [samples[i : i + args.n] for i in range(0, len(samples), args.n)]
        rows += bench(name, batches, [int(w) for w in args.workers.split(",")])
    print(
        f"{'verifier':<12}{'mode':<9}{'samples/s':>12}{'us/sample':>12}{'startup_s':>11}"
        f"{'overhead_us':>13}"
    )
    for r in rows:
        start = f"{r['startup_s']:.2f}" if r["startup_s"] is not None else "-"
        over = f"{r['overhead_us']:.0f}" if r["overhead_us"] is not None else "-"
        print(
            f"{r['verifier']:<12}{r['mode']:<9}{r['samples_per_s']:>12.0f}"
            f"{r['us_per_sample']:>12.0f}{start:>11}{over:>13}"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
