"""What `rlcore plan` prints: the memory table per actor, the time table per phase, the JSON form,
the refusal `rlcore train` raises, and predicted-vs-measured for a finished run (`--compare`).

A run directory holds summary.json (`peak_pss_mib`: each actor's peak PSS, by `<role><rank>`) and
metrics.jsonl (per RL step `time_rollout`, `time_verify`, `time_learn`, `time_sync`, `time_step`);
the comparison takes the median of each over the RL steps after the first (the first compiles and
warms caches).
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Any

from rlcore.errors import ConfigError
from rlcore.metrics_log import read_metrics
from rlcore.plan import Plan, PlanError, check_fits, config_model_verifiers, suggest_fixes
from rlcore.plan.memory import GIB, MIB

log = logging.getLogger(__name__)

TERMS = (
    "weights",
    "gradients",
    "optimizer",
    "activations",
    "logits",
    "reference",
    "kv cache",
    "sync buffers",
    "batch",
    "runtime",
)
PHASES = ("rollout", "verify", "learn", "sync")


def _gib(x: float) -> str:
    return f"{x / GIB:.2f}" if x else "-"


def memory_table(plan: Plan) -> str:
    terms = [t for t in TERMS if any(t in a.terms for a in plan.actors)]
    head = ["actor", "where", *terms, "total"]
    rows: list[list[str]] = []
    notes: dict[int, str] = {}  # a GPU actor's host share, printed under its row
    for a in plan.actors:
        where = "GPU" if a.on_gpu else "CPU"
        rows.append([a.name, where, *(_gib(a.terms.get(t, 0.0)) for t in terms), _gib(a.total)])
        if a.on_gpu and a.host:
            host = " + ".join(f"{k} {v / GIB:.2f}" for k, v in a.host.items())
            notes[len(rows) - 1] = f"    host: {host} GiB"
        if a.reserved:
            notes[len(rows) - 1] = (
                f"    + {a.reserved / GIB:.2f} GiB reserved, not touched in a step (KV cache): "
                "counted in the node's memory"
            )
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]

    def line(r: list[str]) -> str:
        cells = zip(r, widths, strict=True)
        return "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(cells))

    body = []
    for i, r in enumerate(rows):
        body.append(line(r))
        if i in notes:
            body.append(notes[i])
    hw = plan.hardware
    out = [f"memory (GiB) on {hw.name}", line(head), *body]
    out.append(
        f"node memory: {plan.node_total / GIB:.1f} of {hw.ram_gib:.1f} GiB "
        f"(prompt {plan.lens.prompt_tokens} tokens, sequence {plan.lens.seq_tokens})"
    )
    if hw.gpu is None and any(a.on_gpu for a in plan.actors):
        out.append(
            "no GPU here: GPU actors not checked, times at this CPU's speeds (use --device NAME)"
        )
    return "\n".join(out)


def time_table(plan: Plan, cal_source: str) -> str:
    t = plan.time
    parts = "  ".join(f"{p} {t[p]:.2f}" for p in PHASES)
    mode = "async: rollout overlaps learn" if t.get("async") else "synchronous"
    return (
        f"step time (s), {mode}; speeds: {cal_source}\n  {parts}  step {t['step']:.2f}\n"
        f"  bound by: {t['bound']}; learner {t['learn_tokens_per_s']:,.0f} tokens/s"
    )


def verdict(plan: Plan, fixes: list[str]) -> str:
    if plan.fits:
        return "fits"
    out = ["does NOT fit: " + "; ".join(plan.over)]
    if fixes:
        out.append("fixes that fit (each re-checked by the planner):")
        out += [f"  {f}" for f in fixes]
    else:
        out.append("no single change found that fits; a larger node or more nodes")
    return "\n".join(out)


def refusal(plan: Plan, fixes: list[str]) -> str:
    """`rlcore train`'s error: the actor, predicted vs available, the fixes, the override."""
    worst = next(a for a in plan.actors if a.name == plan.worst)
    terms = ", ".join(
        f"{k} {v / GIB:.1f}" for k, v in sorted(worst.terms.items(), key=lambda kv: -kv[1])[:3]
    )
    fix = " | ".join(fixes) if fixes else "none found (a larger node)"
    return (
        f"plan: this config does not fit: {'; '.join(plan.over)}. {worst.name} is predicted at "
        f"{worst.total / GIB:.1f} GiB ({terms} GiB). Fixes that fit: {fix}. "
        "`rlcore plan` shows every term; plan.force=true starts anyway"
    )


