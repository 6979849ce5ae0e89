"""rlcore.kernels.layers: the fused RMSNorm and SwiGLU MLP give the eager maths' values and
gradients (the models that use them: tests/learner/test_fused.py)."""

import pytest
import torch
import torch.nn.functional as F
from rlcore.kernels.layers import rms_norm, swiglu_down


def _eager_norm(x, w, eps):
    xf = x.float()
    return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _grads(fn, *inputs):
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*leaves)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * g).sum().backward()
    return out.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-6), (torch.bfloat16, 2e-2)])
def test_rms_norm_gives_the_eager_values_and_gradients(dtype, tol):
    torch.manual_seed(0)
    x, w = torch.randn(3, 5, 48).to(dtype), (1 + 0.1 * torch.randn(48)).to(dtype)
    out, (gx, gw) = _grads(lambda a, b: rms_norm(a, b, 1e-5), x, w)
    ref, (rx, rw) = _grads(lambda a, b: _eager_norm(a, b, 1e-5), x, w)
    assert torch.equal(out, ref)
    assert torch.allclose(gx.float(), rx.float(), atol=tol, rtol=tol)
    assert torch.allclose(gw.float(), rw.float(), atol=tol * 10, rtol=tol)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-6), (torch.bfloat16, 2e-2)])
def test_swiglu_down_gives_the_eager_values_and_gradients(dtype, tol):
    torch.manual_seed(0)
    gate, up, w = torch.randn(2, 7, 64), torch.randn(2, 7, 64), torch.randn(24, 64) / 8
    gate, up, w = gate.to(dtype), up.to(dtype), w.to(dtype)
    out, got = _grads(swiglu_down, gate, up, w)
    ref, want = _grads(lambda g, u, d: F.linear(F.silu(g) * u, d), gate, up, w)
    assert torch.equal(out, ref)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a.float(), b.float(), atol=tol, rtol=tol)
