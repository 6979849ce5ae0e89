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


# ---------------------------------------------------------------- unterminated markup, numbers, bad input
def _block(call: dict) -> str:
    return f"<tool_call>\n{json.dumps(call)}\n</tool_call>"


PARIS = {"name": "get_weather", "arguments": {"city": "Paris"}}
EUR = {"name": "convert", "arguments": {"amount": 10.0, "to": "EUR"}}

UNTERMINATED = [  # (name, response, ground truth); each was rewarded as correct before the fix
    ("unclosed_block", f"<tool_call>\n{json.dumps(PARIS)}", [WEATHER]),
    ("unclosed_last_block", _block(PARIS) + f"<tool_call>{json.dumps(EUR)}", [WEATHER, CONVERT]),
    ("unclosed_fence", f"```json\n{json.dumps(PARIS)}\n", [WEATHER]),
    (
        "closed_fence_then_unclosed",
        f"```json\n{json.dumps(PARIS)}\n```\nOr rather:\n```json\n{json.dumps(EUR)}",
        [WEATHER],
    ),
    ("call_inside_unclosed_think", f"<think>I could send {json.dumps(PARIS)}", [WEATHER]),
]


@pytest.mark.parametrize("name,response,gt", UNTERMINATED, ids=[c[0] for c in UNTERMINATED])
def test_unterminated_markup_is_not_a_correct_call(name, response, gt):
    r = verify(response, gt)
    assert (r.correct, r.reward) == (False, 0.0), r


def test_closed_markup_still_parses():
    assert verify(f"```json\n{json.dumps(PARIS)}\n```", [WEATHER]).correct is True
    assert verify(f"<think>hm</think>\n{json.dumps(PARIS)}", [WEATHER]).correct is True


NUM_TOOL = {
    "name": "f",
    "parameters": {
        "type": "dict",
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": "float"},
            "a": {"type": "any"},
            "ns": {"type": "array", "items": {"type": "integer"}},
            "xs": {"type": "array", "items": {"type": "float"}},
        },
    },
}
# (argument, value given, acceptable values, correct). BFCL's checker: a float is not an integer; an
# int is a float ("float" accepts ints, as Python does); bools are neither. Rows marked * were
# accepted before the fix. BFCL's checker gives the same verdicts on every typed row; on "any" it
# types one level deep only (it accepts the nested `a` rows) and rejects 5 for [5.0].
NUMBERS = [
    ("n", 5, [5], True),
    ("n", 5.0, [5], False),  # * integer schema and integer reference
    ("n", True, [1], False),
    ("n", "5", [5], False),
    ("x", 5, [5.0], True),
    ("x", 5.0, [5], True),  # float schema: 5.0 is the 5 BFCL's data lists (e.g. parallel_84)
    ("x", 5.5, [5], False),
    ("a", 5.0, [5], False),  # * untyped parameter, integer reference
    ("a", 5, [5.0], True),
    ("a", [1.0, 2], [[1, 2]], False),  # * nested: the reference says integer
    ("a", [True], [[1]], False),  # * nested bool is not an integer
    ("a", {"k": 1.0}, [{"k": 1}], False),  # * inside a dict too
    ("ns", [1.0, 2], [[1, 2]], False),  # * array of integer
    ("xs", [23.0, 45.0], [[23, 45]], True),  # array of float, int reference (parallel_multiple_187)
]


@pytest.mark.parametrize("arg,value,options,correct", NUMBERS)
def test_integers_and_floats_as_bfcl_checks_them(arg, value, options, correct):
    ref = {"tools": [NUM_TOOL], "ground_truth": [{"f": {arg: options}}]}
    response = _block({"name": "f", "arguments": {arg: value}})
    r = ToolCallVerifier().verify(Sample(prompt="", response=response, reference=ref))
    assert r.correct is correct, r.details


def test_python_syntax_float_for_integer():
    gt = [{"get_weather": {"city": ["Paris"], "days": [3]}}]
    assert verify("[get_weather(city='Paris', days=3.0)]", gt).correct is False  # * passed


HUGE_INT = (
    '{"name": "get_weather", "arguments": {"days": ' + "9" * 5000 + "}}"
)  # over Python's limit
HOSTILE = [  # raised out of verify before the fix (ValueError, RecursionError)
    f"<tool_call>{HUGE_INT}</tool_call>",
    f"Sure: {HUGE_INT}",
    "<tool_call>" + "[" * 50_000 + "</tool_call>",
    "x " + "[" * 50_000,
    "f(n=" + "[" * 50_000,
]


@pytest.mark.parametrize("response", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_is_a_result_not_an_exception(response):
    r = verify(response, [WEATHER])
    assert r.correct is False and r.reward == 0.0


def test_calls_in_prose_are_the_whole_list_not_its_last_member():
    text = "Here you go: " + json.dumps([PARIS, EUR]) + " Done."
    assert verify(text, [WEATHER, CONVERT]).correct is True  # only EUR was read before
    assert verify(text, [CONVERT]).correct is False  # ... which passed with an extra call
    nested = {"name": "convert", "arguments": {"amount": 10.0, "to": "EUR", "note": PARIS}}
    assert parse_calls("ok " + json.dumps(nested))[0]["name"] == "convert"


@pytest.mark.parametrize("depth", [40, 700, 990])
def test_deeply_nested_arguments_are_unparseable(depth):
    value = "[" * depth + "]" * depth  # decodes, then overflowed the checks' recursion before
    r = verify(
        f'<tool_call>{{"name": "get_weather", "arguments": {{"city": {value}}}}}</tool_call>',
        [WEATHER],
    )
    assert r.correct is False and "unparseable" in r.error  # too deep, or too deep to decode
    r = verify(f'<tool_call>{{"name": {value}, "arguments": 1}}</tool_call>', [WEATHER])
    assert r.correct is False and "unparseable" in r.error
