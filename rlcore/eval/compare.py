"""Arena: two checkpoints answer the same prompts greedily, an LLM judge compares each pair in both
orders, and the result is a win rate with a bootstrap CI and a length-controlled win rate.

    summary = run_compare(load_suite("smollm2", ["only=[chat]"]), "runs/X/checkpoints/step_60",
                          "smollm2-135m-instruct")        # `rlcore eval --compare A B` calls this

Prompts are the suite's selected benchmarks (`only=[...]`, `limit=N`), sampled once per model with
temperature 0 through the sweep's engine and sample cache (sweep.py: a rerun samples nothing). The
judge is `rlcore.verifiers.judge.JudgeVerifier` in pairwise mode, configured by the suite's
`verifier_options.judge` (default model smollm2-135m-instruct, resolved here); every pair is judged
with A's response first and again with B's first. A pair's outcome for A is the mean of the two
verdicts (win 1, tie 0.5, loss 0): outcome > 0.5 counts as a win, 0.5 a tie, < 0.5 a loss. A pair
whose judge output does not parse in either order is an error, reported and left out of the rates.

Length-controlled win rate (AlpacaEval-LC, simplified): judges prefer longer answers, so a model can
win by talking more. We fit a logistic regression of the outcome (a soft label in [0, 1]) on
x = tanh(d / sd(d)), d = A's response length minus B's in characters, by Newton's method with a
small L2 penalty on the slope (it keeps the fit finite when length separates wins from losses),
and report sigmoid(intercept): the predicted win rate when both answers have the same length. When
wins are explained by length alone it moves toward 0.5; with no length effect it equals the raw win
rate. Unlike AlpacaEval it has no per-instruction difficulty term and compares two models only.

Output (OUT = out_dir, default runs/compare-<A>-vs-<B>):
    OUT/compare.jsonl   per prompt: prompt, both responses, both orders' judge text and verdicts,
                        outcome, lengths
    OUT/compare.json    counts, rates, CIs, per benchmark, the judge's config
    OUT/cache/          both models' samples (cache.py)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from rlcore.eval.metrics import bootstrap_ci
from rlcore.eval.suite import SuiteConfig, SuiteError
from rlcore.eval.sweep import Resources, draw_target, write_json
from rlcore.eval.targets import Target, resolve_targets

log = logging.getLogger(__name__)

DEFAULT_JUDGE = "smollm2-135m-instruct"
LC_RIDGE = 0.1  # L2 penalty on the length slope; the log-loss is a sum, so it fades with n


def greedy(cfg: SuiteConfig) -> SuiteConfig:
    """The suite sampled once, temperature 0 (per-benchmark max_tokens kept)."""
    flat = {"temperature": None, "top_p": None, "top_k": None}
    benches = [
        dataclasses.replace(b, sampling=dataclasses.replace(b.sampling, **flat))
        for b in cfg.benchmarks
    ]
    sampling = dataclasses.replace(cfg.sampling, temperature=0.0, top_p=1.0, top_k=-1)
    return dataclasses.replace(cfg, n=1, k=[1], sampling=sampling, benchmarks=benches)


def judge_config(cfg: SuiteConfig) -> Any:
    """The pairwise JudgeConfig from `verifier_options.judge`; SuiteError names a bad key."""
    from rlcore.rundir import resolve_model_path
    from rlcore.verifiers.judge import JudgeConfig

    opts = dict(cfg.verifier_options.get("judge") or {})
    if opts.get("mode", "pairwise") != "pairwise":
        raise SuiteError("verifier_options.judge.mode: --compare needs pairwise")
    known = {f.name for f in dataclasses.fields(JudgeConfig)}
    if set(opts) - known:
        raise SuiteError(f"verifier_options.judge: unknown key(s) {sorted(set(opts) - known)}")
    name = str(opts.get("model_path") or DEFAULT_JUDGE)
    try:
        opts["model_path"] = resolve_model_path(name)
        return JudgeConfig(**(opts | {"mode": "pairwise"}))
    except (FileNotFoundError, ValueError) as e:
        raise SuiteError(f"verifier_options.judge: {e}") from None


def single_target(arg: str) -> Target:
    found = resolve_targets(arg, base=False)
    if len(found) != 1:
        raise SuiteError(
            f"{arg}: names {len(found)} checkpoints (a run directory); --compare takes two single "
            "checkpoints or models"
        )
    return found[0]


def responses(
    cfg: SuiteConfig, target: Target, out: Path, res: Resources
) -> dict[tuple[str, str], dict]:
    """(benchmark, item id) -> the item and this model's greedy response, sampled or cached."""
    benches, ctx = draw_target(cfg, target, out / "cache", res)
    res.close_engine()
    got = {}
    for b in benches:
        for p, key in zip(b.prep.problems, b.keys, strict=True):
            s = b.cache.samples[(key, 0)]
            got[(b.prep.bench.name, str(p.item["id"]))] = {
                "item": p.item,
                "text": s["text"],
                "tokens": len(s["ids"]),
                "finish": s["finish"],
            }
    log.info("%s: %d responses (%s)", target.label, len(got), ctx["model_path"])
    return got


