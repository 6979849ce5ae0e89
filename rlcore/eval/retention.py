"""A run's capability table: every eval bucket at the first and the last in-training evaluation.

    out = bucket_summary(history, trained=["reasoning"], k=[1, 4])
    out["buckets"]["ifeval"] == {"start": {"pass@1": 0.31, "ci95": [0.24, 0.38], ...}, "end": {...},
                                 "verdict": "kept"}

Verdicts: "gained" (the end's 95% CI lies above the start's), "lost" (the end is below the lower
bound of the start's CI: the retention bar), else "kept". `history` is the list of
PeriodicEval results ({"step", "buckets": {name: {"metrics", "ci"}}}) in step order.
"""

from __future__ import annotations

from typing import Any


def _point(bucket: dict[str, Any], ks: list[int]) -> dict[str, Any]:
    m, ci = bucket.get("metrics", {}), bucket.get("ci", {})
    out: dict[str, Any] = {}
    for k in ks:
        name = f"pass@{k}"
        if name in m:
            out[name] = m[name]
            out["ci95" if k == 1 else f"ci95@{k}"] = ci.get(name)
    if "truncated@n" in m:
        out["truncated"] = m["truncated@n"]
    return out


def verdict(start: dict[str, Any], end: dict[str, Any]) -> str:
    s_lo, s_hi = start.get("ci95") or (start["pass@1"],) * 2
    e_lo, _ = end.get("ci95") or (end["pass@1"],) * 2
    if e_lo > s_hi:
        return "gained"
    if end["pass@1"] < s_lo:
        return "lost"
    return "kept"


def bucket_summary(
    history: list[dict[str, Any]],
    trained: list[str],
    k: list[int],
    rl_start: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """summary.json's "buckets" and "trained_buckets" from the first and last evaluation; with
    `rl_start` (the buckets evaluated after a cold start) each such bucket also gets "rl_start"
    and "rl_change" (the RL stage's own change: end minus RL start)."""
    if not history:
        return {"buckets": {}, "trained_buckets": sorted(trained)}
    first, last = history[0], history[-1]
    ks = sorted(set(k) | {1})
    buckets: dict[str, Any] = {}
    for name in sorted(first["buckets"]):
        start = _point(first["buckets"][name], ks)
        end = _point(last["buckets"].get(name, {}), ks)
        if "pass@1" not in start or "pass@1" not in end:
            continue
        buckets[name] = {
            "start": start,
            "end": end,
            "start_step": first["step"],
            "end_step": last["step"],
            "verdict": verdict(start, end),
        }
        rl = _point((rl_start or {}).get(name, {}), ks)
        if "pass@1" in rl:
            buckets[name]["rl_start"] = rl
            buckets[name]["rl_change"] = end["pass@1"] - rl["pass@1"]
    return {"buckets": buckets, "trained_buckets": sorted(b for b in trained if b in buckets)}


def _cell(p: dict[str, Any]) -> str:
    lo, hi = p.get("ci95") or (float("nan"),) * 2
    return f"{p['pass@1']:.3f} [{lo:.2f}, {hi:.2f}]"


def bucket_table(summary: dict[str, Any]) -> str:
    """Markdown: a row per bucket, pass@1 with its 95% CI at the start and the end."""
    rows = summary["buckets"]
    if not rows:
        return "(no in-training evaluation)"
    any_row = next(iter(rows.values()))
    extra = sorted(k for k in any_row["start"] if k.startswith("pass@") and k != "pass@1")
    after_sft = any("rl_start" in b for b in rows.values())  # a cold start: RL's own column
    head = ["bucket", "trained", f"step {any_row['start_step']} pass@1 [95% CI]"]
    head += ["RL start (after SFT)"] if after_sft else []
    head += [f"step {any_row['end_step']} pass@1 [95% CI]", "change"]
    head += ["RL's change"] if after_sft else []
    head += [f"{e} start / end" for e in extra] + ["truncated start / end", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, b in rows.items():
        s, e = b["start"], b["end"]
        cells = [name, "yes" if name in summary["trained_buckets"] else "", _cell(s)]
        if after_sft:
            cells.append(_cell(b["rl_start"]) if "rl_start" in b else "")
        cells += [_cell(e), f"{e['pass@1'] - s['pass@1']:+.3f}"]
        if after_sft:
            cells.append(f"{b['rl_change']:+.3f}" if "rl_change" in b else "")
        cells += [f"{s[x]:.3f} / {e[x]:.3f}" for x in extra]
        cells.append(f"{s.get('truncated', 0):.2f} / {e.get('truncated', 0):.2f}")
        cells.append(b["verdict"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
