"""DeepSpeed learner ranks as Ray actors: ZeRO-2 over two CPU ranks gives the loss curve of one rank
with the same global batch; after a sync the rollout engine serves the learner's exact weights."""

import random

import pytest
import ray
import torch

from rlcore.actors import ActorGroup, LearnerWorker, free_port
from rlcore.algo import GRPO, DrGRPO
from rlcore.config import LearnerConfig, effective_zero_stage
from rlcore.learner.batch import pad_batch, shard
from rlcore.learner.rank import LearnerSpec
from rlcore.step import _inert_rows


def _batches(n_steps: int, size: int, vocab: int, equal_groups: int = 0):
    """Random sequences; `equal_groups` groups of 4 per batch get all-equal rewards (zero GRPO
    advantage), the others random 0/1."""
    rng = random.Random(0)
    out = []
    for _ in range(n_steps):
        prompts = [
            [rng.randrange(10, vocab) for _ in range(rng.randrange(4, 9))] for _ in range(size)
        ]
        comps = [
            [rng.randrange(10, vocab) for _ in range(rng.randrange(2, 12))] for _ in range(size)
        ]
        rewards = torch.tensor([float(rng.random() < 0.5) for _ in range(size)])
        for g in range(equal_groups):
            rewards[4 * g : 4 * g + 4] = float(g % 2)
        adv = GRPO(group_size=4).advantages(rewards).tolist()
        out.append(pad_batch(prompts, comps, adv, pad_id=0))
    return out


def _spec(
    model_path: str,
    rank: int,
    world_size: int,
    micro: int,
    port: int,
    zero_stage: int = 2,
    algo: object = None,
    **learner: object,
) -> LearnerSpec:
    cfg = LearnerConfig(
        **{"micro_batch_size": micro, "zero_stage": zero_stage, "lr": 1e-2, **learner}
    )
    return LearnerSpec(
        model_path=model_path,
        rank=rank,
        world_size=world_size,
        master_addr="127.0.0.1",
        master_port=port,
        cfg=cfg,
        algo=algo or GRPO(group_size=4),
    )


def _curve(
    model_path: str,
    world_size: int,
    micro: int,
    zero_stage: int,
    algo: GRPO | None = None,
    equal_groups: int = 0,
    skip_inert: bool = False,
    **learner: object,
) -> list[dict]:
    port = free_port()
    group = ActorGroup(
        [
            LearnerWorker.remote(
                _spec(model_path, r, world_size, micro, port, zero_stage, algo=algo, **learner)
            )
            for r in range(world_size)
        ]
    )
    curve = []
    try:
        for batch in _batches(4, 16, 90, equal_groups):
            tokens, seqs = float(batch.loss_mask.sum()), float(len(batch))
            if skip_inert:  # as step.update sends it: the rows with a gradient, whole-batch sizes
                batch = batch.select((~_inert_rows(batch, world_size)).nonzero().flatten())
            outs = group.call_each(
                "rl_step",
                [(shard(batch, r, world_size), tokens, 1.0, seqs) for r in range(world_size)],
            )
            # the surrogate's value is constant on-policy; the entropy moves with the weights
            curve.append(
                {
                    "entropy": sum(o["entropy"] for o in outs) / tokens,
                    "grad_norm": outs[0]["grad_norm"],
                }
            )
        probe = pad_batch([[11, 12, 13]], [[14, 15, 16, 17]], [0.0], pad_id=0)
        curve.append({"probe": ray.get(group.actors[0].logprobs.remote(probe))[0]})
    finally:
        for a in group.actors:
            ray.kill(a)
    return curve


