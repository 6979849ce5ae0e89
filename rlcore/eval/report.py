"""Markdown tables of eval results (the CLI prints them; sweeps also write them to sweep.md)."""

from __future__ import annotations

from typing import Any


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def _ci(m: dict[str, Any], name: str) -> str:
    lo, hi = m.get("ci", {}).get(name, (None, None))
    if lo is None or lo != lo:  # NaN: no bootstrap
        return _fmt(m["metrics"].get(name))
    return f"{m['metrics'][name]:.3f} [{lo:.2f}, {hi:.2f}]"


def _columns(result: dict[str, Any]) -> list[str]:
    ks = result["k"]
    cols = [f"pass@{k}" for k in ks]
    seen = {name for b in result["benchmarks"].values() for name in b["metrics"]}
    if f"maj@{ks[-1]}" in seen:
        cols.append(f"maj@{ks[-1]}")
    cols.append("mean@n")
    extras = sorted(n for n in seen if n.endswith("@n") and n not in ("mean@n", "reward@n"))
    return cols + [n for n in extras if n != "truncated@n"] + ["truncated@n"]


def result_table(result: dict[str, Any]) -> str:
    """One model: a row per benchmark (and per group), then a row per bucket; pass@1 with its
    bootstrap 95% CI over problems."""
    cols = _columns(result)
    head = ["benchmark", "bucket", "items"] + cols
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(name: str, bucket: str, items: str, m: dict[str, Any]) -> None:
        cells = [_ci(m, c) if c == cols[0] else _fmt(m["metrics"].get(c)) for c in cols]
        lines.append("| " + " | ".join([name, bucket, items, *cells]) + " |")

    for name, b in result["benchmarks"].items():
        items = str(len(b["problems"])) + (
            f" (+{len(b['skipped'])} skipped)" if b["skipped"] else ""
        )
        row(name, b["bucket"], items, b)
        for g, gm in b.get("groups", {}).items():
            count = sum(p.get("group") == g for p in b["problems"])
            row(f"  {name}/{g}", b["bucket"], str(count), gm)
    for bucket, m in result["buckets"].items():
        if m.get("metrics"):
            row(f"**{bucket}**", "bucket", f"{m['benchmarks']} bench.", m)
    return "\n".join(lines)


def sweep_table(results: list[dict[str, Any]]) -> str:
    """Several checkpoints: a row per checkpoint, pass@1 and pass@max(k) per bucket."""
    buckets = sorted({b for r in results for b in r["buckets"]})
    kmax = max(results[0]["k"])
    metrics = ["pass@1"] + ([f"pass@{kmax}"] if kmax > 1 else [])
    head = ["checkpoint", "step"] + [f"{b} {m}" for b in buckets for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [
            _fmt(r["buckets"].get(b, {}).get("metrics", {}).get(m))
            for b in buckets
            for m in metrics
        ]
        lines.append("| " + " | ".join([r["label"], str(r["step"]), *cells]) + " |")
    return "\n".join(lines)