def to_json(plan: Plan, fixes: list[str]) -> dict[str, Any]:
    return {
        "hardware": {"name": plan.hardware.name, "ram_gib": plan.hardware.ram_gib},
        "model": plan.shape.name,
        "params": plan.shape.params,
        "prompt_tokens": plan.lens.prompt_tokens,
        "seq_tokens": plan.lens.seq_tokens,
        "actors": {
            a.name: {
                "on_gpu": a.on_gpu,
                "terms_mib": {k: round(v / MIB, 1) for k, v in a.terms.items()},
                "total_mib": round(a.total / MIB, 1),
                "host_mib": round(a.host_total / MIB, 1),
                "reserved_mib": round(a.reserved / MIB, 1),
            }
            for a in plan.actors
        },
        "node_mib": round(plan.node_total / MIB, 1),
        "time_s": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in plan.time.items()},
        "fits": plan.fits,
        "over": plan.over,
        "fixes": fixes,
    }


def predicted_peaks(plan: Plan) -> dict[str, float]:
    """Each actor's predicted peak in MiB by the keys of summary.json's peak_pss_mib."""
    out = {a.name: round(a.host_total / MIB, 1) for a in plan.actors if a.role != "ray"}
    out["total"] = round(sum(out.values()), 1)
    return out


def _medians(rows: list[dict[str, Any]], keys: list[str]) -> dict[str, float | None]:
    """Each key's median over the RL steps after the first (all of them if there is one)."""
    rl = [r for r in rows if r.get("stage") == "rl" and "time_step" in r]
    later = rl[1:] or rl
    out: dict[str, float | None] = {}
    for key in keys:
        vals = [float(r[key]) for r in later if key in r]
        out[key] = statistics.median(vals) if vals else None
    return out


def measured(run_dir: str | Path) -> dict[str, Any]:
    """{"peak_pss_mib": {...}, "time": {phase: median s}, "response_len", "learn_skipped_frac"}."""
    run = Path(run_dir)
    summary = json.loads((run / "summary.json").read_text())
    rows = read_metrics(run)
    keys = [f"time_{p}" for p in (*PHASES, "step")] + ["response_len", "learn_skipped_frac"]
    med = _medians(rows, keys)
    return {
        "peak_pss_mib": summary.get("peak_pss_mib") or {},
        "time": {p: med[f"time_{p}"] for p in (*PHASES, "step")},
        "response_len": med["response_len"],
        "learn_skipped_frac": med["learn_skipped_frac"],
        "prompt_tokens": int(summary.get("plan_prompt_tokens") or 0),  # what the run planned with
        "steps": sum(1 for r in rows if r.get("stage") == "rl" and "time_step" in r),
    }


def live(
    rows: list[dict[str, Any]], peaks: dict[str, float], predicted: dict[str, float]
) -> dict[str, Any]:
    """The end of a run, against its plan: each phase's median seconds, the phase that bounds the
    step, how busy each actor kind was (its phase over the step: the engines sample, the verifiers
    score, the learner ranks learn and send the weights) and each actor's measured peak over its
    prediction. Empty when the run made no RL step."""
    med = _medians(rows, [f"time_{p}" for p in (*PHASES, "step")])
    step = med["time_step"]
    if not step:
        return {}
    phase = {p: med[f"time_{p}"] or 0.0 for p in PHASES}
    busy = {
        "rollout": phase["rollout"] / step,
        "verifier": phase["verify"] / step,
        "learner": (phase["learn"] + phase["sync"]) / step,
    }
    ratio = {a: peaks[a] / p for a, p in predicted.items() if p and peaks.get(a)}
    return {
        "phase_s": {**phase, "step": step},
        "bottleneck": max(phase, key=lambda p: phase[p]),
        "busy_frac": {k: round(min(v, 1.0), 3) for k, v in busy.items()},
        "peak_over_predicted": {a: round(r, 3) for a, r in ratio.items()},
    }


