"""Micro-batching by token budget and padding-free packing: the grouping changes memory, never the
loss. Packing is checked against padding on a real (tiny, random) Llama, values and gradients."""

import random

import pytest
import torch
from rlcore.kernels.logprob import logprob_and_entropy
from transformers import LlamaConfig, LlamaForCausalLM

from rlcore.algo import GRPO
from rlcore.learner.batch import micro_batches, pad_batch, right_padded, to_packed


def _batch(n=11, seed=0):
    rng = random.Random(seed)
    prompts = [[rng.randrange(3, 60) for _ in range(rng.randrange(2, 7))] for _ in range(n)]
    comps = [[rng.randrange(3, 60) for _ in range(rng.randrange(1, 12))] for _ in range(n)]
    adv = [rng.uniform(-1, 1) for _ in range(n)]
    return pad_batch(
        prompts, comps, adv, pad_id=0, rollout_logprobs=[[-1.0] * len(c) for c in comps]
    )


def test_token_budget_covers_every_row_once_within_budget():
    batch = _batch()
    mbs = micro_batches(batch, size=4, token_budget=40)
    rows = sorted(
        tuple(r[m.bool()].tolist())
        for mb in mbs
        for r, m in zip(mb.input_ids, mb.attention_mask, strict=True)
    )
    want = sorted(
        tuple(r[m.bool()].tolist())
        for r, m in zip(batch.input_ids, batch.attention_mask, strict=True)
    )
    assert rows == want
    for mb in mbs:
        assert len(mb) * mb.input_ids.shape[1] <= 40 or len(mb) == 1
    assert float(sum(mb.loss_mask.sum() for mb in mbs)) == float(batch.loss_mask.sum())
    assert [len(mb) for mb in micro_batches(batch, size=4)] == [4, 4, 3]


def test_length_sorted_micro_batches_cover_every_row_once_with_less_padding():
    batch = _batch()
    plain, sorted_ = micro_batches(batch, size=4), micro_batches(batch, size=4, by_length=True)
    rows = lambda mbs: sorted(  # noqa: E731
        tuple(r[m.bool()].tolist())
        for mb in mbs
        for r, m in zip(mb.input_ids, mb.attention_mask, strict=True)
    )
    assert rows(sorted_) == rows(plain) and [len(mb) for mb in sorted_] == [4, 4, 3]
    widths = [int(mb.lengths().max()) for mb in sorted_]
    assert widths == sorted(widths, reverse=True)  # longest first
    padded = lambda mbs: sum(len(mb) * mb.input_ids.shape[1] for mb in mbs)  # noqa: E731
    assert padded(sorted_) <= padded(plain)
    assert float(sum(mb.loss_mask.sum() for mb in sorted_)) == float(batch.loss_mask.sum())


def _model():
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("budget", [0, 30])
def test_packing_gives_the_padded_loss_and_gradient(budget):
    batch = _batch()
    algo = GRPO(group_size=1)
    tokens = float(batch.loss_mask.sum())

    def loss_and_grad(packed: bool):
        model = _model()
        total = 0.0
        for mb in micro_batches(batch, 4, budget):
            width = mb.input_ids.shape[1]
            if packed:
                p = to_packed(mb)
                logits = model(
                    input_ids=p.input_ids,
                    position_ids=p.position_ids,
                    attention_mask=p.attention_mask,
                ).logits
                lp, ent = logprob_and_entropy(logits[:, :-1], p.input_ids[:, 1:], 0.7)
                lp, ent = p.unpack(lp, width), p.unpack(ent, width)
            else:
                logits = model(input_ids=mb.input_ids, attention_mask=mb.attention_mask).logits
                lp, ent = logprob_and_entropy(logits[:, :-1], mb.input_ids[:, 1:], 0.7)
            loss_t, _ = algo.token_loss(lp, lp.detach(), mb.advantages, ent, None, mb.loss_mask)
            loss = algo.aggregate(loss_t, mb.loss_mask, tokens, float(len(batch)))
            loss.backward()
            total += float(loss.detach()) + float((ent.detach() * mb.loss_mask).sum())
        grad = torch.cat([p.grad.flatten() for p in model.parameters()])
        return total, grad

    padded_loss, padded_grad = loss_and_grad(False)
    packed_loss, packed_grad = loss_and_grad(True)
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    assert torch.allclose(packed_grad, padded_grad, atol=1e-6)
    assert padded_grad.abs().sum() > 0


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_right_padding_needs_no_attention_mask_for_any_loss_token(attn):
    """The learner drops a right-padded batch's mask (rank._inputs): every loss token's logprob,
    and the gradient, are the masked forward's."""
    batch = _batch()
    assert right_padded(batch.attention_mask)
    assert not bool(batch.attention_mask.all())  # ragged: the mask is not all ones
    model = _model()
    model.config._attn_implementation = attn

    def run(mask):
        model.zero_grad()
        logits = model(input_ids=batch.input_ids, attention_mask=mask).logits
        lp, _ = logprob_and_entropy(logits[:, :-1], batch.input_ids[:, 1:], 1.0)
        (lp * batch.loss_mask * batch.advantages[:, None]).sum().backward()
        return lp * batch.loss_mask, torch.cat([p.grad.flatten() for p in model.parameters()])

    lp_masked, grad_masked = run(batch.attention_mask)
    lp_free, grad_free = run(None)
    assert torch.allclose(lp_free, lp_masked, atol=1e-6)
    assert torch.allclose(grad_free, grad_masked, atol=1e-6)


def test_a_pad_before_a_token_keeps_the_mask():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    assert right_padded(mask)
    assert not right_padded(torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]))  # left padding
    assert not right_padded(torch.tensor([[1, 0, 1, 0]]))  # a hole
