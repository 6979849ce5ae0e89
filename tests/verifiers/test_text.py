"""One grammar for model output (verifiers/text.py): the <think> rule every verifier and the
multi-turn rollout share, and the one rule for an unclosed <tool_call>."""

from __future__ import annotations

import pytest
from rlcore.verifiers.base import Sample
from rlcore.verifiers.text import strip_think
from rlcore.verifiers.tool_call import ToolCallVerifier, tagged_calls

from rlcore.rollout.multiturn import parse_hermes


@pytest.mark.parametrize(
    ("text", "outside"),
    [
        ("<think>plan</think> \\boxed{4}", " \\boxed{4}"),
        ("before <think>a</think> mid <think>b</think> end", "before  mid  end"),
        ("plan opened by the template</think> answer", " answer"),  # no <think> before it
        ("answer <think>still thinking when cut", "answer "),  # never closed: the rest goes
        ("no reasoning at all", "no reasoning at all"),
    ],
)
def test_strip_think(text, outside):
    assert strip_think(text) == outside


CALL = '<tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}</tool_call>'


@pytest.mark.parametrize(
    "response",
    [
        CALL[: -len("</tool_call>")],  # never closed (cut off)
        "<tool_call>{not json}</tool_call>",
        CALL + "\n" + CALL[: -len("</tool_call>")],  # a good block, then one never closed
    ],
)
def test_a_broken_tool_call_is_no_call_for_the_rollout_and_the_verifier_alike(response):
    ref = {
        "tools": [{"name": "calculator", "parameters": {"type": "object", "properties": {
            "expression": {"type": "string"}}}}],
        "ground_truth": [{"calculator": {"expression": ["2+2"]}}],
    }  # fmt: skip
    verdict = ToolCallVerifier().verify(Sample(prompt="", response=response, reference=ref))
    rollout = parse_hermes(response)
    assert verdict.correct is False and verdict.error.startswith("unparseable: ")
    assert rollout[-1].error is not None  # told back to the policy, never run
    assert [c.error for c in rollout] == [
        str(c) if not isinstance(c, dict) else None for c in tagged_calls(response)
    ]


def test_calls_inside_the_reasoning_are_planning_for_both():
    response = f"<think>maybe {CALL}</think> no call after all"
    assert parse_hermes(response) == [] and tagged_calls(response) == []
