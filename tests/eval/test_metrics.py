"""pass@k, maj@k and the bootstrap against naive enumeration and exact arithmetic."""

import math
from fractions import Fraction
from itertools import combinations

import pytest

from rlcore.eval.metrics import bootstrap_ci, macro, maj_at_k, pass_at_k, summarize


def brute_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (the first c correct) holding a correct one."""
    subsets = list(combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_enumeration_over_all_k_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_is_exactly_one_when_fewer_than_k_wrong():
    for n, c, k in [(4, 1, 4), (10, 8, 3), (10, 10, 1), (1024, 1000, 25), (5, 3, 3)]:
        assert n - c < k
        assert pass_at_k(n, c, k) == 1.0
    assert pass_at_k(10, 7, 3) < 1.0  # n - c == k: one all-wrong subset exists


def test_pass_at_k_finite_and_exact_for_n_1024():
    n = 1024
    for c, k in [(0, 1), (1, 1), (3, 512), (17, 100), (500, 1000), (1, 1024), (2, 1023)]:
        got = pass_at_k(n, c, k)
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        assert math.isfinite(got)
        assert got == pytest.approx(float(exact), rel=1e-9, abs=1e-12)
    assert pass_at_k(n, 0, 512) == 0.0


def test_pass_at_1_is_the_fraction_correct():
    assert pass_at_k(7, 3, 1) == pytest.approx(3 / 7)


def test_pass_at_k_rejects_impossible_counts():
    for n, c, k in [(4, 5, 1), (4, -1, 1), (4, 2, 0), (2, 1, 3)]:
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


def brute_maj(votes, k):
    def one(sub):
        counts = {}
        for a, _ in sub:
            if a is not None:
                counts[a] = counts.get(a, 0) + 1
        if not counts:
            return 0.0
        top = max(counts.values())
        win = [a for a, c in counts.items() if c == top]
        right = {a for a, ok in sub if ok and a is not None}
        return sum(w in right for w in win) / len(win)

    subs = list(combinations(votes, k))
    return sum(one(s) for s in subs) / len(subs)


def test_maj_at_k_against_enumeration_with_ties_and_abstentions():
    votes = [("4", True), ("5", False), ("5", False), (None, False), ("4", True), ("6", False)]
    for k in range(1, len(votes) + 1):
        assert maj_at_k(votes, k) == pytest.approx(brute_maj(votes, k))
    # maj@1 is the fraction of samples whose answer is right
    assert maj_at_k(votes, 1) == pytest.approx(2 / 6)
    # a majority of one wrong answer beats a correct minority
    assert maj_at_k([("1", False)] * 3 + [("2", True)], 4) == 0.0


def test_maj_at_k_sampled_when_too_many_subsets_is_seeded():
    votes = [(str(i % 3), i % 3 == 0) for i in range(40)]
    a, b = maj_at_k(votes, 20, seed=1), maj_at_k(votes, 20, seed=1)
    assert a == b and 0.0 <= a <= 1.0


def test_bootstrap_ci_brackets_the_mean_and_is_deterministic():
    vals = [0, 1, 1, 0, 1, 1, 1, 0, 1, 1]
    lo, hi = bootstrap_ci([vals], reps=2000, seed=3)
    assert lo <= 0.7 <= hi and hi - lo > 0.2
    assert bootstrap_ci([vals], reps=2000, seed=3) == (lo, hi)
    assert bootstrap_ci([[0.5] * 5]) == (0.5, 0.5)


def test_summarize_and_macro_average_of_benchmarks():
    p = lambda c, n=4: {"n": n, "c": c, "rewards": [1.0] * c + [0.0] * (n - c)}  # noqa: E731
    a = summarize([p(4), p(0)], [1, 2], vote=False, reps=100)
    b = summarize([p(1)] * 3, [1, 2], vote=False, reps=100)
    assert a["metrics"]["pass@1"] == pytest.approx(0.5)
    assert a["metrics"]["pass@2"] == pytest.approx(0.5)
    assert b["metrics"]["pass@2"] == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    m = macro([a, b], reps=100)
    assert m["metrics"]["pass@1"] == pytest.approx((0.5 + 0.25) / 2)
    assert m["benchmarks"] == 2
