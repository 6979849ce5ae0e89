"""Trains every algorithm config on the embedded task and tabulates held-out accuracy before/after
and RL steps per second, one run each on this machine (docs/algorithms.md's table).

    python benchmarks/algorithms.py                      # all of configs/tiny_{grpo,...,ppo}.yaml
    python benchmarks/algorithms.py --algos ppo dapo --json benchmarks/results/algorithms.json
    python benchmarks/algorithms.py --algos zero zero_async --json benchmarks/results/async.json

Each run is `rlcore train configs/tiny_<algo>.yaml` in its own process (its own Ray cluster), with
the run directory under runs/bench-algos/. steps/s counts the RL loop only (each step's wall time,
from metrics.jsonl): model loading and held-out evaluation are left out.
Also writes reward curves of all runs to one PNG beside the JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ALGOS = ["grpo", "drgrpo", "dapo", "rloo", "reinforce_pp", "gspo", "ppo"]
OTHERS = ["zero", "zero_async"]  # tiny_zero.yaml (synchronous GRPO) and its async twin
STEP_TIMES = ("time_rollout", "time_verify", "time_learn", "time_sync")


def run_one(algo: str, out: Path, extra: list[str]) -> dict:
    run_dir = out / algo
    cmd = [sys.executable, "-m", "rlcore.launch.cli", "train", f"configs/tiny_{algo}.yaml"]
    cmd += [f"run_dir={run_dir}", *extra]
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{algo}: rlcore train failed ({proc.returncode})")
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    rl = [r for r in rows if r["stage"] == "rl"]
    # wall time per step (async mode overlaps the phases); the phases' sum where it is not logged
    loop_s = sum(r.get("time_step") or sum(r.get(k, 0.0) for k in STEP_TIMES) for r in rl)
    acc = summary["heldout_accuracy"]
    return {
        "algo": algo,
        "heldout_before": acc.get("base"),
        "heldout_after": acc.get("rl"),
        "steps": len(rl),
        "steps_per_s": len(rl) / loop_s if loop_s else None,
        "reward_first10": sum(r["reward_mean"] for r in rl[:10]) / max(len(rl[:10]), 1),
        "reward_last10": sum(r["reward_mean"] for r in rl[-10:]) / max(len(rl[-10:]), 1),
        "mismatch_abs": sum(r.get("mismatch_abs", 0.0) for r in rl) / max(len(rl), 1),
        "step_s": sum(r.get("time_step", 0.0) for r in rl) / max(len(rl), 1),
        "wall_s": round(time.time() - start, 1),
        "rewards": [r["reward_mean"] for r in rl],
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        ax.plot(range(1, len(r["rewards"]) + 1), r["rewards"], label=r["algo"])
    ax.set(xlabel="RL step", ylabel="mean reward (training samples)", title="Embedded task")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--algos", nargs="+", default=ALGOS, choices=ALGOS + OTHERS)
    ap.add_argument("--out", default="runs/bench-algos")
    ap.add_argument("--json", default="benchmarks/results/algorithms.json")
    ap.add_argument("overrides", nargs="*", help="key=value passed to every run")
    args = ap.parse_args()
    results = []
    for algo in args.algos:
        print(f"== {algo}", flush=True)
        results.append(run_one(algo, Path(args.out), args.overrides))
        r = results[-1]
        print(
            f"   {r['heldout_before']:.3f} -> {r['heldout_after']:.3f}  {r['steps_per_s']:.3f} steps/s"
        )
    print("\n| algo | held-out before | held-out after | reward first 10 -> last 10 | RL steps/s |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['algo']} | {r['heldout_before']:.3f} | {r['heldout_after']:.3f} | "
            f"{r['reward_first10']:.2f} -> {r['reward_last10']:.2f} | {r['steps_per_s']:.3f} |"
        )
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    plot(results, path.with_suffix(".png"))
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
