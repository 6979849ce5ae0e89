"""rlcore/learner/logits.py: policy_logprobs on a tiny random LlamaForCausalLM gives the same
logprobs, entropies and parameter gradients with every impl, and a few optimizer steps of a
policy-gradient loss give the same loss curve."""

import copy

import pytest
import torch
from kernel_helpers import DEVICE, assert_close
from transformers import LlamaConfig, LlamaForCausalLM

from rlcore.learner.logits import hidden_state_path_ok, policy_logprobs

VOCAB = 1000  # not a multiple of any block or chunk
IMPLS = ["reference", "chunked", pytest.param("fused", marks=pytest.mark.triton)]


def tiny_llama(tied: bool, dtype: torch.dtype = torch.float32, **extra) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        initializer_range=0.15,  # peaked enough that logprobs vary between tokens
        tie_word_embeddings=tied,
        **extra,
    )
    return LlamaForCausalLM(config).to(DEVICE, dtype)


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """3 sequences of length 12, left-padded to ragged lengths; the loss covers the last tokens."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (3, 12), generator=g)
    attn = torch.ones(3, 12, dtype=torch.long)
    attn[1, :4] = 0
    attn[2, :7] = 0
    loss_mask = torch.zeros(3, 11)
    loss_mask[:, 5:] = 1.0
    loss_mask *= attn[:, 1:].float()
    adv = torch.randn(3, 1, generator=g).expand(3, 11)  # one advantage per sequence
    out = {"input_ids": ids, "attention_mask": attn, "mask": loss_mask, "adv": adv}
    return {k: v.to(DEVICE) for k, v in out.items()}


def pg_loss(model, b, impl: str, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """-(adv * logprob * mask).sum() / mask.sum() (the learner's token-mean policy gradient)."""
    lp, ent = policy_logprobs(model, b["input_ids"], b["attention_mask"], temperature, impl)  # type: ignore[arg-type]
    assert lp.shape == ent.shape == (3, 11) and lp.dtype == torch.float32
    return -(b["adv"] * lp * b["mask"]).sum() / b["mask"].sum(), torch.stack([lp, ent])


def grads_of(model, b, impl: str, temperature: float) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    loss, out = pg_loss(model, b, impl, temperature)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    grads["head"] = model.get_output_embeddings().weight.grad.detach().clone()  # tied or not
    return out.detach(), grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("impl", IMPLS[1:])
def test_policy_logprobs_match_reference(impl, tied, dtype, request):
    if impl == "fused":
        request.getfixturevalue("triton_kernels")
    model, b = tiny_llama(tied, dtype), batch()
    assert hidden_state_path_ok(model)
    want, want_grads = grads_of(model, b, "reference", 0.8)
    got, got_grads = grads_of(model, b, impl, 0.8)
    tol = 2e-5 if dtype == torch.float32 else 5e-2
    assert_close(got[0], want[0], tol, "logprob")
    assert_close(got[1], want[1], tol, "entropy")
    assert want_grads["head"].abs().max() > 0
    for name, g in want_grads.items():
        assert_close(got_grads[name], g, tol * (2 if dtype == torch.float32 else 1), name)


def test_fallback_to_logits_when_the_head_is_not_plain():
    """A config that rescales logits, a bias, or a ZeRO-3-partitioned weight (ds_id) makes the
    hidden-state path unsafe: the model's own logits are used, still with the chunked kernel."""
    b = batch(1)
    model = tiny_llama(False)
    want, want_grads = grads_of(model, b, "reference", 1.0)
    model.config.final_logit_softcapping = 30.0  # ignored by Llama: results must not change
    assert not hidden_state_path_ok(model)
    got, got_grads = grads_of(model, b, "chunked", 1.0)
    assert_close(got, want, 2e-5, "logprob, entropy")
    assert_close(got_grads["head"], want_grads["head"], 2e-5, "lm_head")
    model.config.final_logit_softcapping = None
    model.lm_head.weight.ds_id = 7  # type: ignore[attr-defined]
    assert not hidden_state_path_ok(model)


@pytest.mark.parametrize("impl", IMPLS[1:])
def test_training_gives_the_same_loss_curve(impl, request):
    """Five AdamW steps on the policy-gradient loss from the same start: the curves agree."""
    if impl == "fused":
        request.getfixturevalue("triton_kernels")
    start, b = tiny_llama(tied=True), batch(2)

    def curve(name: str) -> list[float]:
        model = copy.deepcopy(start)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
        losses = []
        for _ in range(5):
            opt.zero_grad(set_to_none=True)
            loss, _ = pg_loss(model, b, name, 0.9)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses

    want, got = curve("reference"), curve(impl)
    assert abs(want[-1] - want[0]) > 0.1  # the steps do move the loss
    assert got == pytest.approx(want, rel=1e-4, abs=1e-4)
