"""TRL-style reward functions named where a verifier goes (`pkg.mod:fn`): TRL's signature and
conventions, run in the pool with the same timeout and error records as a verifier class."""

import time

import pytest
from rlcore.verifiers.base import Sample
from rlcore.verifiers.build import Scorer

CALLS: list[dict] = []


# --- reward functions exactly as a TRL script writes them ---------------------------------------
def correctness(prompts, completions, answer, **kwargs):
    return [1.0 if c.strip().endswith(str(a)) else 0.0 for c, a in zip(completions, answer)]  # noqa: B905


def chat_length(prompts, completions, **kwargs):
    # conversational rows: prompts are message lists, completions [{"role": "assistant", ...}]
    assert prompts[0][-1]["role"] == "user"
    return [min(len(c[0]["content"]) / 10, 1.0) for c in completions]


def not_applicable(prompts, completions, **kwargs):
    return [None for _ in completions]


def broken(prompts, completions, **kwargs):
    raise KeyError("solution")


def hangs(prompts, completions, **kwargs):
    time.sleep(30)
    return [1.0]


ME = __name__


def test_a_trl_reward_function_scores_with_its_columns():
    items = [
        (f"{ME}:correctness", Sample(prompt="2+2?", response="it is 4", reference={"answer": 4})),
        (f"{ME}:correctness", Sample(prompt="2+3?", response="it is 6", reference={"answer": 5})),
        (f"{ME}:chat_length", Sample(prompt=[{"role": "user", "content": "hi"}], response="hello")),
        (f"{ME}:not_applicable", Sample(prompt="x", response="y")),
    ]
    with Scorer([name for name, _ in items], workers=1) as scorer:
        res = scorer.score(items)
    assert [r.reward for r in res] == pytest.approx([1.0, 0.0, 0.5, 0.0])
    assert all(r.error is None for r in res)
    assert res[3].details == {"applies": False} and res[3].correct is None


def test_a_function_that_raises_or_hangs_costs_one_sample_an_error_record():
    cfg = {f"{ME}:hangs": {"timeout_s": 1.0}}
    items = [
        (f"{ME}:broken", Sample(prompt="p", response="r")),
        (f"{ME}:hangs", Sample(prompt="p", response="r")),
        (f"{ME}:correctness", Sample(prompt="p", response="7", reference={"answer": 7})),
    ]
    with Scorer([n for n, _ in items], cfg, workers=1) as scorer:
        res = scorer.score(items)
    assert res[0].error.startswith("crash: KeyError") and res[0].reward == 0.0
    assert res[1].error == "timeout"
    assert res[2].reward == 1.0 and res[2].error is None


def test_an_alias_with_a_path_and_a_weighted_mix_with_a_class():
    cfg = {"exact": {"path": f"{ME}:correctness"}}
    sample = Sample(prompt="p", response="\\boxed{7} so 7", reference={"answer": "7"})
    with Scorer(["exact", "math"], cfg, workers=1) as scorer:
        (r,) = scorer.score([([{"name": "exact", "weight": 0.5}, {"name": "math"}], sample)])
    assert r.reward == pytest.approx(1.5) and r.correct is True
