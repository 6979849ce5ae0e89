"""A sample its verifier could not judge (a crash or timeout of the verifier, a bad reference) is
no verdict: its group leaves the step instead of training on reward 0, a composite with such a
component judges nothing, and a step with too many stops the run (rlcore/step.py)."""

import time

import pytest
from rlcore.verifiers import Result, Sample, Verifier

from rlcore.config import load_config
from rlcore.placement import Placement
from rlcore.step import check_unjudged, judged_groups
from rlcore.verifier_actors import VerifierActors, VerifierError


def _res(reward: float, correct: bool | None, error: str | None = None) -> dict:
    return {"reward": reward, "correct": correct, "error": error}


def test_a_group_with_an_unjudged_sample_leaves_the_step_and_verdicts_with_errors_stay():
    results = [
        *[_res(1, True), _res(0, False), _res(0, False)],  # plain verdicts
        *[_res(1, True), _res(0, None, "timeout"), _res(0, False)],  # the verifier timed out
        # code that timed out in the sandbox is the answer's fault: a verdict (False)
        *[_res(0, False, "timeout: wall limit 5s"), _res(1, True), _res(0, False)],
        *[_res(0, None, "bad_reference: no 'answer'"), _res(0, None), _res(0, None)],
    ]
    assert judged_groups(results, 3).tolist() == [True, False, True, False]


def test_too_many_unjudged_samples_stop_the_run_naming_the_key_and_the_first_failure():
    ok = [_res(1, True)] * 7
    check_unjudged([*ok, _res(0, None, "crash: ValueError: x")], 0.25)  # 1 of 8: below
    with pytest.raises(VerifierError, match=r"verifier.max_error_frac=0.25.*crash: ValueError"):
        check_unjudged([*ok[:5], *[_res(0, None, "crash: ValueError: x")] * 3], 0.25)


class StuckJudge(Verifier):
    """A model-based verifier whose model hangs on every batch (the Scorer's timeout path)."""

    name = "stuck_judge"
    model_based = True

    def verify_batch(self, samples: list[Sample], workers: int = 1) -> list[Result]:
        time.sleep(600)
        return [Result(reward=1.0, correct=True) for _ in samples]


@pytest.mark.slow
def test_a_model_verifier_that_times_out_gives_unjudged_results_not_zeros(ray_local):
    import ray

    stuck = "tests.test_unjudged:StuckJudge"  # importable where Ray runs the actor
    mixed = [{"name": "math", "weight": 1.0}, {"name": stuck, "weight": 0.5}]
    cfg = load_config(None, ["verifier.workers=1", "verifier.timeout_s=0.5"])
    placement = Placement.create(cfg, needs_critic=False, model_verifiers=1)
    scoring = VerifierActors.start(cfg, [mixed], placement, "stuck", {})
    right = Sample(prompt="3+4=?", response="\\boxed{7}", reference={"answer": "7"})
    try:
        results = scoring.score([(mixed, right)] * 4)
    finally:
        scoring.close()
        for a in scoring.actors:
            ray.kill(a, no_restart=True)
    for r in results:  # math judged it right, the judge never answered: no verdict on the whole
        assert r["error"].startswith("timeout") and r["correct"] is None
        assert r["details"]["components"]["math"]["correct"] is True
    assert judged_groups(results, 2).tolist() == [False, False]
    with pytest.raises(VerifierError, match="max_error_frac"):
        check_unjudged(results, 0.25)


def test_each_verifier_error_rate_is_logged_and_one_over_the_alarm_is_named():
    from rlcore.step import verifier_error_rates

    mixed = [{"name": "math", "weight": 1.0}, {"name": "judge", "weight": 0.5}]
    composite = lambda judge_error: {  # noqa: E731
        "reward": 0.0, "correct": None if judge_error else True, "error": judge_error,
        "details": {"components": {
            "math": _res(1, True),
            "judge": _res(0, None, judge_error) if judge_error else _res(1, True),
        }},
    }  # fmt: skip
    specs = ["math", "math", mixed, mixed, mixed, mixed]
    results = [
        _res(1, True),
        _res(0, False, "timeout: wall limit 5s"),  # the answer's fault: a verdict, not an error
        composite("timeout: judge 0 did not score"),
        composite("crash: RuntimeError: CUDA OOM"),
        composite(None),
        composite(None),
    ]
    rates, alarms = verifier_error_rates(specs, results, alarm=0.25)
    assert rates["verify_error_frac/math"] == 0.0
    assert rates["verify_error_frac/judge"] == 0.5 and rates["verify_timeout_frac/judge"] == 0.25
    assert alarms == [
        "verifier judge: 2 of 4 samples unjudged (1 timed out), over verifier.error_alarm=0.25; "
        "the first: timeout: judge 0 did not score"
    ]
    assert verifier_error_rates(specs, results, alarm=0.0)[1] == []