def live_line(got: dict[str, Any]) -> str:
    """One log line of `live`'s result."""
    if not got:
        return "no RL step: no phase times"
    ph, busy = got["phase_s"], got["busy_frac"]
    text = (
        f"step {ph['step']:.2f} s, bound by {got['bottleneck']} "
        f"({ph[got['bottleneck']] / ph['step']:.0%}); busy: "
        + ", ".join(f"{k} {v:.2f}" for k, v in busy.items())
    )
    if got["peak_over_predicted"]:
        text += "; peak / predicted: " + ", ".join(
            f"{a} {r:.2f}" for a, r in got["peak_over_predicted"].items()
        )
    return text


def observed(cfg: Any, got: dict[str, Any]) -> dict[str, Any]:
    """plan.response_frac and plan.skip_frac as the run measured them, and the longest prompt the
    run planned with unless plan.prompt_tokens is given (overrides for its plan)."""
    out: dict[str, Any] = {}
    if got.get("prompt_tokens") and not cfg.plan.prompt_tokens:
        out["plan.prompt_tokens"] = got["prompt_tokens"]
    if got["response_len"] is not None:
        steps = cfg.rollout.max_tokens * cfg.rollout.max_turns
        out["plan.response_frac"] = min(max(got["response_len"], 1.0) / steps, 1.0)
    if got["learn_skipped_frac"] is not None:
        out["plan.skip_frac"] = min(got["learn_skipped_frac"], 0.99)
    return out


def compare_table(plan: Plan, got: dict[str, Any]) -> str:
    out = [f"{'':18}{'predicted':>11}{'measured':>11}{'ratio':>8}"]

    def row(name: str, pred: float, meas: float | None, unit: str) -> None:
        ratio = f"{pred / meas:.2f}" if meas else "-"
        m = f"{meas:.1f}" if meas is not None else "-"
        out.append(f"{name + ' ' + unit:18}{pred:>11.1f}{m:>11}{ratio:>8}")

    peaks = predicted_peaks(plan)
    for name, pred in peaks.items():
        row(name, pred, got["peak_pss_mib"].get(name), "MiB")
    for phase in (*PHASES, "step"):
        row(phase, plan.time[phase], got["time"].get(phase), "s")
    return "\n".join(out)


def plan_or_refuse(cfg: Any, prompt_tokens: int, specs: list[Any]) -> dict[str, float]:
    """Each actor's predicted peak (MiB) for prompts of up to `prompt_tokens`, for `rlcore train`.
    Refuses (ConfigError) a config whose prediction clearly exceeds this machine's memory, naming
    the actor and fixes the planner accepts, unless plan.force. {} on a cluster (its nodes are not
    this machine) and for a model the planner cannot describe (no reason not to run)."""
    try:
        plan = check_fits(cfg, prompt_tokens, config_model_verifiers(cfg, specs))
    except PlanError as e:
        log.warning("plan: skipped (%s)", e)
        return {}
    if plan is None:
        return {}
    if not plan.fits:
        message = refusal(plan, suggest_fixes(cfg, plan))
        if not cfg.plan.force:
            raise ConfigError(message)
        log.warning("%s (plan.force=true: starting anyway)", message)
    peaks = predicted_peaks(plan)
    log.info("plan: predicted peak memory (MiB) %s", peaks)
    return peaks
