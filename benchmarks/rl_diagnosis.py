"""What an RL run's steps looked like, as a markdown table: is there signal to learn from?

Per window of steps (means): reward and accuracy; zero_var_frac (groups whose rewards are all
equal: no group-relative advantage); group_reward_std; entropy; kl (to the reference, where the
run loads one); clip_frac; grad_norm; response length; truncated share; learn_skipped_frac and
step time. Then the held-out curve (in-training evaluations) when the run has one.

    python benchmarks/rl_diagnosis.py runs/smollm2_zero1 [--window 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = [
    ("reward_mean", "reward", 3),
    ("accuracy", "acc", 3),
    ("zero_var_frac", "zero-var groups", 2),
    ("group_reward_std", "group std", 3),
    ("entropy", "entropy", 3),
    ("kl", "KL", 4),
    ("clip_frac", "clip", 4),
    ("grad_norm", "grad norm", 3),
    ("response_len", "resp. tokens", 1),
    ("truncated_frac", "truncated", 3),
    ("learn_skipped_frac", "skipped", 2),
    ("time_step", "s/step", 1),
]


def windows(rows: list[dict], size: int) -> list[dict]:
    out = []
    for start in range(0, len(rows), size):
        part = rows[start : start + size]
        row = {"steps": f"{part[0]['step']}-{part[-1]['step']}"}
        for key, _, _ in COLUMNS:
            vals = [r[key] for r in part if isinstance(r.get(key), int | float)]
            row[key] = sum(vals) / len(vals) if vals else None
        out.append(row)
    return out


def table(win: list[dict]) -> str:
    present = [c for c in COLUMNS if any(w[c[0]] is not None for w in win)]
    head = "| steps | " + " | ".join(label for _, label, _ in present) + " |"
    lines = [head, "|" + "---|" * (len(present) + 1)]
    for w in win:
        cells = ["" if w[k] is None else f"{w[k]:.{d}f}" for k, _, d in present]
        lines.append(f"| {w['steps']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curve(run: Path) -> str:
    path = run / "summary.json"
    if not path.is_file():
        return ""
    summary = json.loads(path.read_text())
    lines = []
    for bucket, points in sorted((summary.get("curve") or {}).items()):
        cells = ", ".join(f"step {int(s)}: {v:.3f} [{lo:.2f}, {hi:.2f}]" for s, v, lo, hi in points)
        lines.append(f"- {bucket}: {cells}")
    greedy = summary.get("heldout_accuracy") or {}
    if greedy:
        lines.append("- greedy held-out: " + ", ".join(f"{k} {v:.3f}" for k, v in greedy.items()))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = [json.loads(x) for x in (args.run / "metrics.jsonl").read_text().splitlines()]
    rl = [r for r in rows if r.get("stage") == "rl"]
    win = windows(rl, args.window)
    print(table(win))
    print(curve(args.run))
    if args.json:
        args.json.write_text(json.dumps({"run": str(args.run), "windows": win}, indent=1))


if __name__ == "__main__":
    main()
