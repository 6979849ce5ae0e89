"""CompositeVerifier, combine() and the Scorer's handling of a row's weighted verifier list."""

import pytest
from rlcore.verifiers import CompositeVerifier, Result, Sample, Scorer, Verifier
from rlcore.verifiers.base import VerifierConfig
from rlcore.verifiers.composite import combine
from rlcore.verifiers.format import FormatVerifier
from rlcore.verifiers.math import MathVerifier

GOOD = Sample(prompt="q", response="<think>r</think> \\boxed{1/2}", reference={"answer": "0.5"})
WRONG = Sample(prompt="q", response="<think>r</think> \\boxed{3}", reference={"answer": "0.5"})
NOFORMAT = Sample(prompt="q", response="\\boxed{0.5} and more", reference={"answer": "0.5"})


class Judge(Verifier):
    """correct = reference[name]; reward 1/0; None means 'does not judge'."""

    name = "judge"

    def verify(self, sample: Sample) -> Result:
        c = sample.reference.get(self.name)
        return Result(reward=1.0 if c else 0.0, correct=c)


def _r(reward: float, correct: bool | None, error: str | None = None) -> Result:
    return Result(reward=reward, correct=correct, error=error, elapsed_s=0.5)


@pytest.mark.parametrize(
    ("parts", "reward", "correct", "error"),
    [
        ([("a", 1.0, _r(1, True)), ("b", 0.2, _r(1, None))], 1.2, True, None),
        ([("a", 1.0, _r(1, True)), ("b", 1.0, _r(0, False))], 1.0, False, None),
        ([("a", 0.5, _r(1, None)), ("b", 0.5, _r(0, None))], 0.5, None, None),
        # a component that could not judge makes the whole no verdict (not b's alone)
        ([("a", 1.0, _r(0, None, "timeout")), ("b", 2.0, _r(1, True))], 2.0, None, "timeout [a]"),
        # an error that still judges (code timing out in the sandbox: False) is a verdict
        (
            [("a", 1.0, _r(0, False, "timeout: wall")), ("b", 1.0, _r(1, True))],
            1.0,
            False,
            "timeout: wall [a]",
        ),
        (
            [("a", 1.0, _r(0, False, "crash: X: y")), ("b", -1.0, _r(1, None, "timeout"))],
            -1.0,
            None,
            "crash: X: y [a]; timeout [b]",
        ),
    ],
)
def test_combine(parts, reward: float, correct: bool | None, error: str | None) -> None:
    r = combine(parts)
    assert (r.reward, r.correct, r.error) == (pytest.approx(reward), correct, error)
    assert r.elapsed_s == pytest.approx(0.5 * len(parts))
    assert set(r.details["components"]) == {n for n, _, _ in parts}


def test_composite_verify_in_process() -> None:
    v = CompositeVerifier([(MathVerifier(), 1.0), (FormatVerifier(), 0.2)])
    assert v.config.timeout_s == MathVerifier().config.timeout_s + FormatVerifier().config.timeout_s
    good, wrong, nofmt = (v.verify(s) for s in (GOOD, WRONG, NOFORMAT))
    assert (good.reward, good.correct) == (pytest.approx(1.2), True)
    assert (wrong.reward, wrong.correct) == (pytest.approx(0.2), False)
    assert (nofmt.reward, nofmt.correct) == (pytest.approx(1.0), True)
    assert nofmt.details["components"]["format"]["details"]["ok"] is False


def test_composite_rejects_duplicates_and_empty() -> None:
    with pytest.raises(ValueError):
        CompositeVerifier([])
    with pytest.raises(ValueError, match="duplicate"):
        CompositeVerifier([(MathVerifier(), 1.0), (MathVerifier(), 1.0)])


def test_composite_verify_batch_in_pool() -> None:
    v = CompositeVerifier([(MathVerifier(), 1.0), (FormatVerifier(), 0.2)])
    res = v.verify_batch([GOOD, WRONG, NOFORMAT], workers=1)
    assert [r.reward for r in res] == pytest.approx([1.2, 0.2, 1.0])


