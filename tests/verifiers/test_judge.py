"""LLM-judge verifier: score and verdict parsing (a table, adversarial outputs included), config
errors that name the key, pairwise position debiasing and parse errors on a scripted judge, and
(slow) the real SmolLM2 judge on vLLM and on transformers."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rlcore.verifiers.base import Sample  # noqa: E402
from rlcore.verifiers.judge import (  # noqa: E402
    JudgeConfig,
    JudgeVerifier,
    parse_score,
    parse_verdict,
)
from rlcore.verifiers.registry import get_verifier_class  # noqa: E402

POINT = JudgeConfig().pattern
PAIR = JudgeConfig(mode="pairwise").pattern
NEVER = r"(NO_JUDGE_WRITES_THIS_\d+)"

# (judge output, score or None, what the error says)
SCORES = [
    ("Score: 7", 7.0, None),
    ("score=7.5", 7.5, None),
    ("[[8]]", 8.0, None),
    ("The response is good. Score: 9/10", 9.0, None),
    ("I give it a score of 4", 4.0, None),
    ("Score: 3. On reflection, Score: 8", 8.0, None),  # the last verdict counts
    ("Score: 11", None, "outside [1, 10]"),  # out of range is an error, not a clipped 10
    ("Score: 0", None, "outside [1, 10]"),
    ("Score: -3", None, "outside [1, 10]"),
    ("This response is great!", None, "no score"),
    ("Rating 7", None, "no score"),  # not the format asked for
    ("", None, "no score"),
]

VERDICTS = [
    ("[[A]]", "A", None),
    ("[[b]]", "B", None),
    ("[[C]]", "tie", None),
    ("[[ tie ]]", "tie", None),
    ("Response A is clearly better.", None, "no verdict"),  # no brackets: not parsed
    ("[[A]] ... no wait, [[B]]", "B", None),
    ("[[D]]", None, "no verdict"),
    ("[[A or B]]", None, "no verdict"),
]


@pytest.mark.parametrize(("text", "score", "error"), SCORES)
def test_parse_score(text, score, error):
    got, err = parse_score(text, POINT, 1.0, 10.0)
    assert got == score
    if error is None:
        assert err is None
    else:
        assert err.startswith("parse: ") and error in err


@pytest.mark.parametrize(("text", "verdict", "error"), VERDICTS)
def test_parse_verdict(text, verdict, error):
    got, err = parse_verdict(text, PAIR)
    assert got == verdict
    assert (err is None) if error is None else (err.startswith("parse: ") and error in err)


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"mode": "listwise"}, "mode"),
        ({"engine": "llama.cpp"}, "engine"),
        ({"template": "{response} {answer}"}, "template"),  # unknown placeholder
        ({"template": "Rate it."}, "template"),  # no {response}
        ({"mode": "pairwise", "template": "{prompt} {response}"}, "template"),
        ({"template": "a { b {response}"}, "template"),  # unbalanced brace
        ({"score_pattern": "Score: ("}, "score_pattern"),
        ({"score_pattern": r"Score: \d+"}, "score_pattern"),  # no capture group
        ({"min_score": 5, "max_score": 5}, "max_score"),
        ({"threshold": 7}, "threshold"),  # rewards are in [0, 1], not the judge's scale
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_config_errors_name_the_key(fields, key):
    with pytest.raises(ValueError, match=f"judge verifier: {key}: "):
        JudgeConfig(**fields)


def test_default_prefix_follows_the_template():
    assert JudgeConfig().prefix == "Score: " and JudgeConfig(mode="pairwise").prefix == "[["
    assert JudgeConfig(template="Grade {response} as G: N").prefix == ""  # its own format
    assert JudgeConfig(response_prefix="").prefix == ""
    assert parse_verdict(JudgeConfig(mode="pairwise").prefix + "B]] because", PAIR) == ("B", None)


def test_model_path_must_be_a_folder(tmp_path):
    with pytest.raises(ValueError, match="judge verifier: model_path: 'smollm2-135m-instruct'"):
        JudgeVerifier(JudgeConfig(model_path="smollm2-135m-instruct"))
    with pytest.raises(ValueError, match="model_path"):
        JudgeVerifier(JudgeConfig(model_path=str(tmp_path)))  # no config.json


def test_registered_and_model_based():
    cls = get_verifier_class("judge")
    assert cls is JudgeVerifier and cls.model_based
    assert "Does NOT check" in (cls.__doc__ or "")


class Scripted:
    """Stands in for the judge's engine: answers by what the rubric shows first."""

    def __init__(self, answer):
        self.answer = answer
        self.seen: list[str] = []

    def generate(self, texts, prefix=""):
        self.seen += texts
        return [self.answer(t) for t in texts]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({}))  # loaded only on the first generate
    return str(tmp_path)


def _judge(folder, answer, **fields):
    judge = JudgeVerifier(JudgeConfig(model_path=folder, **fields))
    judge.generator = Scripted(answer)
    return judge


def _first(text):
    return text.split("[Response A]\n")[1].split("\n")[0]


def test_pairwise_debiases_a_judge_that_always_picks_the_first_position(folder):
    judge = _judge(folder, lambda t: "[[A]]", mode="pairwise")
    (pair,) = judge.compare(["Capital of France?"], ["Paris"], ["Lyon"])
    assert pair["ab"]["verdict"] == "A" and pair["ba"]["verdict"] == "A"
    assert pair["ab"]["score_a"] == 1.0 and pair["ba"]["score_a"] == 0.0
    assert pair["outcome"] == 0.5 and pair["consistent"] is False and pair["error"] is None
    seen = judge.generator.seen
    assert [_first(t) for t in seen] == ["Paris", "Lyon"]  # both orders were shown


