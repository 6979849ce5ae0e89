"""Learner guards and options on real DeepSpeed ranks (Ray actors, CPU): a non-finite update is
skipped and then stops the run; truncated importance sampling sees a deliberate rollout mismatch;
LoRA and ZeRO-3 still hand the engines full weights under the base model's names."""

import pytest
import ray
import torch
from test_learner import _batches, _spec

from rlcore.actors import LearnerWorker, free_port
from rlcore.algo import GRPO
from rlcore.learner.batch import pad_batch

PROBE = pad_batch([[11, 12, 13]], [[14, 15, 16, 17]], [0.0], pad_id=0)


def _actor(model, **learner):
    return LearnerWorker.remote(_spec(model, 0, 1, 16, free_port(), **learner))


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [0, 2])
def test_nonfinite_loss_skips_the_update_then_stops(zero_stage, tiny_chat_model, ray_local):
    actor = _actor(tiny_chat_model, zero_stage=zero_stage, max_nonfinite_steps=2)
    try:
        batch = _batches(1, 16, 90)[0]
        tokens = float(batch.loss_mask.sum())
        before = ray.get(actor.logprobs.remote(PROBE))
        poisoned = batch.with_(advantages=torch.full_like(batch.advantages, float("nan")))
        out = ray.get(actor.rl_step.remote(poisoned, tokens))
        assert out["nonfinite"] == 1.0
        assert ray.get(actor.logprobs.remote(PROBE)) == before  # the weights did not move
        ok = ray.get(actor.rl_step.remote(batch, tokens))
        assert ok["nonfinite"] == 0.0 and ray.get(actor.logprobs.remote(PROBE)) != before
        ray.get(actor.rl_step.remote(poisoned, tokens))  # 1 in a row
        with pytest.raises(ray.exceptions.RayTaskError, match="max_nonfinite_steps=2"):
            ray.get(actor.rl_step.remote(poisoned, tokens))
    finally:
        ray.kill(actor)


@pytest.mark.slow
def test_tis_sees_a_rollout_sampled_at_another_temperature(tiny_chat_model, ray_local):
    algo = GRPO(group_size=4, tis_cap=1.2)
    actor = _actor(tiny_chat_model, lr=0.0, algo=algo)  # keep the weights: one policy scored
    try:
        batch = _batches(1, 16, 90)[0]
        tokens = float(batch.loss_mask.sum())
        same = ray.get(actor.prepare.remote(batch, 1.0))["old_logprobs"]
        other = ray.get(actor.prepare.remote(batch, 0.3))["old_logprobs"]
        matched = ray.get(actor.rl_step.remote(batch.with_(rollout_logprobs=same), tokens))
        skewed = ray.get(actor.rl_step.remote(batch.with_(rollout_logprobs=other), tokens))
        assert matched["mismatch_abs"] / tokens < 1e-5
        assert matched["tis_weight"] / tokens == pytest.approx(1.0, abs=1e-5)
        assert matched["tis_truncated"] == 0
        assert skewed["mismatch_abs"] / tokens > 0.05 and skewed["mismatch_kl"] > 0
        assert skewed["tis_truncated"] > 0 and skewed["mismatch_abs_max"] > 0.3
        assert skewed["tis_weight"] / tokens != pytest.approx(1.0, abs=1e-3)
    finally:
        ray.kill(actor)


@pytest.mark.slow
def test_lora_and_zero3_sync_full_weights_by_base_names(tiny_chat_model, ray_local):
    plain = _actor(tiny_chat_model)
    lora = _actor(tiny_chat_model, lora_rank=4, lr_schedule="cosine", warmup_steps=1)
    zero3 = _actor(tiny_chat_model, zero_stage=3)
    try:
        want = ray.get(plain.param_meta.remote())
        batch = _batches(1, 16, 90)[0]
        tokens = float(batch.loss_mask.sum())
        for actor in (lora, zero3):
            assert ray.get(actor.param_meta.remote()) == want
            before = ray.get(actor.logprobs.remote(PROBE))
            for _ in range(2):
                out = ray.get(actor.rl_step.remote(batch, tokens))
            assert out["nonfinite"] == 0.0
            assert ray.get(actor.logprobs.remote(PROBE)) != before
    finally:
        for a in (plain, lora, zero3):
            ray.kill(a)


@pytest.mark.slow
def test_a_lora_checkpoint_holds_merged_weights_that_load_as_they_are_and_the_adapter(
    tiny_chat_model, ray_local, tmp_path
):
    from transformers import AutoModelForCausalLM

    lora = _actor(tiny_chat_model, lora_rank=4)
    try:
        batch = _batches(1, 16, 90)[0]
        for _ in range(2):
            ray.get(lora.rl_step.remote(batch, float(batch.loss_mask.sum())))
        trained = ray.get(lora.logprobs.remote(PROBE))
        ray.get(lora.save.remote(str(tmp_path)))
    finally:
        ray.kill(lora)
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "policy", torch_dtype=torch.float32)
    ids = PROBE.input_ids
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
    got = logits.gather(-1, ids[0, 1:, None])[:, 0]  # every target position, as the learner's
    assert torch.allclose(got, torch.tensor(trained[0]), atol=1e-4)
