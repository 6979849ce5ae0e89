"""transformers fallback engine: generation, logprobs, weight sync, and the engine factory."""

import pytest
from rollout_helpers import (
    FIXED_SEQ,
    PROMPTS,
    build_tiny_llama,
    hf_logprobs,
    load_hf,
    max_abs_diff,
    perturbed_reference,
    sync_from_learner,
)

from rlcore.rollout import EngineSpec, SamplingParams, make_engine
from rlcore.rollout.hf_engine import HFEngine, _trim

TOL = 1e-4


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def setup(request, tmp_path_factory):
    path = build_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", tie=request.param)
    engine = make_engine(EngineSpec(path, "hf"))
    assert isinstance(engine, HFEngine)
    return engine, path, load_hf(path)


def test_generate_shapes_and_logprobs_match_forward(setup):
    engine, _, ref = setup
    params = SamplingParams(n=3, temperature=0.7, top_k=40, max_tokens=8, seed=5)
    out = engine.generate(PROMPTS, params)
    assert [len(samples) for samples in out] == [3] * len(PROMPTS)
    for prompt, samples in zip(PROMPTS, out, strict=True):
        for c in samples:
            assert len(c.token_ids) == len(c.logprobs) == 8 and c.finish_reason == "length"
            expected = hf_logprobs(ref, prompt + c.token_ids, params)[len(prompt) - 1 :]
            assert max_abs_diff(expected, c.logprobs) < TOL
    assert out == engine.generate(PROMPTS, params)  # same seed, same samples


def test_stop_tokens_and_greedy(setup):
    engine, _, ref = setup
    stop_all = SamplingParams(n=2, max_tokens=5, seed=1, stop_token_ids=tuple(range(128)))
    for c in engine.generate(PROMPTS[:2], stop_all)[1]:
        assert len(c.token_ids) == len(c.logprobs) == 1 and c.finish_reason == "stop"
    greedy = engine.generate(PROMPTS[:1], SamplingParams(temperature=0.0, max_tokens=4))[0][0]
    ref_lp = hf_logprobs(ref, PROMPTS[0] + greedy.token_ids)
    assert max_abs_diff(ref_lp[len(PROMPTS[0]) - 1 :], greedy.logprobs) < TOL


def test_trim_keeps_first_stop_token():
    assert _trim([4, 2, 0, 0], {2}) == ([4, 2], "stop")
    assert _trim([4, 5, 6], {2}) == ([4, 5, 6], "length")


def test_weight_sync_from_learner_process(setup):
    engine, path, _ = setup
    before = engine.score([FIXED_SEQ])[0]
    expected = hf_logprobs(perturbed_reference(path), FIXED_SEQ)
    sent, received = sync_from_learner(engine, path, bucket_bytes=4096)
    after = engine.score([FIXED_SEQ])[0]
    assert max_abs_diff(before, expected) > 0.1
    assert max_abs_diff(after, expected) < TOL
    assert sent["bytes"] == received["bytes"] and sent["buckets"] == received["buckets"] > 1


def test_make_engine_rejects_unknown_kind():
    with pytest.raises(ValueError, match="'auto', 'vllm' or 'hf'"):
        make_engine(EngineSpec("/nonexistent", "sglang"))
