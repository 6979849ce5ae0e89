"""Chaos: a long tiny run with an actor killed every K steps, against the same run undisturbed.

    python benchmarks/chaos.py                       # 200 steps, a fault every 10 steps
    python benchmarks/chaos.py --steps 40 --every 5 --json benchmarks/results/chaos.json
    python benchmarks/chaos.py --async --steps 60 --every 6 --json benchmarks/results/chaos_async.json

Both runs use configs/tiny_zero.yaml on the embedded tiny model, a local Ray cluster, vLLM on CPU,
DeepSpeed, checkpoints every `--every` steps. Faults, in a seeded random order, one every K steps
(injected from the loop's progress callback, right after a step is logged):

    rollout   ray.kill of the rollout worker (Ray restarts it; the loop re-syncs it, re-issues prompts)
    verifier  ray.kill of the verifier actor (Ray restarts it; its samples are scored again)
    learner   ray.kill of a learner rank: the run stops with an error naming it; resume=RUN_DIR
    driver    SIGTERM to this process (what `ray job stop` sends): checkpoint, stop; resume=RUN_DIR

Reported: faults injected, faults survived (the run went on, by itself or by one resume), prompts
lost (prompt groups sampled but never trained on, from metrics.jsonl's groups_kept), and whether
every step's metrics (reward, accuracy, response length, loss, entropy, grad norm) and the final
held-out accuracy equal the undisturbed run's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAME = ["reward_mean", "accuracy", "response_len", "truncated_frac", "loss", "entropy", "grad_norm"]
KINDS = ("rollout", "verifier", "learner", "driver")


ASYNC: list[str] = []  # --async: the overrides of an async run (set in main)


def overrides(run_dir: Path, steps: int, every: int) -> list[str]:
    return [
        *ASYNC,
        f"run_dir={run_dir}",
        f"steps={steps}",
        f"checkpoint_every={every}",
        "rollout.prompts_per_step=16",
        "rollout.n=4",
        "rollout.max_tokens=32",
        "data.heldout_size=50",
        "learner.micro_batch_size=64",
        "verifier.max_restarts=1000",
        "rollout.max_restarts=1000",
    ]


def run_undisturbed(run_dir: Path, steps: int, every: int) -> dict[str, Any]:
    from rlcore.config import load_config
    from rlcore.trainer import train

    return train(load_config("configs/tiny_zero.yaml", overrides(run_dir, steps, every)))


class Chaos:
    """The progress callback that injects one fault every `every` steps."""

    def __init__(self, every: int, seed: int) -> None:
        self.every, self.rng = every, random.Random(seed)
        self.injected: list[dict[str, Any]] = []

    def __call__(self, stage: str, step: int, total: int, metrics: dict[str, Any]) -> None:
        if stage != "rl" or step % self.every or step == total:
            return
        if any(f["step"] == step for f in self.injected):
            return  # a resumed run passes this step again
        import ray

        kind = self.rng.choice(KINDS)
        self.injected.append({"step": step, "kind": kind})
        print(f"  step {step}: fault {kind}", flush=True)
        if kind == "driver":
            os.kill(os.getpid(), signal.SIGTERM)
            return
        prefix = {"rollout": "rollout-0-", "verifier": "verifier-0-", "learner": "learner-0-"}[kind]
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
        actor = ray.get_actor(next(n for n in names if n.startswith(prefix)))
        ray.kill(actor, no_restart=kind == "learner")


def run_disturbed(run_dir: Path, steps: int, every: int, seed: int) -> dict[str, Any]:
    from rlcore.config import load_config
    from rlcore.preempt import Preempted
    from rlcore.trainer import RunFailed, train

    chaos = Chaos(every, seed)
    resumes, survived, summary = 0, 0, None
    args = overrides(run_dir, steps, every)
    while summary is None:
        try:
            summary = train(load_config("configs/tiny_zero.yaml", args), progress=chaos)
        except (Preempted, RunFailed) as e:
            resumes += 1
            print(f"  stopped ({type(e).__name__}: {str(e)[:80]}); resuming", flush=True)
            args = [*overrides(run_dir, steps, every), f"resume={run_dir}"]
        if resumes > len(chaos.injected) + 1:
            raise RuntimeError("more stops than faults: the run does not recover")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    rl = [r for r in rows if r["stage"] == "rl"]
    survived = sum(1 for f in chaos.injected if f["step"] < steps)
    return {
        "summary": summary,
        "faults": chaos.injected,
        "survived": survived if [r["step"] for r in rl] == list(range(1, steps + 1)) else 0,
        "resumes": resumes,
        "rollout_restarts": max((r.get("rollout_restarts", 0) for r in rl), default=0),
        "verifier_restarts": max((r.get("verifier_restarts", 0) for r in rl), default=0),
    }


def compare(a_dir: Path, b_dir: Path) -> tuple[bool, int, int]:
    """(every step's metrics equal, steps compared, prompts lost in the disturbed run)."""

    def rl(d: Path) -> list[dict[str, Any]]:
        return [r for r in map(json.loads, (d / "metrics.jsonl").open()) if r["stage"] == "rl"]

    a, b = rl(a_dir), rl(b_dir)
    same = len(a) == len(b) and all(
        {k: x.get(k) for k in SAME} == {k: y.get(k) for k in SAME}
        for x, y in zip(a, b, strict=False)
    )
    lost = sum(int(x["groups_kept"] - y["groups_kept"]) for x, y in zip(a, b, strict=False))
    return same, len(b), lost


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--every", type=int, default=10, help="a fault every K steps")
    p.add_argument("--seed", type=int, default=0, help="the order of fault kinds")
    p.add_argument("--out", default="runs/chaos", help="the two run directories go here")
    p.add_argument("--json", help="write the result row here")
    p.add_argument(
        "--async",
        dest="async_",
        action="store_true",
        help="async mode (rollout.async_steps=1, algo.tis_cap=2.0): a checkpoint keeps the batch "
        "in flight; staleness and TIS weights are compared too",
    )
    args = p.parse_args()
    if args.async_:
        ASYNC.extend(["rollout.async_steps=1", "algo.tis_cap=2.0"])
        SAME.extend(["staleness", "tis_weight"])
    os.chdir(REPO)
    import logging
    import shutil

    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    print(f"undisturbed run, {args.steps} steps ...", flush=True)
    base = run_undisturbed(out / "undisturbed", args.steps, args.every)
    t1 = time.time()
    print(f"disturbed run, a fault every {args.every} steps ...", flush=True)
    chaos = run_disturbed(out / "disturbed", args.steps, args.every, args.seed)
    t2 = time.time()
    same, steps, lost = compare(out / "undisturbed", out / "disturbed")
    final_same = chaos["summary"]["heldout_accuracy"] == base["heldout_accuracy"]
    kinds = {k: sum(f["kind"] == k for f in chaos["faults"]) for k in KINDS}
    row = {
        "steps": args.steps,
        "every": args.every,
        "async": args.async_,
        "faults_injected": len(chaos["faults"]),
        "faults_by_kind": kinds,
        "faults_survived": chaos["survived"],
        "resumes": chaos["resumes"],
        "rollout_restarts": chaos["rollout_restarts"],
        "verifier_restarts": chaos["verifier_restarts"],
        "prompts_lost": lost,
        "metrics_equal": same,
        "heldout_equal": final_same,
        "heldout": {
            "undisturbed": base["heldout_accuracy"],
            "disturbed": chaos["summary"]["heldout_accuracy"],
        },
        "wall_s": {"undisturbed": round(t1 - t0, 1), "disturbed": round(t2 - t1, 1)},
    }
    print()
    print(
        "| faults injected | by kind | survived | resumes | prompts lost | metrics equal | held-out equal |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {row['faults_injected']} | {', '.join(f'{k} {v}' for k, v in kinds.items())} | "
        f"{row['faults_survived']} | {row['resumes']} | {lost} | {same} ({steps} steps) | "
        f"{final_same} |"
    )
    print(
        f"wall: undisturbed {row['wall_s']['undisturbed']} s, disturbed {row['wall_s']['disturbed']} s"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=1) + "\n")
    return 0 if same and final_same and not lost else 1


if __name__ == "__main__":
    sys.exit(main())
