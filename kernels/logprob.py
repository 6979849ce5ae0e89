"""Per-token logprob of chosen tokens and per-token entropy, from logits.

The reference path (log_softmax + gather + entropy) materialises [B, T, V] in fp32; the fused Triton
kernel and the chunked path that avoid it are a later issue and will share this signature.
Imports only torch.
"""

from __future__ import annotations

import torch


def logprob_and_entropy(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [B, T, V], tokens [B, T] -> (logprob [B, T] of tokens, entropy [B, T]), both fp32."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    chosen = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return chosen, entropy
