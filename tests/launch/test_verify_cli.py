"""`rlcore verify`: output order and fields, malformed lines, unknown verifiers, atomic output."""

import json
from pathlib import Path

import pytest
from rlcore.launch.verify import main

ROWS = [
    {
        "id": "a",
        "verifier": "math",
        "prompt": "1+1?",
        "response": "\\boxed{2}",
        "reference": {"answer": "2"},
    },
    {
        "id": "b",
        "verifier": "math",
        "prompt": "1+1?",
        "response": "it is 2",
        "reference": {"answer": "2"},
    },
    {
        "id": "c",
        "verifier": [{"name": "math", "weight": 1}, {"name": "format", "weight": 0.5}],
        "prompt": [{"role": "user", "content": "1/2?"}],
        "response": "<think>half</think> \\boxed{0.5}",
        "reference": {"answer": "\\frac12"},
    },
    {"id": "d", "verifier": "format", "prompt": "p", "response": "<think>x</think>\\boxed{1} hi"},
]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_scores_in_input_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "in.jsonl", [json.dumps(r) for r in ROWS * 5])
    out = tmp_path / "out.jsonl"
    assert main([str(src), "-o", str(out), "--workers", "2"]) == 0
    got = _read(out)
    assert [g["id"] for g in got] == ["a", "b", "c", "d"] * 5
    assert [g["reward"] for g in got[:4]] == [1.0, 0.0, 1.5, 0.0]
    assert [g["correct"] for g in got[:4]] == [True, False, True, None]
    assert set(got[0]) == {"id", "reward", "correct", "details", "error", "elapsed_s"}
    err = capsys.readouterr().err
    assert "samples       20" in err and "accuracy" in err and "samples/s" in err


def test_malformed_lines_reported_and_rest_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        json.dumps(ROWS[0]),
        "{not json",
        "",
        json.dumps([1, 2]),
        json.dumps({"verifier": "math"}),
        json.dumps({**ROWS[0], "verifier": 7}),
        json.dumps(ROWS[3]),
    ]
    out = tmp_path / "out.jsonl"
    assert main([str(_write(tmp_path / "in.jsonl", lines)), "-o", str(out)]) == 1
    got = _read(out)
    assert len(got) == 6  # the blank line is skipped
    assert got[0]["reward"] == 1.0 and got[0]["error"] is None
    assert [g["error"].split(":")[0] for g in got[1:5]] == ["malformed"] * 4
    assert [g["error"].split(":")[1].strip() for g in got[1:5]] == [
        "line 2",
        "line 4",
        "line 5",
        "line 6",
    ]
    assert got[5]["id"] == "d" and got[5]["error"] is None
    err = capsys.readouterr().err
    assert "in.jsonl:2: malformed line" in err and "malformed: 4" in err


def test_unknown_verifier_exits_nonzero_without_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [ROWS[0], {**ROWS[0], "verifier": [{"name": "math"}, {"name": "mathh"}]}]
    out = tmp_path / "out.jsonl"
    assert (
        main([str(_write(tmp_path / "in.jsonl", [json.dumps(r) for r in rows])), "-o", str(out)])
        == 2
    )
    assert "in.jsonl:2: unknown verifier 'mathh'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "in.jsonl"]  # no output, no temp file


def test_config_file_and_bad_config(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.jsonl", [json.dumps(ROWS[0])])
    good = tmp_path / "v.yaml"
    good.write_text("math:\n  reward_correct: 3.0\n")
    out = tmp_path / "out.jsonl"
    assert main([str(src), "-o", str(out), "--config", str(good), "--workers", "1"]) == 0
    assert _read(out)[0]["reward"] == 3.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("math:\n  reward_corect: 3.0\n")
    assert main([str(src), "-o", str(tmp_path / "x.jsonl"), "--config", str(bad)]) == 2
    assert not (tmp_path / "x.jsonl").exists()


def test_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    assert main([str(tmp_path / "nope.jsonl")]) == 2
