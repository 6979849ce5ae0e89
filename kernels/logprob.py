"""Per-token logprob of chosen tokens and per-token entropy: the reference and the dispatch.

    token_logprobs(hidden, weight, targets, temperature, impl)   # from hidden states, never [N, V]
    token_logprobs_from_logits(logits, targets, temperature, impl)

Both return (logprob, entropy) in fp32 with the targets' shape, for the distribution
softmax(logits / temperature), where logits = hidden @ weight.T (an output projection without bias).
`impl` picks the implementation; all agree to rounding and all are differentiable:

- "reference": log_softmax + gather + entropy over the full [N, V] fp32 logits (`logprob_and_entropy`).
  Simple and the ground truth in tests; its peak memory is several fp32 copies of [N, V].
- "chunked": plain torch, an online logsumexp over vocabulary chunks with recomputation in backward
  (kernels/chunked.py). Extra memory: two fp32 [N, chunk_size] buffers. CPU default.
- "fused": Triton kernels (kernels/triton_logprob.py). CUDA only (or the Triton interpreter in tests).
- "auto": "chunked" on every device until the fused kernel has run compiled on a GPU.

Imports only torch (triton lazily, for "fused").
"""

from __future__ import annotations

from typing import Literal, cast

import torch

from .chunked import chunked_linear_logprob, chunked_logits_logprob

Impl = Literal["auto", "fused", "chunked", "reference"]
IMPLS: tuple[str, ...] = ("auto", "fused", "chunked", "reference")


def logprob_and_entropy(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference. logits [..., V], tokens [...] -> (logprob [...] of tokens, entropy [...]), fp32.
    Materialises [..., V] in fp32 several times (logits, log-softmax, probabilities)."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    chosen = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return chosen, entropy


def resolve_impl(impl: str, device: torch.device) -> Impl:
    """Maps "auto" to "chunked" on every device; checks other names.

    The fused Triton kernel stays selectable by name ("fused") but is not what "auto" picks until
    it has run compiled on a GPU: so far it is tested only under the Triton interpreter on CPU."""
    if impl not in IMPLS:
        raise ValueError(f"unknown logprob impl {impl!r}; expected one of {', '.join(IMPLS)}")
    if impl != "auto":
        return cast(Impl, impl)
    return "chunked"


def token_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    impl: Impl = "auto",
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden [..., H], weight [V, H] (the output projection, same dtype as hidden), targets [...]
    int in [0, V) -> (logprob [...], entropy [...]) fp32 of softmax(hidden @ weight.T / temperature).

    chunk_size: vocabulary columns per chunk ("chunked" and "fused" backward); None: 2048, or
    more while an [N, chunk] buffer stays under 1M elements (CPU) / 32M (CUDA). Gradients flow to
    hidden and weight."""
    if hidden.shape[:-1] != targets.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and targets {tuple(targets.shape)} differ")
    if hidden.shape[-1] != weight.shape[1]:
        raise ValueError(f"hidden size {hidden.shape[-1]} != weight {tuple(weight.shape)}[1]")
    kind = resolve_impl(impl, hidden.device)
    if kind == "reference":
        return logprob_and_entropy(hidden @ weight.T, targets, temperature)
    h, tgt = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1).long()
    if kind == "fused":
        from .triton_logprob import fused_linear_logprob

        lp, ent = fused_linear_logprob(h, weight, tgt, temperature, chunk_size)
    else:
        lp, ent = chunked_linear_logprob(h, weight, tgt, temperature, chunk_size)
    return lp.view(targets.shape), ent.view(targets.shape)


def token_logprobs_from_logits(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    impl: Impl = "auto",
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [..., V] (any float dtype), targets [...] int in [0, V) -> (logprob [...],
    entropy [...]) fp32. For when the logits exist anyway (e.g. under ZeRO-3): "chunked" and "fused"
    still avoid the fp32 copies of [..., V] that the reference makes. chunk_size: "chunked" only."""
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ")
    kind = resolve_impl(impl, logits.device)
    if kind == "reference":
        return logprob_and_entropy(logits, targets, temperature)
    flat, tgt = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).long()
    if kind == "fused":
        from .triton_logprob import fused_logits_logprob

        lp, ent = fused_logits_logprob(flat, tgt, temperature)
    else:
        lp, ent = chunked_logits_logprob(flat, tgt, temperature, chunk_size)
    return lp.view(targets.shape), ent.view(targets.shape)
