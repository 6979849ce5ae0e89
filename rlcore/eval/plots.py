"""PNG plots of a sweep: pass@k curves per checkpoint, and per-bucket scores against step."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_passk(results: list[dict[str, Any]], path: Path) -> Path:
    """One panel per bucket: pass@k against k (log2 axis), one line per checkpoint."""
    plt = _pyplot()
    buckets = sorted({b for r in results for b in r["buckets"]})
    fig, axes = plt.subplots(
        1, len(buckets), figsize=(3.2 * len(buckets), 3.0), squeeze=False, sharey=True
    )
    for ax, bucket in zip(axes[0], buckets, strict=True):
        for r in results:
            m = r["buckets"].get(bucket, {}).get("metrics", {})
            ks = [k for k in r["k"] if f"pass@{k}" in m]
            if ks:
                ax.plot(ks, [m[f"pass@{k}"] for k in ks], marker="o", label=r["label"])
        ax.set_xscale("log", base=2)
        ax.set_title(bucket)
        ax.set_xlabel("k")
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("pass@k")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_buckets(results: list[dict[str, Any]], path: Path, metric: str = "pass@1") -> Path:
    """`metric` of every bucket against the checkpoint's step (a line per run and bucket), with its
    bootstrap CI as a band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    steps = [r for r in results if r.get("step") is not None] or results
    runs = list(dict.fromkeys(r.get("run") for r in steps))
    for run in runs:
        mine = [r for r in steps if r.get("run") == run]
        xs = [r["step"] if r.get("step") is not None else i for i, r in enumerate(mine)]
        for bucket in sorted({b for r in mine for b in r["buckets"]}):
            pts = [
                (x, r["buckets"][bucket]["metrics"][metric], r["buckets"][bucket]["ci"][metric])
                for x, r in zip(xs, mine, strict=True)
                if metric in r["buckets"].get(bucket, {}).get("metrics", {})
            ]
            if not pts:
                continue
            label = f"{run}: {bucket}" if len(runs) > 1 else bucket
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
            lo = [p[2][0] for p in pts]
            if all(v == v for v in lo):  # no band without a bootstrap (NaN)
                ax.fill_between([p[0] for p in pts], lo, [p[2][1] for p in pts], alpha=0.15)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sweep(results: list[dict[str, Any]], out: Path) -> list[Path]:
    return [plot_passk(results, out / "passk.png"), plot_buckets(results, out / "buckets.png")]
