"""`tool_call` verifier: formats, schema checks, ground-truth matching, adversarial responses."""

from __future__ import annotations

import json

import pytest
from rlcore.verifiers.base import Sample
from rlcore.verifiers.tool_call import ToolCallConfig, ToolCallVerifier, Unparseable, parse_calls

TOOLS = [
    {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer"},
            },
            "required": ["city"],
        },
    },
    {
        "type": "function",
        "function": {
            "name": "convert",
            "parameters": {
                "type": "dict",
                "properties": {"amount": {"type": "float"}, "to": {"type": "string"}},
                "required": ["amount", "to"],
            },
        },
    },
]
# BFCL style: every argument lists acceptable values; "" = may be omitted.
WEATHER = {"get_weather": {"city": ["Paris", "Paris, France"], "unit": ["c", ""], "days": [""]}}
CONVERT = {"convert": {"amount": [10.0], "to": ["EUR"]}}


def tc(name: str, **args) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': args})}\n</tool_call>"


def verify(response: str, ground_truth: list, cfg: ToolCallConfig | None = None):
    ref = {"tools": TOOLS, "ground_truth": ground_truth}
    return ToolCallVerifier(cfg).verify(Sample(prompt="", response=response, reference=ref))


# (name, response, ground truth, correct, text expected in error or problems)
CASES = [
    ("hermes_block", tc("get_weather", city="Paris"), [WEATHER], True, None),
    (
        "second_acceptable_value",
        tc("get_weather", city="paris, france", unit="c"),
        [WEATHER],
        True,
        None,
    ),
    (
        "json_list_string_args",
        json.dumps([{"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}]),
        [WEATHER],
        True,
        None,
    ),
    (
        "single_object_after_text",
        'Sure! {"name": "convert", "arguments": {"amount": 10, "to": "EUR"}}',
        [CONVERT],
        True,
        None,
    ),
    (
        "openai_style",
        json.dumps(
            {
                "type": "function",
                "function": {"name": "convert", "arguments": '{"amount": 10.0, "to": "eur"}'},
            }
        ),
        [CONVERT],
        True,
        None,
    ),
    ("python_syntax", "[convert(amount=10.0, to='EUR')]", [CONVERT], True, None),
    (
        "parallel_any_order",
        tc("convert", amount=10.0, to="EUR") + tc("get_weather", city="Paris"),
        [WEATHER, CONVERT],
        True,
        None,
    ),
    ("no_call_expected_and_none", "There is no tool for that.", [], True, None),
    (
        "think_then_call",
        '<think>maybe {"name": "x"}</think>' + tc("get_weather", city="Paris"),
        [WEATHER],
        True,
        None,
    ),
    ("call_when_none_expected", tc("get_weather", city="Paris"), [], False, "none expected"),
    ("no_call_when_expected", "I think it is sunny.", [WEATHER], False, "0 calls"),
    (
        "malformed_json",
        '<tool_call>{"name": "get_weather", "arguments": {"city": }</tool_call>',
        [WEATHER],
        False,
        "unparseable",
    ),
    (
        "malformed_json_no_tags",
        '{"name": "get_weather", "arguments": {"city": "Paris"',
        [WEATHER],
        False,
        "unparseable",
    ),
    ("wrong_type", tc("get_weather", city="Paris", days="three"), [WEATHER], False, "wrong type"),
    ("bool_is_not_a_number", tc("convert", amount=True, to="EUR"), [CONVERT], False, "wrong type"),
    ("enum_violation", tc("get_weather", city="Paris", unit="kelvin"), [WEATHER], False, "enum"),
    ("missing_required", tc("convert", to="EUR"), [CONVERT], False, "missing argument"),
    (
        "missing_expected_optional",
        tc("get_weather", city="Paris"),
        [{"get_weather": {"city": ["Paris"], "unit": ["f"]}}],
        False,
        "missing argument 'unit'",
    ),
    (
        "extra_unknown_argument",
        tc("get_weather", city="Paris", country="FR"),
        [WEATHER],
        False,
        "extra argument",
    ),
    (
        "extra_schema_argument_not_expected",
        tc("get_weather", city="Paris", days=3),
        [{"get_weather": {"city": ["Paris"]}}],
        False,
        "extra argument 'days'",
    ),
    ("wrong_value", tc("get_weather", city="London"), [WEATHER], False, "wrong value"),
    ("unknown_function", tc("get_stock", symbol="X"), [WEATHER], False, "unknown function"),
    (
        "duplicate_parallel_call",
        tc("get_weather", city="Paris") + tc("get_weather", city="Paris"),
        [WEATHER, CONVERT],
        False,
        "not expected",
    ),
    (
        "extra_call",
        tc("get_weather", city="Paris") + tc("convert", amount=10.0, to="EUR"),
        [WEATHER],
        False,
        "2 calls, expected 1",
    ),
    ("name_only_object", '{"name": "get_weather"}', [WEATHER], False, "missing argument"),
]


@pytest.mark.parametrize("name,response,gt,correct,why", CASES, ids=[c[0] for c in CASES])
def test_cases(name, response, gt, correct, why):
    r = verify(response, gt)
    assert r.correct is correct
    assert r.reward == float(correct)
    if why:
        assert why in json.dumps({"e": r.error, "d": r.details}, default=str)


def test_parallel_matching_is_not_greedy():
    # call 0 fits both expected entries, call 1 only the first: a greedy pass would fail.
    gt = [{"get_weather": {"city": ["Paris", "Lyon"]}}, {"get_weather": {"city": ["Paris"]}}]
    r = verify(tc("get_weather", city="Paris") + tc("get_weather", city="Lyon"), gt)
    assert r.correct is True


def test_partial_credit():
    cfg = ToolCallConfig(partial_credit=True)
    r = verify(
        tc("get_weather", city="Paris") + tc("convert", amount=99.0, to="EUR"),
        [WEATHER, CONVERT],
        cfg,
    )
    assert r.reward == 0.5 and r.correct is False


def test_name_arguments_ground_truth_form():
    gt = [{"name": "convert", "arguments": {"amount": [10, 10.0], "to": ["EUR"]}}]
    assert verify(tc("convert", amount=10, to="EUR"), gt).correct is True


def test_parse_calls_never_executes_python():
    assert parse_calls("[__import__('os').system('echo hi')]") == []
    with pytest.raises(Unparseable):
        parse_calls("<tool_call>not json</tool_call>")