def test_pairwise_consistent_judge_and_verify_batch(folder):
    # prefers whichever position shows "Paris": the same verdict in both orders
    judge = _judge(folder, lambda t: "[[A]]" if _first(t) == "Paris" else "[[B]]", mode="pairwise")
    samples = [
        Sample("Capital of France?", "Paris", {"response": "Lyon"}),
        Sample("Capital of France?", "Lyon", {"response": "Paris"}),
        Sample("Capital of France?", "Paris", {}),  # nothing to compare against
    ]
    win, loss, missing = judge.verify_batch(samples)
    assert win.reward == 1.0 and win.error is None and win.details["consistent"]
    assert win.details["ab"]["text"] == "[[A]]" and win.details["ba"]["text"] == "[[B]]"
    assert loss.reward == 0.0 and loss.error is None
    assert missing.error.startswith("unparseable") and "'response'" in missing.error


def test_one_order_unparsed_is_an_error_with_both_texts(folder):
    judge = _judge(folder, lambda t: "[[A]]" if _first(t) == "Paris" else "B wins", mode="pairwise")
    (r,) = judge.verify_batch([Sample("Capital?", "Paris", {"response": "Lyon"})])
    assert r.error.startswith("parse: ") and r.reward == 0.0 and r.correct is None
    assert r.details["ab"]["verdict"] == "A" and r.details["ba"]["text"] == "B wins"
    assert r.details["outcome"] is None


def test_pointwise_scores_normalises_and_records_parse_errors(folder):
    answers = {"good": "Score: 10", "ok": "Score: 4", "bad": "I cannot rate this."}
    judge = _judge(
        folder,
        lambda t: next(a for k, a in answers.items() if f"\n{k}\n" in t),
        threshold=0.5,
        reference_key="answer",
    )
    samples = [Sample("Q?", k, {"answer": "Paris"}) for k in answers]
    good, ok, bad = judge.verify_batch(samples)
    assert (good.reward, good.correct, good.details["score"]) == (1.0, True, 10.0)
    assert (round(ok.reward, 6), ok.correct) == (round(3 / 9, 6), False)
    assert bad.error == "parse: no score in the judge's output"
    assert (bad.reward, bad.correct, bad.details["judge"]) == (0.0, None, "I cannot rate this.")
    assert "[Reference answer]\nParis\n" in judge.generator.seen[0]


def test_prompt_too_long_is_an_overflow_error(folder):
    judge = _judge(folder, lambda t: None)  # the generator's answer to a prompt that does not fit
    (r,) = judge.verify_batch([Sample("Q?", "x")])
    assert r.error.startswith("overflow:") and r.reward == 0.0


# --------------------------------------------------------------------- the real SmolLM2 judge


@pytest.fixture(scope="module")
def smollm2() -> str:
    from rlcore.models.smollm2 import smollm2_path

    try:
        return str(smollm2_path())  # converted once, then cached
    except (ModuleNotFoundError, FileNotFoundError) as e:
        pytest.skip(f"SmolLM2 is not installed: {e}")


PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris.", "I like turtles."),
    ("How many legs does a spider have?", "Six.", "A spider has eight legs."),
]


@pytest.mark.slow
def test_smollm2_judge_on_vllm_both_orders_and_parse_errors(smollm2):
    pytest.importorskip("vllm")
    judge = JudgeVerifier(
        JudgeConfig(model_path=smollm2, mode="pairwise", max_tokens=4, max_model_len=1024)
    )
    pairs = judge.compare(*map(list, zip(*PAIRS, strict=True)))
    for p in pairs:
        for order in ("ab", "ba"):
            assert isinstance(p[order]["text"], str) and p[order]["text"].strip()
            assert (p[order]["verdict"] is None) == (p[order]["error"] is not None)
        assert (p["outcome"] is None) == (p["error"] is not None)
    # a pattern the judge cannot write: every sample is a recorded parse error, not a 0 score
    strict = JudgeVerifier(JudgeConfig(model_path=smollm2, mode="pairwise", score_pattern=NEVER))
    strict.generator = judge.generator  # the same engine, another rubric reader
    samples = [Sample(q, a, {"response": b}) for q, a, b in PAIRS]
    for r in strict.verify_batch(samples):
        assert r.error == "parse: no verdict in the judge's output" and r.correct is None
        assert r.details["ab"]["text"] and r.details["ba"]["text"]


@pytest.mark.slow
def test_smollm2_judge_on_transformers_pointwise(smollm2):
    judge = JudgeVerifier(
        JudgeConfig(model_path=smollm2, engine="hf", max_tokens=8, score_pattern=NEVER)
    )
    results = judge.verify_batch([Sample(q, a) for q, a, _ in PAIRS])
    for r in results:
        assert r.error == "parse: no score in the judge's output" and r.reward == 0.0
        assert isinstance(r.details["judge"], str) and r.details["judge"].strip()
    # greedy: the same prompt gives the same text, alone or in a batch
    (alone,) = judge.verify_batch([Sample(PAIRS[0][0], PAIRS[0][1])])
    assert alone.details["judge"] == results[0].details["judge"]
