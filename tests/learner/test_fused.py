"""learner.fused_layers (rlcore/learner/fused.py): a Llama or Qwen2 model with the fused RMSNorm and
SwiGLU MLP trains like the eager one, keeps fewer bytes for backward, and falls back where the
fused forward would be wrong."""

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from rlcore.learner.fused import fuse_layers


def _model(kind: str):
    torch.manual_seed(0)
    shape = dict(
        vocab_size=96,
        hidden_size=48,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**shape))
    return Qwen2ForCausalLM(Qwen2Config(**shape))


def _train_step(model, ids):
    """One SGD step on a next-token loss; returns (loss, gradient, weights after, saved bytes).
    (SGD: AdamW's first step moves a weight by lr x the sign of its gradient, so a rounding-level
    gradient difference on a near-zero gradient would show as a full step.)"""
    saved: dict[int, int] = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(input_ids=ids).logits
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters()])
    opt.step()
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    activations = sum(n for ptr, n in saved.items() if ptr not in params)
    return float(loss.detach()), grad, weights, activations


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_a_fused_model_trains_like_the_eager_one_on_fewer_saved_bytes(kind):
    ids = torch.randint(0, 96, (4, 17), generator=torch.Generator().manual_seed(2))
    eager = _model(kind)
    fused = _model(kind)
    assert fuse_layers(fused) == 2 * 2 + 1 + 2  # two norms per layer, the final norm, two MLPs
    loss_e, grad_e, weights_e, saved_e = _train_step(eager, ids)
    loss_f, grad_f, weights_f, saved_f = _train_step(fused, ids)
    assert loss_f == pytest.approx(loss_e, rel=1e-6)
    assert torch.allclose(grad_f, grad_e, atol=1e-6)
    assert torch.allclose(weights_f, weights_e, atol=1e-6)
    assert saved_f < 0.8 * saved_e


def test_a_partitioned_or_wrapped_weight_falls_back_to_the_module_forward(monkeypatch):
    model = _model("llama")
    fuse_layers(model)
    calls = []
    monkeypatch.setattr("rlcore.learner.fused.rms_norm", lambda *a: calls.append("norm"))
    monkeypatch.setattr("rlcore.learner.fused.swiglu_down", lambda *a: calls.append("mlp"))
    layer = model.model.layers[0]
    x = torch.randn(1, 3, 48)
    layer.input_layernorm.weight.ds_id = 7  # as DeepSpeed ZeRO-3 marks a partitioned weight
    layer.mlp.down_proj = torch.nn.Sequential(layer.mlp.down_proj)  # as a LoRA wrapper would
    assert torch.is_tensor(layer.input_layernorm(x)) and torch.is_tensor(layer.mlp(x))
    assert calls == []
    layer.post_attention_layernorm(x)
    assert calls == ["norm"]


def test_a_module_whose_forward_differs_is_not_swapped():
    model = _model("llama")
    norm = model.model.norm
    type(norm).forward, original = (lambda self, x: 2 * x), type(norm).forward
    try:
        swapped = fuse_layers(model)
    finally:
        type(norm).forward = original
    assert swapped == 2  # the MLPs only: every LlamaRMSNorm failed the check