def test_scorer_mixes_single_and_weighted_rows() -> None:
    weighted = [{"name": "math", "weight": 1.0}, {"name": "format", "weight": 0.5}]
    specs = ["math", weighted, "format", ["math", "format"]]
    with Scorer.from_specs(specs, {"math": {"timeout_s": 5}}, workers=2) as scorer:
        res = scorer.score(
            [
                ("math", GOOD),
                (weighted, GOOD),
                ("format", NOFORMAT),
                (["math", "format"], WRONG),
                (weighted, NOFORMAT),
            ]
        )
        assert [r.reward for r in res] == pytest.approx([1.0, 1.5, 0.0, 1.0, 1.0])
        assert [r.correct for r in res] == [True, True, None, False, True]
        assert "components" not in res[0].details and "components" in res[1].details
        with pytest.raises(KeyError, match="not declared"):
            scorer.score([("ifeval", GOOD)])
        assert scorer.stats()["scored"] == 8  # component scores


class Batched(Verifier):
    """Stands in for a model-based verifier: overrides verify_batch, runs in the parent."""

    name = "batched"
    calls: list[int] = []

    def verify_batch(self, samples: list[Sample], workers: int = 1) -> list[Result]:
        Batched.calls.append(len(samples))
        return [Result(reward=0.25) for _ in samples]


class BrokenBatched(Batched):
    def verify_batch(self, samples: list[Sample], workers: int = 1) -> list[Result]:
        raise RuntimeError("model fell over")


def test_scorer_batches_model_based_in_process_and_records_failures() -> None:
    name, broken = f"{__name__}:Batched", f"{__name__}:BrokenBatched"
    Batched.calls.clear()
    with Scorer([name, broken, "format"], workers=1) as scorer:
        assert scorer.pool is not None and set(scorer.pool.timeouts) == {"format"}
        res = scorer.score([(name, GOOD), ([name, "format"], GOOD), (broken, GOOD)])
        assert Batched.calls == [2]  # one batch for both items
        assert [r.reward for r in res] == pytest.approx([0.25, 1.25, 0.0])
        assert res[2].error == "crash: RuntimeError: model fell over"
        assert scorer.error_counts["crash"] == 1


def test_scorer_without_pool_when_all_model_based() -> None:
    with Scorer([f"{__name__}:Batched"]) as scorer:
        assert scorer.pool is None
        assert scorer.score([(f"{__name__}:Batched", GOOD)])[0].reward == 0.25


def test_component_timeout_counts_only_its_share() -> None:
    cfg = {"slow": {"path": f"{__name__}:Slow", "timeout_s": 1.0}}
    with Scorer(["slow", "format"], cfg, workers=1) as scorer:
        (r,) = scorer.score(
            [([{"name": "slow", "weight": 1}, {"name": "format", "weight": 1}], GOOD)]
        )
        assert r.reward == 1.0 and r.error == "timeout [slow]" and r.correct is None


class Slow(Verifier):
    name = "slow"
    config_cls = VerifierConfig

    def verify(self, sample: Sample) -> Result:
        import time

        time.sleep(1000)
        raise AssertionError


class NaNScore(Verifier):
    """A reward model that returns NaN for every other sample (batched in process, as one)."""

    name = "nanscore"

    def verify_batch(self, samples: list[Sample], workers: int = 1) -> list[Result]:
        return [Result(reward=float("nan") if i % 2 else 0.5) for i in range(len(samples))]


def test_a_non_finite_score_is_a_recorded_error_scored_zero() -> None:
    """One NaN would make its group's (or the batch's) advantages NaN and skip the update."""
    name = f"{__name__}:NaNScore"
    with Scorer([name, "format"], workers=1) as scorer:
        res = scorer.score([(name, GOOD), (name, GOOD), ([name, "format"], GOOD)])
        assert [r.reward for r in res] == pytest.approx([0.5, 0.0, 1.5])
        assert res[1].error is not None and res[1].error.startswith("nonfinite: verifier")
        assert "nan" in res[1].error and res[2].error is None
        assert scorer.stats()["errors/nonfinite"] == 1


def test_the_trainer_zeroes_and_counts_non_finite_rewards() -> None:
    import torch

    from rlcore.step import _sample_metrics, finite_rewards

    results = [
        {"reward": 1.0, "correct": True, "error": None},
        {"reward": float("inf"), "correct": None, "error": None},
        {"reward": 0.0, "correct": None, "error": "nonfinite: verifier 'rm' returned reward nan"},
    ]
    assert finite_rewards(results).tolist() == [1.0, 0.0, 0.0]
    assert torch.isfinite(finite_rewards(results)).all()
    assert _sample_metrics([], results)["nonfinite_rewards"] == 2