def length_controlled(outcomes: np.ndarray, d: np.ndarray, steps: int = 30) -> float:
    """sigmoid(b0) of the logistic fit outcome ~ b0 + b1 * tanh(d / sd(d)) (module docstring).
    outcomes: [N] in [0, 1]; d: [N] length differences."""
    sd = d.std()
    x = np.tanh(d / sd) if sd > 0 else np.zeros_like(d, dtype=np.float64)
    X = np.stack([np.ones_like(x), x], axis=1)  # [N, 2]
    penalty = np.diag([0.0, LC_RIDGE])
    beta = np.zeros(2)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(X @ beta)))
        grad = X.T @ (p - outcomes) + penalty @ beta
        hess = (X * (p * (1 - p))[:, None]).T @ X + penalty + 1e-9 * np.eye(2)
        beta -= np.linalg.solve(hess, grad)
    return float(1.0 / (1.0 + np.exp(-beta[0])))


def summarize(records: list[dict[str, Any]], reps: int) -> dict[str, Any]:
    """Counts, rates with bootstrap 95% CIs over prompts, and the length-controlled win rate."""
    judged = [r for r in records if r["outcome"] is not None]
    y = np.array([r["outcome"] for r in judged], dtype=np.float64)
    d = np.array([r["lengths"]["chars_a"] - r["lengths"]["chars_b"] for r in judged], float)
    counts = {
        "pairs": len(records),
        "win": int((y > 0.5).sum()),
        "tie": int((y == 0.5).sum()),
        "loss": int((y < 0.5).sum()),
        "error": len(records) - len(judged),
    }
    out: dict[str, Any] = {"counts": counts}
    if not judged:
        return out
    orders = [o for r in judged for o in (r["judge"]["ab"], r["judge"]["ba"])]
    rng = np.random.default_rng(0)
    lc = [length_controlled(y[i], d[i]) for i in rng.integers(0, len(y), (reps, len(y)))]
    out["rates"] = {
        "win_rate": float(y.mean()),  # ties count half
        "win": counts["win"] / len(y),
        "tie": counts["tie"] / len(y),
        "loss": counts["loss"] / len(y),
        "lc_win_rate": length_controlled(y, d),
        "inconsistent": sum(not r["consistent"] for r in judged) / len(y),
        "first_position": sum(o["verdict"] == "A" for o in orders) / len(orders),
    }
    out["ci"] = {
        "win_rate": list(bootstrap_ci([y.tolist()], reps)),
        "lc_win_rate": [float(np.quantile(lc, 0.025)), float(np.quantile(lc, 0.975))]
        if reps
        else [float("nan")] * 2,
    }
    out["mean_chars"] = {
        "a": float(np.mean([r["lengths"]["chars_a"] for r in judged])),
        "b": float(np.mean([r["lengths"]["chars_b"] for r in judged])),
    }
    return out


