"""MathVerifier: extraction of the final answer and equivalence, adversarial cases included."""

import time

import pytest
from rlcore.verifiers import Sample
from rlcore.verifiers.math import MathConfig, MathVerifier, last_boxed, pathological
from rlcore.verifiers.pool import WorkerPool


def _run(response: str, answer: object, **cfg: object):
    v = MathVerifier(MathConfig(**cfg))  # type: ignore[arg-type]
    return v.verify(Sample(prompt="q", response=response, reference={"answer": answer}))


EQUIVALENT = [  # (response, reference answer)
    (r"So \boxed{\frac{1}{2}}", "0.5"),
    (r"\boxed{0.5}", r"\frac{1}{2}"),
    (r"\boxed{\dfrac{3}{4}}", "0.75"),
    (r"\boxed{x=2}", "2"),
    (r"\boxed{2}", "x = 2"),
    (r"\boxed{\{1,2\}}", r"\{2,1\}"),
    (r"\boxed{(1,2]}", "(1, 2]"),
    (r"\boxed{10\%}", "0.1"),
    (r"\boxed{\frac{\sqrt{3}}{2}}", r"\sqrt{3}/2"),
    (r"\boxed{1,000}", "1000"),
    (r"$\boxed{42}$.", 42),  # numeric reference
    (r"\boxed{A}", r"\text{(A)}"),
    (r"\fbox{7}", "7"),
    (r"\boxed 7", "7"),
    (r"\boxed{\boxed{3}}", "3"),  # nested box unwrapped
    (r"\boxed{1} no wait \boxed{2}", "2"),  # the last box counts
    (r"\boxed{2^{2^{n}}}", "2^{2^n}"),  # symbolic towers are fine
    ("\\boxed{\u22123}", "-3"),  # unicode minus
    ("\\boxed{\u00bd}", "0.5"),  # vulgar fraction
    ("\\boxed{\uff15}", "5"),  # full-width digit
    (r"\boxed{7}", r"\boxed{7}"),  # boxed reference unwrapped
    (r"\boxed{4}. (I used \boxed.)", "4"),  # a bare mention of \boxed is no box
]

ASCII_CONSTANTS = [  # (response, reference): constants spelled in plain ASCII; * failed before
    (r"\boxed{pi}", r"\pi"),  # *
    (r"\boxed{Pi}", "\u03c0"),  # *
    (r"\boxed{2pi}", r"2\pi"),  # *
    (r"\boxed{pi/2}", r"\frac{\pi}{2}"),  # *
    (r"\boxed{x = pi}", r"\pi"),  # *
    (r"\boxed{\pi}", "2*pi/2"),  # * the reference in ASCII
    (r"\boxed{oo}", r"\infty"),  # *
    (r"\boxed{Infinity}", r"\infty"),  # *
    (r"\boxed{\text{infinity}}", r"\infty"),  # *
    (r"\boxed{(-oo, 2]}", r"(-\infty, 2]"),  # *
    (r"\boxed{sqrt2}", r"\sqrt{2}"),  # *
    (r"\boxed{3sqrt{2}}", r"3\sqrt{2}"),  # *
    (r"\boxed{exp(1)}", "e"),  # *
    (r"\boxed{e}", "e"),
    (r"\boxed{inf}", r"\infty"),
    (r"\boxed{[1, infinity)}", r"[1,\infty)"),
    (r"\boxed{sqrt(2)/2}", r"\frac{\sqrt{2}}{2}"),
    ("\\boxed{\u221a23}", r"\sqrt{23}"),  # * the Unicode root too: it became \sqrt23 = 3*sqrt(2)
    ("\\boxed{2\u221a3}", r"2\sqrt{3}"),
]


@pytest.mark.parametrize(("response", "answer"), ASCII_CONSTANTS)
def test_ascii_constants_are_the_constants(response: str, answer: object) -> None:
    r = _run(response, answer)
    assert (r.reward, r.correct, r.error) == (1.0, True, None), r


NUMERIC_REFERENCES = [  # (response, numeric reference, correct); str(1e-05) is "1e-05", read as 1*e - 5
    (r"\boxed{0.00001}", 1e-05, True),  # * failed
    (r"\boxed{e-5}", 1e-05, False),  # * passed
    (r"\boxed{10^{16}}", 1e16, True),  # * failed
    (r"\boxed{0.5}", 0.5, True),
    (r"\boxed{\infty}", float("inf"), True),
    (r"\boxed{-\infty}", float("inf"), False),
]


@pytest.mark.parametrize(("response", "answer", "correct"), NUMERIC_REFERENCES)
def test_numeric_references_keep_their_value(response: str, answer: float, correct: bool) -> None:
    assert _run(response, answer).correct is correct


@pytest.mark.parametrize(("response", "answer"), EQUIVALENT)
def test_equivalent_answers_are_correct(response: str, answer: object) -> None:
    r = _run(response, answer)
    assert (r.reward, r.correct, r.error) == (1.0, True, None), r


