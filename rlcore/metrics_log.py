"""Per-step metrics to metrics.jsonl and TensorBoard, and the end-of-run plot and summary table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class MetricsLogger:
    """Appends one JSON object per step to metrics.jsonl (always: resume and the plots read it),
    mirrors scalars to TensorBoard and to the trackers of `log.backends` (rlcore/trackers.py)."""

    def __init__(
        self, run_dir: Path, backends: list[str] | None = None, trackers: Any = ()
    ) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if "tensorboard" in (backends if backends is not None else ["tensorboard"]):
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        self.trackers = list(trackers)

    def log(self, step: int, stage: str, metrics: dict[str, Any]) -> None:
        row = {"step": step, "stage": stage, **metrics}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float):
                    self.tb.add_scalar(f"{stage}/{key}", value, step)
            self.tb.flush()
        for t in self.trackers:
            t.log(step, stage, metrics)

    def completions(self, step: int, rows: list[dict[str, Any]]) -> None:
        """A table of sampled completions (TRL's log_completions), for the trackers that take one."""
        for t in self.trackers:
            t.completions(step, rows)

    def finish(self, summary: dict[str, Any], files: list[Path]) -> None:
        for t in self.trackers:
            t.finish(summary, files)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        for t in self.trackers:
            t.close()
        self.trackers = []


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(run_dir: Path, keep_through_step: int) -> None:
    """On resume: drop the RL and eval rows logged after the checkpoint's step (they will be
    logged again); with no checkpoint (keep_through_step < 0) the run starts over: drop every row."""
    rows = [
        r
        for r in read_metrics(run_dir)
        if keep_through_step >= 0
        and not (r.get("stage") in ("rl", "eval") and r.get("step", 0) > keep_through_step)
    ]
    path = run_dir / "metrics.jsonl"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def plot_rewards(run_dir: Path, heldout: dict[str, float]) -> Path | None:
    """reward and accuracy per RL step (with the held-out accuracy per stage as lines) -> PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_metrics(run_dir) if r.get("stage") == "rl"]
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["reward_mean"] for r in rows], label="train reward (mean)")
    ax.plot(steps, [r["accuracy"] for r in rows], label="train accuracy")
    styles = {"base": ":", "sft": "--", "rl": "-"}
    for stage, acc in heldout.items():
        ax.axhline(
            acc,
            color="gray",
            linestyle=styles.get(stage, "-."),
            lw=1,
            label=f"held-out accuracy after {stage}: {acc:.2f}",
        )
    ax.set_xlabel("RL step")
    ax.set_ylim(-0.02, max(1.3, max(r["reward_mean"] for r in rows) + 0.05))
    ax.set_title(run_dir.name)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    out = run_dir / "rewards.png"
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def summary_table(summary: dict[str, Any]) -> str:
    lines = ["", f"{'metric':<32}{'value':>12}", "-" * 44]
    for stage, acc in summary["heldout_accuracy"].items():
        lines.append(f"{'held-out accuracy after ' + stage:<32}{acc:>12.3f}")
    for key in ("steps", "wall_s", "final_reward_mean", "final_accuracy"):
        if key in summary and summary[key] is not None:
            val = summary[key]
            lines.append(
                f"{key:<32}{val:>12.3f}" if isinstance(val, float) else f"{key:<32}{val:>12}"
            )
    return "\n".join(lines)
