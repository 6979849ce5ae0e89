"""Arena (`rlcore eval --compare`): the length-controlled win rate, the summary's counts, greedy
sampling settings, bad arguments (exit 2), and (slow) SmolLM2 against tiny-base judged by SmolLM2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rlcore.launch.eval import main

from rlcore.eval.compare import greedy, length_controlled, summarize
from rlcore.eval.suite import load_suite


@pytest.fixture(autouse=True)
def _thread_vars_restored(monkeypatch):
    """main() sets OMP_NUM_THREADS & co. for its engine (the CLI's process is its own); called
    in-process that would leak into later tests' Ray actors, so they are set here and restored."""
    import os

    from rlcore.threads import THREAD_VARS

    for var in THREAD_VARS:
        monkeypatch.setenv(var, os.environ.get(var, str(os.cpu_count() or 1)))


def smollm2_or_skip() -> str:
    from rlcore.models.smollm2 import smollm2_path

    try:
        return str(smollm2_path())  # converted once, then cached
    except (ModuleNotFoundError, FileNotFoundError) as e:
        pytest.skip(f"SmolLM2 is not installed: {e}")


def _length_only(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A is longer on average and wins only through length: P(win) = sigmoid(3 tanh(d / sd))."""
    rng = np.random.default_rng(seed)
    d = rng.normal(80.0, 100.0, n)
    p = 1.0 / (1.0 + np.exp(-3.0 * np.tanh(d / d.std())))
    return (rng.random(n) < p).astype(np.float64), d


def test_length_controlled_win_rate_discounts_wins_explained_by_length():
    for seed in range(3):
        y, d = _length_only(seed)
        lc = length_controlled(y, d)
        assert y.mean() > 0.68  # the raw win rate credits length
        assert abs(lc - 0.5) < 0.1 < abs(y.mean() - 0.5)


def test_length_controlled_equals_the_raw_rate_without_a_length_effect():
    rng = np.random.default_rng(0)
    d = rng.normal(0.0, 100.0, 400)
    y = (rng.random(400) < 0.7).astype(np.float64)  # independent of length
    assert abs(length_controlled(y, d) - y.mean()) < 0.02
    same = np.array([1.0, 1.0, 0.5, 0.0])  # no length difference at all: the mean
    assert length_controlled(same, np.zeros(4)) == pytest.approx(0.625, abs=1e-6)
    assert length_controlled(np.full(6, 0.5), np.arange(6.0)) == pytest.approx(0.5, abs=1e-6)


def _rec(outcome, verdicts=("A", "B"), chars=(10, 10)):
    score = {"A": 1.0, "B": 0.0, "tie": 0.5}
    ab = {"verdict": verdicts[0], "score_a": score.get(verdicts[0])}
    ba = {
        "verdict": verdicts[1],
        "score_a": None if verdicts[1] is None else 1 - score[verdicts[1]],
    }
    return {
        "outcome": outcome,
        "consistent": None if outcome is None else ab["score_a"] == ba["score_a"],
        "judge": {"ab": ab, "ba": ba},
        "lengths": {"chars_a": chars[0], "chars_b": chars[1]},
    }


def test_summary_counts_rates_and_position_bias():
    records = [
        _rec(1.0),  # A won in both orders
        _rec(0.5, ("A", "A")),  # the judge picked the first position twice: a tie, inconsistent
        _rec(0.0, ("B", "A")),
        _rec(0.75, ("A", "tie")),
        _rec(None, ("A", None)),  # one order did not parse
    ]
    s = summarize(records, reps=200)
    assert s["counts"] == {"pairs": 5, "win": 2, "tie": 1, "loss": 1, "error": 1}
    r = s["rates"]
    assert r["win_rate"] == pytest.approx((1 + 0.5 + 0 + 0.75) / 4)
    assert (r["win"], r["tie"], r["loss"]) == (0.5, 0.25, 0.25)
    assert r["inconsistent"] == 0.5  # the A/A pair and the A/tie pair
    assert r["first_position"] == pytest.approx(5 / 8)  # "A" in 5 of the 8 judged orders
    lo, hi = s["ci"]["win_rate"]
    assert 0.0 <= lo <= r["win_rate"] <= hi <= 1.0
    assert summarize([_rec(None, (None, None))], reps=10)["counts"]["error"] == 1


def _suite(tmp_path, **extra) -> str:
    lines = [
        "name: arena",
        "engine: hf",
        "limit: 3",
        "bootstrap: 200",
        "sampling: {temperature: 0.9, max_tokens: 12}",
        "benchmarks:",
        "  - {name: chat, loader: chat, bucket: chat, verifier: similarity,"
        " sampling: {temperature: 1.0, max_tokens: 12}}",
        *extra.get("lines", []),
    ]
    path = tmp_path / "arena.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_compare_samples_greedily(tmp_path):
    cfg = greedy(load_suite(_suite(tmp_path)))
    assert (cfg.n, cfg.k, cfg.sampling.temperature, cfg.sampling.top_p) == (1, [1], 0.0, 1.0)
    (bench,) = cfg.benchmarks
    assert bench.sampling.temperature is None and bench.sampling.max_tokens == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--compare", "tiny-base"], "exactly 2 checkpoints, got 1"),
        (["--compare", "a", "b", "c"], "exactly 2 checkpoints, got 3"),
        (["--compare", "a", "b", "--k", "1,2"], "drop --k"),
        (["--compare", "a", "b", "verifier_options.judge.colour=red"], "unknown key(s) ['colour']"),
        (["--compare", "a", "b", "verifier_options.judge.mode=pointwise"], "needs pairwise"),
        (["--compare", "a", "b", "verifier_options.judge.max_score=0"], "max_score"),
        (["--compare", "no/such/model", "tiny-base"], "no/such/model"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, capsys, args, message):
    if "no/such" in args[1] or "max_score" in args[-1]:
        smollm2_or_skip()  # the default judge resolves first
    assert main([*args, "--suite", _suite(tmp_path), "-q"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_smollm2_against_tiny_base_judged_by_smollm2(tmp_path, capsys):
    smollm2_or_skip()
    pytest.importorskip("vllm")
    out = tmp_path / "out"
    argv = ["--compare", "smollm2-135m-instruct", "tiny-base", "--suite", _suite(tmp_path)]
    assert main([*argv, "--out", str(out), "verifier_options.judge.max_tokens=8", "-q"]) == 0
    records = [json.loads(line) for line in (out / "compare.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["chat-0", "chat-1", "chat-2"]
    for r in records:
        assert r["response_a"] != r["response_b"]
        for order in ("ab", "ba"):
            j = r["judge"][order]
            assert isinstance(j["text"], str) and j["text"]
            assert (j["verdict"] is None) == (j["error"] is not None)
        assert (r["outcome"] is None) == (r["error"] is not None)
        assert r["lengths"]["chars_a"] == len(r["response_a"]) and r["lengths"]["tokens_b"] <= 12
    summary = json.loads((out / "compare.json").read_text())
    c = summary["counts"]
    assert c["pairs"] == 3 == c["win"] + c["tie"] + c["loss"] + c["error"]
    assert summary["benchmarks"]["chat"]["counts"] == c and summary["unpaired"] == []
    assert (
        summary["a"]["label"] == "smollm2-135m-instruct" and summary["judge"]["mode"] == "pairwise"
    )
    printed = capsys.readouterr().out
    assert "| all | 3 |" in printed and "A = smollm2-135m-instruct vs B = tiny-base" in printed
