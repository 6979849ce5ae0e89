"""FormatVerifier: think-tag structure and a single final \\boxed{} answer, with format tricks."""

import pytest
from rlcore.verifiers import Sample
from rlcore.verifiers.format import FormatConfig, FormatVerifier


def _run(response: str, **cfg: object):
    v = FormatVerifier(FormatConfig(**cfg))  # type: ignore[arg-type]
    return v.verify(Sample(prompt="q", response=response))


GOOD = [
    "<think>2+2 is 4</think>\nThe answer is \\boxed{4}",
    "  <think>reason</think>\\boxed{4}\n",
    "<think>r</think> $\\boxed{4}$.",
    "<think>r</think> \\[\\boxed{\\frac{1}{2}}\\]",
    "<think>try \\boxed{3}? no</think> \\boxed{4}",  # boxes inside the reasoning are allowed
    "<think>r</think> \\boxed{\\{1, 2\\}}",  # escaped braces inside the box
    "<think>r</think> \\boxed{\\boxed{4}}",  # one top-level box
    "<think>\u601d\u8003</think> \u7b54\u6848 \\boxed{\u00bd}",  # unicode
]


@pytest.mark.parametrize("response", GOOD)
def test_good_format(response: str) -> None:
    r = _run(response)
    assert (r.reward, r.correct, r.details["ok"]) == (1.0, None, True), r.details


BAD = [  # (response, a failed check it must report)
    ("", "think_tags"),
    ("\\boxed{4}", "think_tags"),
    ("<think>never closed \\boxed{4}", "think_tags"),  # unclosed think
    ("</think>r<think> \\boxed{4}", "think_order"),
    ("<think>a</think><think>b</think> \\boxed{4}", "think_tags"),  # two think blocks
    ("<think><think>a</think></think> \\boxed{4}", "think_tags"),  # nested
    ("<think>   </think> \\boxed{4}", "think_empty"),
    ("preamble <think>r</think> \\boxed{4}", "text_before_think"),
    ("<think>r</think>", "answer_empty"),
    ("<think>r</think> the answer is 4", "boxed_count"),
    ("<think>r</think> \\boxed{3} or \\boxed{4}", "boxed_count"),  # two boxes
    ("<think>r</think> \\boxed{4} because reasons", "text_after_box"),
    ("<think>r</think> \\boxed{4}. \\boxed", "boxed_count"),
    ("<think>r</think> \\boxed{4", "boxed_unclosed"),
    ("<think>r</think> \\boxed{}", "boxed_empty"),
    ("<think>r</think> \\boxed{4}</think>", "think_tags"),  # a stray close after the answer
]


@pytest.mark.parametrize(("response", "check"), BAD)
def test_bad_format(response: str, check: str) -> None:
    r = _run(response)
    assert r.reward == 0.0 and r.correct is None and r.details["ok"] is False
    assert check in r.details["failed"], r.details
    assert r.details["reason"]


def test_think_optional_and_forbidden() -> None:
    assert _run("\\boxed{4}", think="optional").reward == 1.0
    assert _run("<think>r</think>\\boxed{4}", think="optional").reward == 1.0
    assert _run("<think>r \\boxed{4}", think="optional").reward == 0.0  # present but broken
    assert _run("\\boxed{4}", think="forbidden").reward == 1.0
    assert (
        "think_present" in _run("<think>r</think>\\boxed{4}", think="forbidden").details["failed"]
    )


def test_think_opened_in_prompt() -> None:
    assert _run("reasoning</think> \\boxed{4}", think_opened_in_prompt=True).reward == 1.0
    assert _run("<think>r</think> \\boxed{4}", think_opened_in_prompt=True).reward == 0.0


def test_trailing_text_and_rewards_configurable() -> None:
    assert _run("<think>r</think> \\boxed{4} done", max_trailing_chars=10).reward == 1.0
    assert _run("<think>r</think> 4", require_boxed=False).reward == 1.0
    assert _run("bad", reward_ok=0.5, reward_fail=-1.0).reward == -1.0
    assert _run("<think>r</think>\\boxed{1}", reward_ok=0.5).reward == 0.5