WRONG = [  # (response, reference answer, reason contains)
    (r"\boxed{1} no wait \boxed{2}", "1", "not equal"),  # the first box does not count
    ("The answer is 5.", "5", "no final answer"),  # stated mid-text, not boxed
    ("5", "5", "no final answer"),  # the whole text is never the answer
    ("", "5", "no final answer"),  # empty response
    (r"\boxed{}", "5", "empty"),
    (r"\boxed{5", "5", "no final answer"),  # unclosed
    (r"\boxed{4} then \boxed{5", "4", "never closed"),  # * the answer changed, cut off: not 4
    (r"\boxed{ \boxed{4}", "4", "never closed"),  # *
    (r"\boxed{4} and finally \boxed", "4", "never closed"),  # *
    (r"\boxed{pie}", r"\pi", "not equal"),  # letters around a constant's name: not the constant
    (r"\boxed{api}", r"a\pi", "not equal"),
    (r"\boxed{spin}", r"s\pi n", "not equal"),
    (r"\boxed{sqrt23}", r"3\sqrt{2}", "not equal"),  # not LaTeX's \sqrt23 = 3*sqrt(2)
    ("\\boxed{\u221a23}", r"3\sqrt{2}", "not equal"),  # * passed
    (r"\boxed{pi}", r"\infty", "not equal"),
    (r"\boxed{-oo}", r"\infty", "not equal"),
    (r"\boxed{\text{oops}}", r"\text{ops}", "not equal"),
    (r"\boxed{1, 2, 3}", "2", "not equal"),  # hedging with a list
    (r"\boxed{2 \text{ or } 3}", "2", "not equal"),
    (r"\boxed{0.333}", "1/3", "not equal"),
    (r"\boxed{\pi}", "3.14159", "not equal"),
    (r"\boxed{9^{9^{9^9}}}", "5", "power tower"),
    (r"\boxed{10^{10^{10}}+1}", "1", "power tower"),
    (r"\boxed{9**9**9}", "1", "power tower"),
    (r"\boxed{1000000000!}", "1", "factorial"),
    (r"\boxed{2^{123456789}}", "1", "exponent"),
    ("\\boxed{" + "1" * 5000 + "}", "1", "longer than"),
    ("\\boxed{\U0001f600}", "1", ""),  # emoji
]


@pytest.mark.parametrize(("response", "answer", "reason"), WRONG)
def test_wrong_or_missing_answers_get_zero(response: str, answer: str, reason: str) -> None:
    t0 = time.monotonic()
    r = _run(response, answer)
    assert r.reward == 0.0 and r.correct is False, r
    assert reason in r.details.get("reason", ""), r
    assert time.monotonic() - t0 < 30  # a hang would be caught by the pool; here it must not hang


def test_pathological_identical_strings_still_match() -> None:
    assert _run(r"\boxed{9^{9^{9^9}}}", "9^{9^{9^9}}").correct is True


def test_answer_pattern_used_only_without_box() -> None:
    cfg = {"answer_pattern": r"Answer:\s*([^\n]+)"}
    assert _run("Answer: 3\n\\boxed{4", "3", **cfg).correct is False  # * a cut-off box: no fallback
    assert _run("Answer: 1/2", "0.5", **cfg).correct is True
    assert _run("Answer: 3\n\\boxed{4}", "4", **cfg).correct is True  # box wins
    assert _run("Answer: 3", "3", use_boxed=False, answer_pattern=r"Answer:\s*(\d+)").correct
    assert _run(r"\boxed{3}", "3", use_boxed=False).details["extracted"] is None


def test_configured_rewards() -> None:
    cfg = {"reward_correct": 2.0, "reward_incorrect": -1.0, "reward_no_answer": -2.0}
    assert _run(r"\boxed{1}", "1", **cfg).reward == 2.0
    assert _run(r"\boxed{2}", "1", **cfg).reward == -1.0
    assert _run("none", "1", **cfg).reward == -2.0


def test_missing_reference_is_an_error_not_a_silent_zero() -> None:
    r = MathVerifier().verify(Sample(prompt="q", response=r"\boxed{1}", reference={}))
    assert r.error is not None and r.error.startswith("bad_reference")


def test_last_boxed_handles_nesting_and_escapes() -> None:
    assert last_boxed(r"\boxed{\frac{1}{\sqrt{2}}}") == r"\frac{1}{\sqrt{2}}"
    assert last_boxed(r"\boxed{\{1,2\}}") == r"\{1,2\}"
    assert last_boxed(r"\boxed{x \boxed{5} + 1}") == r"x \boxed{5} + 1"
    assert last_boxed(r"\boxedx{3}") is None
    assert last_boxed(r"\boxed{4} then \boxed{5") is None  # * was "4"
    assert pathological("2^{2^n}", 100) is None


def test_sympy_hang_is_bounded_in_the_pool() -> None:
    # Not caught by the string guard: math-verify's own alarm must fire on the worker's main
    # thread (no worker restart), or the pool's timeout must - either way it returns.
    hard = Sample(
        prompt="q", response=r"\boxed{\binom{10^{9}}{5 \cdot 10^8}}", reference={"answer": "3"}
    )
    easy = Sample(prompt="q", response=r"\boxed{3}", reference={"answer": "3"})
    cfg = MathConfig(timeout_s=8.0, compare_timeout_s=1, parse_timeout_s=1)
    with WorkerPool({"math": MathVerifier(cfg)}, workers=1) as pool:
        t0 = time.monotonic()
        hard_r, easy_r = pool.score([("math", hard), ("math", easy)])
        assert time.monotonic() - t0 < 8.0 + 10.0
        assert hard_r.reward == 0.0 and hard_r.correct is not True
        assert easy_r.correct is True
        assert pool.restarts == 0  # the alarm worked: main thread of the worker