@pytest.mark.slow
@pytest.mark.parametrize(
    "algo",
    [GRPO(group_size=4), DrGRPO(group_size=4, loss_agg_constant=16.0)],
    ids=["grpo-token-mean", "drgrpo-seq-mean-token-sum"],
)
def test_two_ranks_match_one_rank_with_the_same_global_batch(algo, tiny_chat_model, ray_local):
    # one rank: 4 micro-batches of 4; two ranks: 1 micro-batch of 8 each. The one rank runs
    # DeepSpeed's plain engine (effective_zero_stage), the two ZeRO-2: the same update, and the
    # grad norm the learner measures itself equals ZeRO-2's
    one = _curve(tiny_chat_model, world_size=1, micro=4, zero_stage=2, algo=algo)
    two = _curve(tiny_chat_model, world_size=2, micro=8, zero_stage=2, algo=algo)
    for a, b in zip(one[:-1], two[:-1], strict=True):
        assert a["entropy"] == pytest.approx(b["entropy"], rel=1e-4)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3)
    # the weights after 4 updates agree: same logprobs of a probe sequence
    assert one[-1]["probe"] == pytest.approx(two[-1]["probe"], abs=1e-4)
    # and training moved them (the comparison is not trivially between two untouched models)
    assert one[0]["entropy"] != pytest.approx(one[3]["entropy"], rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algo", "world_size"),
    [(GRPO(group_size=4), 1), (DrGRPO(group_size=4, loss_agg_constant=16.0), 2)],
    ids=["grpo-1-rank", "drgrpo-2-ranks"],
)
def test_leaving_out_zero_advantage_rows_gives_the_same_update(
    algo, world_size, tiny_chat_model, ray_local
):
    # two of four groups per batch have all-equal rewards: half the rows carry no gradient
    full = _curve(tiny_chat_model, world_size, 4, 2, algo=algo, equal_groups=2)
    lean = _curve(tiny_chat_model, world_size, 4, 2, algo=algo, equal_groups=2, skip_inert=True)
    for a, b in zip(full[:-1], lean[:-1], strict=True):
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    assert full[-1]["probe"] == pytest.approx(lean[-1]["probe"], abs=1e-4)
    batch = _batches(1, 16, 90, equal_groups=2)[0]
    assert int(_inert_rows(batch, world_size).sum()) >= 8  # the rows really were left out


@pytest.mark.slow
def test_reference_model_gives_kl_only_after_the_policy_moves(tiny_chat_model, ray_local):
    algo = GRPO(group_size=4, kl_coef=0.1)  # a KL term: the rank loads a reference model
    actor = LearnerWorker.remote(_spec(tiny_chat_model, 0, 1, 16, free_port(), algo=algo))
    try:
        batch = _batches(1, 16, 90)[0]
        tokens = float(batch.loss_mask.sum())
        first = ray.get(actor.rl_step.remote(batch, tokens))
        second = ray.get(actor.rl_step.remote(batch, tokens))
        assert first["kl"] / tokens == pytest.approx(0.0, abs=1e-6)  # policy == reference at first
        assert second["kl"] / tokens > 1e-5  # after one update they differ, and k3 >= 0
    finally:
        ray.kill(actor)


@pytest.mark.slow
def test_packing_token_budget_and_checkpointing_keep_the_update(tiny_chat_model, ray_local):
    plain = _curve(tiny_chat_model, world_size=1, micro=16, zero_stage=2)
    packed = _curve(
        tiny_chat_model,
        world_size=1,
        micro=16,
        zero_stage=2,
        packing=True,
        max_tokens_per_micro_batch=60,  # several length-sorted micro-batches per step
        gradient_checkpointing=True,
    )
    for a, b in zip(plain[:-1], packed[:-1], strict=True):
        assert a["entropy"] == pytest.approx(b["entropy"], rel=1e-4)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3)
    assert plain[-1]["probe"] == pytest.approx(packed[-1]["probe"], abs=1e-4)


@pytest.mark.slow
def test_logprob_impls_give_the_same_training_curve(tiny_chat_model, ray_local):
    reference = _curve(tiny_chat_model, 1, 16, 2, logprob_impl="reference")
    chunked = _curve(tiny_chat_model, 1, 16, 2, logprob_impl="chunked")
    for a, b in zip(reference[:-1], chunked[:-1], strict=True):
        assert a["entropy"] == pytest.approx(b["entropy"], rel=1e-4)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3)
    assert reference[-1]["probe"] == pytest.approx(chunked[-1]["probe"], abs=1e-4)


def test_one_rank_takes_the_plain_engine_unless_zero_3_offload_or_bf16_ask_for_zero():
    def stage(world: int, dtype: str = "float32", **kw: object) -> int:
        lc = LearnerConfig(world_size=world, **kw)  # type: ignore[arg-type]
        return effective_zero_stage(lc, dtype)

    assert [stage(1, zero_stage=s) for s in (0, 1, 2, 3)] == [0, 0, 0, 3]
    assert [stage(2, zero_stage=s) for s in (0, 1, 2, 3)] == [0, 1, 2, 3]
    assert stage(1, zero_stage=2, offload_optimizer=True) == 2
    # bf16 keeps its stage: DeepSpeed's stage 0 would wrap it in its own bf16 optimizer, whose
    # fp32 gradients the learner's clipping does not see
    assert stage(1, "bfloat16", zero_stage=2) == 2
