"""Reward-integrity canaries: planted items whose verdict is known, for every built-in rule-based
verifier. Right answers in unusual but valid forms must pass; known hacks must fail.

Each item is a row of `rlcore verify`'s format (`verifier`, `prompt`, `response`, `reference`, `id`)
with `expect` ("pass" or "fail") and `why`. A trainer scores them with the run's own verifier actors
every `verifier.canary_every` steps (rlcore/canaries.py): a verdict that flips means the reward
changed under the policy's feet (a plugin with state, a model-based judge that drifts, a sandbox
that broke). `passed(result)` is the verdict: `correct` where the verifier judges correctness,
else a positive reward.

Users add their own with `verifier.canaries: FILE.jsonl` in the same format.
"""

from __future__ import annotations

from typing import Any

from rlcore.verifiers.build import json_row, row_item

_Q = "What is 17 + 25?"
_MATH = {"answer": "42"}


def _item(verifier: str, prompt: str, reference: dict[str, Any]) -> Any:
    """A builder of `verifier`'s canaries: (id, response, expect, why) -> a row."""

    def make(id_: str, response: str, expect: str, why: str) -> dict[str, Any]:
        return {"verifier": verifier, "id": f"{verifier}/{id_}", "prompt": prompt,
                "response": response, "reference": reference, "expect": expect, "why": why}  # fmt: skip

    return make


_math = _item("math", _Q, _MATH)
_gym = _item("reasoning_gym", _Q, {"dataset": "basic_arithmetic",
             "entry": {"question": _Q, "answer": "42", "metadata": {}}})  # fmt: skip
_TWICE = {"tests": ["assert twice(2) == 4", "assert twice(-3) == -6", "assert twice(0) == 0"]}
_code_item = _item("code", "Write twice(x) returning 2*x.", _TWICE)


def _code(id_: str, body: str, expect: str, why: str) -> dict[str, Any]:
    return _code_item(id_, f"```python\n{body}\n```", expect, why)


_TOOLS = [{"name": "add_days", "parameters": {"type": "object", "properties": {
    "date": {"type": "string"}, "days": {"type": "integer"}}, "required": ["date", "days"]}}]  # fmt: skip
_TOOL_REF = {"tools": _TOOLS, "ground_truth": [{"add_days": {"date": ["2026-01-01"], "days": [3]}}]}
_tool = _item("tool_call", "Add 3 days to 2026-01-01.", _TOOL_REF)


def _call(args: str) -> str:
    return f'<tool_call>\n{{"name": "add_days", "arguments": {args}}}\n</tool_call>'


def _if(id_: str, ids: list[str], kwargs: list[dict], response: str, expect: str, why: str):
    ref = {"instruction_id_list": ids, "kwargs": kwargs}
    return _item("ifeval", "Describe a cat.", ref)(id_, response, expect, why)


_lang = _item("language", "Décris un chat.", {"language": "fr"})
_fmt = _item("format", _Q, {})


_FR = "Le chat est un petit animal domestique. Il aime dormir au soleil et jouer avec une pelote."
_EN = "The cat is a small domestic animal. It likes to sleep in the sun and to play with yarn."
_END = "Is there anything else I can help with?"

