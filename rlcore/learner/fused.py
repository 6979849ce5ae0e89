"""The learner's Llama-family decoders with rlcore.kernels.layers' RMSNorm and SwiGLU MLP
(`learner.fused_layers`): the same values, about a third fewer saved activations.

    fused = fuse_layers(model)   # before DeepSpeed wraps it; returns how many modules it swapped

Only modules whose forward is known to be exactly the kernels' maths are swapped (by class, and
each class checked once against its own forward on a random input before it is swapped). At call
time a module falls back to its own forward where the fused one would be wrong: a weight that
DeepSpeed ZeRO-3 partitions (`ds_id`: the saved weight is empty by backward, and only the module's
own hooks gather it), or a down projection that is no longer a plain Linear (LoRA wraps it).
"""

from __future__ import annotations

import logging
from types import MethodType
from typing import Any

import torch
from torch import nn

from rlcore.kernels.layers import rms_norm, swiglu_down

log = logging.getLogger(__name__)

NORMS = frozenset({"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm"})
MLPS = frozenset({"LlamaMLP", "MistralMLP", "Qwen2MLP", "Qwen3MLP"})


def _norm_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    if hasattr(self.weight, "ds_id"):
        return type(self).forward(self, x)
    return rms_norm(x, self.weight, self.variance_epsilon)


def _mlp_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    down = self.down_proj
    if type(down) is not nn.Linear or hasattr(down.weight, "ds_id"):
        return type(self).forward(self, x)
    return swiglu_down(self.gate_proj(x), self.up_proj(x), down.weight)


def _plain_swiglu(mlp: nn.Module) -> bool:
    linears = [getattr(mlp, k, None) for k in ("gate_proj", "up_proj", "down_proj")]
    plain = all(type(m) is nn.Linear and m.bias is None for m in linears)
    act = getattr(mlp, "act_fn", None)
    return plain and (isinstance(act, nn.SiLU) or type(act).__name__ == "SiLUActivation")


def _agrees(module: nn.Module, fused: Any, width: int) -> bool:
    """The fused forward gives the module's own output on a random input."""
    param = next(module.parameters())
    x = torch.randn(2, 3, width, dtype=param.dtype, device=param.device)
    with torch.no_grad():
        return bool(torch.allclose(fused(module, x), type(module).forward(module, x), atol=1e-5))


def fuse_layers(model: nn.Module) -> int:
    """Swaps the forward of every known RMSNorm and SwiGLU MLP of `model`; returns the count."""
    checked: dict[type, bool] = {}
    swapped = 0
    for module in model.modules():
        kind = type(module).__name__
        if kind in NORMS and hasattr(module, "variance_epsilon"):
            fused, width = _norm_forward, module.weight.shape[-1]
        elif kind in MLPS and _plain_swiglu(module):
            fused, width = _mlp_forward, module.gate_proj.in_features
        else:
            continue
        if type(module) not in checked:
            checked[type(module)] = _agrees(module, fused, width)
            if not checked[type(module)]:
                log.warning("learner.fused_layers: %s differs from its own forward; kept", kind)
        if checked[type(module)]:
            module.forward = MethodType(fused, module)  # type: ignore[method-assign]
            swapped += 1
    return swapped
