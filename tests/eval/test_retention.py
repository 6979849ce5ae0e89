"""The run's capability table: start vs end per bucket, with verdicts from the 95% CIs."""

from rlcore.eval.retention import bucket_summary, bucket_table, verdict


def _bucket(p, lo, hi, trunc=0.0):
    return {"metrics": {"pass@1": p, "truncated@n": trunc}, "ci": {"pass@1": [lo, hi]}}


def test_verdicts_follow_the_confidence_intervals():
    start = {"pass@1": 0.30, "ci95": [0.22, 0.38]}
    assert verdict(start, {"pass@1": 0.50, "ci95": [0.41, 0.59]}) == "gained"
    assert verdict(start, {"pass@1": 0.45, "ci95": [0.36, 0.54]}) == "kept"  # CIs overlap
    assert verdict(start, {"pass@1": 0.23, "ci95": [0.15, 0.31]}) == "kept"  # above start's low
    assert verdict(start, {"pass@1": 0.21, "ci95": [0.13, 0.29]}) == "lost"


def test_summary_uses_the_first_and_last_evaluation():
    history = [
        {"step": 0, "buckets": {"reasoning": _bucket(0.2, 0.1, 0.3), "if": _bucket(0.5, 0.4, 0.6)}},
        {"step": 5, "buckets": {"reasoning": _bucket(0.3, 0.2, 0.4), "if": _bucket(0.1, 0.0, 0.2)}},
        {
            "step": 10,
            "buckets": {"reasoning": _bucket(0.6, 0.5, 0.7), "if": _bucket(0.45, 0.35, 0.55, 0.1)},
        },
    ]
    out = bucket_summary(history, trained=["reasoning", "tool"], k=[1])
    assert out["trained_buckets"] == ["reasoning"]  # "tool" was never evaluated
    r = out["buckets"]["reasoning"]
    assert r["start"] == {"pass@1": 0.2, "ci95": [0.1, 0.3], "truncated": 0.0}
    assert r["end"]["pass@1"] == 0.6 and r["verdict"] == "gained"
    assert (r["start_step"], r["end_step"]) == (0, 10)
    assert out["buckets"]["if"]["verdict"] == "kept"
    table = bucket_table(out)
    assert "| reasoning | yes | 0.200 [0.10, 0.30] | 0.600 [0.50, 0.70] | +0.400 |" in table
    assert "0.00 / 0.10 | kept |" in table


def test_a_cold_start_gets_rl_s_own_column_from_the_evaluation_after_sft():
    history = [
        {
            "step": 0,
            "buckets": {"reasoning": _bucket(0.05, 0.0, 0.1), "if": _bucket(0.5, 0.4, 0.6)},
        },
        {
            "step": 40,
            "buckets": {"reasoning": _bucket(0.6, 0.55, 0.65), "if": _bucket(0.5, 0.4, 0.6)},
        },
    ]
    after_sft = {"reasoning": _bucket(0.4, 0.35, 0.45)}  # only the benchmarks that run through RL
    out = bucket_summary(history, trained=["reasoning"], k=[1], rl_start=after_sft)
    r = out["buckets"]["reasoning"]
    assert r["rl_start"]["pass@1"] == 0.4 and abs(r["rl_change"] - 0.2) < 1e-9
    assert "rl_start" not in out["buckets"]["if"]
    table = bucket_table(out)
    assert "| RL start (after SFT) |" in table and "| RL's change |" in table
    assert (
        "| reasoning | yes | 0.050 [0.00, 0.10] | 0.400 [0.35, 0.45] | 0.600 [0.55, 0.65] | +0.550 | +0.200 |"
        in table
    )
    assert "| if |  | 0.500 [0.40, 0.60] |  | 0.500 [0.40, 0.60] | +0.000 |  |" in table