def run_compare(cfg: SuiteConfig, a: str, b: str) -> dict[str, Any]:
    """Samples A and B, judges every shared prompt in both orders, writes OUT (module docstring)."""
    t0 = time.time()
    judge_cfg = judge_config(cfg)  # bad judge settings fail before any sampling
    cfg = greedy(cfg)
    ta, tb = single_target(a), single_target(b)
    if ta.label == tb.label:
        ta = dataclasses.replace(ta, label=f"A-{ta.label}")
        tb = dataclasses.replace(tb, label=f"B-{tb.label}")
    out = Path(cfg.out_dir or f"runs/compare-{ta.label}-vs-{tb.label}"[:120])
    res = Resources(cfg)
    try:
        got_a = responses(cfg, ta, out, res)
        got_b = responses(cfg, tb, out, res)
    finally:
        res.close()
    keys = [k for k in got_a if k in got_b and got_a[k]["item"] == got_b[k]["item"]]
    unpaired = sorted(f"{bench}/{i}" for bench, i in (set(got_a) | set(got_b)) - set(keys))
    if not keys:
        raise SuiteError("no prompt was sampled for both models (see the skipped prompts above)")

    from rlcore.verifiers.judge import JudgeVerifier

    judge = JudgeVerifier(judge_cfg)
    tj = time.time()
    items = [got_a[k]["item"] for k in keys]
    verdicts = judge.compare(
        [it["prompt"] for it in items],
        [got_a[k]["text"] for k in keys],
        [got_b[k]["text"] for k in keys],
        [it.get("reference", {}) for it in items],
    )
    judge_s = time.time() - tj
    records = [_record(k, got_a[k], got_b[k], v) for k, v in zip(keys, verdicts, strict=True)]
    out.mkdir(parents=True, exist_ok=True)
    with (out / "compare.jsonl").open("w") as f:
        f.writelines(json.dumps(r, default=str) + "\n" for r in records)
    names = sorted({r["benchmark"] for r in records})
    summary = {
        "suite": cfg.name,
        "a": {"label": ta.label, "model_path": ta.model_path},
        "b": {"label": tb.label, "model_path": tb.model_path},
        **summarize(records, cfg.bootstrap),
        "benchmarks": {
            n: summarize([r for r in records if r["benchmark"] == n], cfg.bootstrap) for n in names
        },
        "unpaired": unpaired,
        "judge": dataclasses.asdict(judge_cfg),
        "judge_s": round(judge_s, 1),  # the engine's start included
        "judge_load_s": round(judge.generator.load_s, 1),
        "wall_s": round(time.time() - t0, 1),
        "out_dir": str(out),
    }
    write_json(out / "compare.json", summary)
    del judge  # the engine's memory
    return summary


def _record(key: tuple[str, str], ra: dict, rb: dict, v: dict) -> dict[str, Any]:
    """One line of compare.jsonl."""
    orders = {
        o: {k: v[o][k] for k in ("text", "verdict", "score_a", "error")} for o in ("ab", "ba")
    }
    return {
        "benchmark": key[0],
        "id": key[1],
        "prompt": ra["item"]["prompt"],
        "response_a": ra["text"],
        "response_b": rb["text"],
        "finish_a": ra["finish"],
        "finish_b": rb["finish"],
        "lengths": {
            "chars_a": len(ra["text"]),
            "chars_b": len(rb["text"]),
            "tokens_a": ra["tokens"],
            "tokens_b": rb["tokens"],
        },
        "judge": orders,
        "outcome": v["outcome"],
        "consistent": v["consistent"],
        "error": v["error"],
    }


def compare_table(summary: dict[str, Any]) -> str:
    """Markdown: one row per benchmark and one for all, A's results against B."""
    head = (
        "| benchmark | pairs | win | tie | loss | error | win rate [95% CI] | LC win rate "
        "[95% CI] | inconsistent | first position |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for name, s in [*summary["benchmarks"].items(), ("all", summary)]:
        c, r, ci = s["counts"], s.get("rates"), s.get("ci", {})
        cells = [name, *(str(c[k]) for k in ("pairs", "win", "tie", "loss", "error"))]
        if r:
            cells += [
                f"{r['win_rate']:.3f} [{ci['win_rate'][0]:.2f}, {ci['win_rate'][1]:.2f}]",
                f"{r['lc_win_rate']:.3f} [{ci['lc_win_rate'][0]:.2f}, {ci['lc_win_rate'][1]:.2f}]",
                f"{r['inconsistent']:.2f}",
                f"{r['first_position']:.2f}",
            ]
        else:
            cells += ["-"] * 4
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
