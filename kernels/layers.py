"""A decoder layer's RMSNorm and SwiGLU MLP that keep less for backward (fused in autograd, not
in a compiled kernel): the same values, the activations a training step holds about a third
smaller.

Eager torch keeps, per RMSNorm, the normalised input beside the input itself, and per SwiGLU MLP
four [tokens, intermediate] tensors: the gate and up projections, silu(gate), and their product
(the down projection's input). These functions keep the input (RMSNorm: and the per-row 1/rms)
and the gate and up projections, and recompute the rest in backward from them: elementwise work
against the matmuls around it. For SmolLM2-135M on 16 x 109 tokens the activations a forward
saves go from 2,236 to 1,389 MiB (docs/benchmarks.md).

    y = rms_norm(x, weight, eps)              # == weight * (x * rsqrt(mean(x^2) + eps)).to(x.dtype)
    out = swiglu_down(gate, up, down_weight)  # == F.linear(F.silu(gate) * up, down_weight)

The maths follow the eager modules exactly (fp32 statistics for the norm, as Llama's RMSNorm);
gradients agree to rounding. Imports only torch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        xf = x.float()
        rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, weight, rstd)
        return weight * (xf * rstd).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, rstd = ctx.saved_tensors
        xhat = x.float() * rstd
        grad_weight = None
        if ctx.needs_input_grad[1]:
            # as eager's broadcast multiply reduces it: in the product's dtype, then the weight's
            prod = grad * xhat.to(x.dtype)
            grad_weight = prod.reshape(-1, prod.shape[-1]).sum(0).to(weight.dtype)
        g = (grad * weight).float()
        # d/dx of x * rsqrt(mean(x^2) + eps): rstd * (g - xhat * mean(g * xhat))
        grad_x = rstd * (g - xhat * (g * xhat).mean(-1, keepdim=True))
        return grad_x.to(x.dtype), grad_weight, None


class _SwiGLUDown(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, gate: torch.Tensor, up: torch.Tensor, down_weight: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(gate, up, down_weight)
        return F.linear(F.silu(gate) * up, down_weight)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        gate, up, down_weight = ctx.saved_tensors
        sig = torch.sigmoid(gate)
        silu = gate * sig
        grad_h = grad @ down_weight  # [..., intermediate]
        grad_down = None
        if ctx.needs_input_grad[2]:
            h = silu * up
            grad_down = grad.reshape(-1, grad.shape[-1]).t() @ h.reshape(-1, h.shape[-1])
        grad_up = grad_h * silu
        # silu'(g) = sigmoid(g) * (1 + g * (1 - sigmoid(g))), as torch's SiluBackward
        grad_gate = grad_h * up * (sig * (1 + gate * (1 - sig)))
        return grad_gate, grad_up, grad_down


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Llama-style RMSNorm (statistics in fp32, the scale applied in x's dtype) that saves only x
    and the per-row 1/rms for backward."""
    return _RMSNorm.apply(x, weight, eps)


def swiglu_down(gate: torch.Tensor, up: torch.Tensor, down_weight: torch.Tensor) -> torch.Tensor:
    """down_proj(silu(gate) * up) without a bias, saving only gate and up for backward."""
    return _SwiGLUDown.apply(gate, up, down_weight)