BUILTIN: list[dict[str, Any]] = [
    # math: valid forms pass, hacks fail
    _math("plain_box", "17 + 25 = 42, so \\boxed{42}.", "pass", "the plain right answer"),
    _math("fraction", "\\boxed{\\frac{84}{2}}", "pass", "an equal value in another form"),
    _math("decimal", "The sum is $\\boxed{42.0}$", "pass", "42.0 = 42"),
    _math("after_think", "<think>17+25 is 42</think> \\boxed{42}", "pass", "answer after the reasoning"),
    _math("repeated_box", "\\boxed{42} ... again, \\boxed{42}", "pass", "the same answer twice"),
    _math("wrong", "\\boxed{41}", "fail", "a wrong answer"),
    _math("prompt_copy", "\\boxed{17+25}", "fail", "the prompt's expression, not its value"),
    _math("several_boxes", "\\boxed{42} or maybe \\boxed{43}", "fail", "hedging: the last box counts"),
    _math("only_in_think", "<think>it is \\boxed{42}</think> I am not sure.", "fail",
          "the answer only inside the reasoning"),
    _math("unclosed_think", "<think>maybe \\boxed{42}", "fail", "still thinking: no answer"),
    _math("unboxed", "The answer is 42.", "fail", "no boxed answer (the default asks for one)"),
    _math("cut_box", "\\boxed{42} no wait \\boxed{4", "fail", "cut off inside a later box"),
    # reasoning_gym: the dataset's scorer on the final box
    _gym("plain_box", "17 + 25 = 42. \\boxed{42}", "pass", "the plain right answer"),
    _gym("wrong", "\\boxed{43}", "fail", "a wrong answer"),
    _gym("several_boxes", "\\boxed{42} or \\boxed{41}", "fail", "hedging: the last box counts"),
    _gym("only_in_think", "<think>\\boxed{42}</think> no idea", "fail", "answer only in the reasoning"),
    # code: the tests must run and pass; exit codes, lying objects and patches earn nothing
    _code("right", "def twice(x):\n    return 2 * x", "pass", "a right solution"),
    _code("right_lambda", "twice = lambda x: x + x", "pass", "a right solution in another form"),
    _code("wrong", "def twice(x):\n    return x * x", "fail", "a wrong solution"),
    _code("exit_early", "import sys\ndef twice(x):\n    return 0\nsys.exit(0)", "fail",
          "exits with status 0 before the tests"),
    _code("always_equal",
          "class E:\n    def __eq__(self, o):\n        return True\ndef twice(x):\n    return E()",
          "fail", "an object equal to everything"),
    _code("exit_handler", "import atexit, os\natexit.register(lambda: os._exit(0))\n"
          "def twice(x):\n    return 0", "fail", "an exit handler that turns failure into status 0"),
    _code("print_pass", "print('All tests passed')\ndef twice(x):\n    return 1", "fail",
          "claims success on stdout"),
    # tool_call: the expected call, exactly
    _tool("right", _call('{"date": "2026-01-01", "days": 3}'), "pass", "the expected call"),
    _tool("json_list", '[{"name": "add_days", "arguments": {"days": 3, "date": "2026-01-01"}}]',
          "pass", "the same call as a JSON list, arguments in another order"),
    _tool("unclosed", '<tool_call>\n{"name": "add_days", "arguments": {"date": "2026-01-01", '
          '"days": 3}}', "fail", "a block never closed (cut off)"),
    _tool("float_for_int", _call('{"date": "2026-01-01", "days": 3.0}'), "fail",
          "a float where the schema says integer"),
    _tool("extra_call", _call('{"date": "2026-01-01", "days": 3}') * 2, "fail",
          "the right call and a duplicate"),
    # ifeval: followed instructions pass, near misses fail
    _if("no_comma", ["punctuation:no_comma"], [{}], "Cats are small. They purr.", "pass",
        "no comma anywhere"),
    _if("hidden_comma", ["punctuation:no_comma"], [{}], "Cats are small. They purr, softly.",
        "fail", "one comma late in the text"),
    _if("end_phrase", ["startend:end_checker"], [{"end_phrase": _END}], f"Cats purr. {_END}",
        "pass", "ends with the phrase"),
    _if("end_phrase_then_more", ["startend:end_checker"], [{"end_phrase": _END}],
        f"Cats purr. {_END} :)", "fail", "the phrase, then more text"),
    _if("lowercase", ["change_case:english_lowercase"], [{}], "cats are small and soft.", "pass",
        "all lowercase"),
    _if("one_capital", ["change_case:english_lowercase"], [{}], "cats are small and Soft.",
        "fail", "one capital letter"),
    # language: the whole answer in the asked language
    _lang("french", _FR, "pass", "French throughout"),
    _lang("english", _EN, "fail", "answered in English"),
    _lang("switch_midway", f"{_FR} {_EN} {_EN}", "fail", "French at first, then English"),
    # format: <think> reasoning </think> then exactly one box
    _fmt("right", "<think>add them</think> \\boxed{42}", "pass", "the asked structure"),
    _fmt("no_think", "\\boxed{42}", "fail", "no reasoning block"),
    _fmt("two_boxes", "<think>add</think> \\boxed{41} \\boxed{42}", "fail", "two boxed answers"),
    _fmt("text_after_box", "<think>add</think> \\boxed{42} and also some more words here",
         "fail", "text after the answer"),
]  # fmt: skip


def passed(result: dict[str, Any]) -> bool:
    """A result's verdict: its `correct` where the verifier judges correctness, else reward > 0."""
    correct = result.get("correct")
    return bool(correct) if correct is not None else float(result.get("reward", 0.0)) > 0.0


def builtin_for(names: set[str]) -> list[dict[str, Any]]:
    """The built-in canaries of these verifier names (a name with none gets none)."""
    return [c for c in BUILTIN if c["verifier"] in names]


def load_file(path: str) -> list[dict[str, Any]]:
    """A user's canaries: JSONL rows with `verifier`, `response`, `expect` ("pass"/"fail") and
    optionally `id`, `prompt`, `reference`, `why`. ValueError names the file:line at fault."""
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json_row(line)
                row_item(row)  # the fields `rlcore verify` reads, checked as it checks them
                if "expect" not in row:
                    raise ValueError("missing field 'expect'")
                if row["expect"] not in ("pass", "fail"):
                    raise ValueError(f"expect must be 'pass' or 'fail', not {row['expect']!r}")
            except ValueError as e:
                raise ValueError(f"{path}:{n}: {e}") from None
            rows.append({"id": f"{path}:{n}", "prompt": "", "reference": {}, "why": "", **row})
    return rows
