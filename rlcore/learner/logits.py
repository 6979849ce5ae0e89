"""Per-token logprobs and entropies of a Hugging Face causal LM on its own tokens, by `impl`.

    logprob, entropy = policy_logprobs(model, input_ids, attention_mask, temperature, impl="auto")

"reference" runs the model to full logits and takes log_softmax over them (rlcore.kernels'
`logprob_and_entropy`); "chunked" and "fused" ask the model for its last hidden states only and apply
the output projection inside the kernel (`rlcore.kernels.token_logprobs`), so [B, L, V] logits never
exist. "auto" is "chunked" (kernels/logprob.py; the Triton kernel, "fused", only by name until it
has run compiled on a GPU), and "reference" for a vocabulary under SMALL_VOCAB.

The hidden states come from the full model's forward with `output_hidden_states=True,
logits_to_keep=1` (the last hidden state is the one after the final norm; logits for one position
only), not from calling `model.get_decoder()` directly: a DeepSpeed engine must see the forward
itself, because it hooks the outputs to run its backward prologue (ZeRO gradient bookkeeping).

Where the weight in hand is not the whole story, the hidden-state path would be wrong or unsafe, and
the model's own logits are used instead, with the logits variant of the same kernel (which still
avoids the reference's fp32 copies of [B, L, V]):
- DeepSpeed ZeRO-3 (the weight has `ds_id`): the weight is partitioned. Gathering it with
  `deepspeed.zero.GatheredParameters` covers the forward only: the kernel's backward runs after the
  weight is re-partitioned, and its gradient would have to be fed into ZeRO-3's partitioned reduction
  by hand. Through the model's lm_head, ZeRO-3's own module hooks gather it for forward and backward.
- an output projection with a bias, or logits that the model rescales or soft-caps
  (`final_logit_softcapping`, `logit_scale`, `logits_scaling` in the config).
- a model whose forward does not take `logits_to_keep`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from rlcore.kernels.logprob import (
    Impl,
    logprob_and_entropy,
    resolve_impl,
    token_logprobs,
    token_logprobs_from_logits,
)

_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")
# "auto" below this vocabulary: the logits are small, and the chunked path's extra forward outputs
# cost more than they save (the embedded tiny model: 11% slower per learner step, measured)
SMALL_VOCAB = 8192


def unwrap(model: Any) -> Any:
    """The Hugging Face model inside a DeepSpeed engine (or the model itself)."""
    return getattr(model, "module", model)


def hidden_state_path_ok(model: Any) -> bool:
    """Whether logits == last_hidden_state @ output_embeddings.weight.T and that weight is whole
    (see the module docstring for the cases that fall back to the model's logits)."""
    hf = unwrap(model)
    head = hf.get_output_embeddings()
    if head is None or getattr(head, "bias", None) is not None or hasattr(head.weight, "ds_id"):
        return False
    if any(getattr(hf.config, k, None) not in (None, 1, 1.0) for k in _LOGIT_TRANSFORMS):
        return False
    return "logits_to_keep" in inspect.signature(hf.forward).parameters


def policy_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    temperature: float = 1.0,
    impl: Impl = "auto",
    chunk_size: int | None = None,
    position_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """model: a causal LM (or a DeepSpeed engine around one); input_ids, attention_mask [B, L]
    -> (logprob [B, L-1] of input_ids[:, 1:], entropy [B, L-1]), fp32, under
    softmax(logits / temperature). Differentiable; chunk_size: see rlcore.kernels.token_logprobs.
    position_ids (and a 4-D block-diagonal attention_mask, or None) for a packed row."""
    if impl == "auto" and getattr(unwrap(model).config, "vocab_size", SMALL_VOCAB) < SMALL_VOCAB:
        impl = "reference"
    kind = resolve_impl(impl, input_ids.device)
    extra = {} if position_ids is None else {"position_ids": position_ids}
    if kind == "reference":
        logits = model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits
        return logprob_and_entropy(logits[:, :-1], input_ids[:, 1:], temperature)
    # Score all L positions against ids shifted left (the last target is a dummy, dropped below):
    # [B, L, ...] reshapes to [B*L, ...] as a view, where [:, :-1] would force a copy.
    targets = torch.roll(input_ids, -1, dims=1)
    if hidden_state_path_ok(model):
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=True,
            logits_to_keep=1,
            **extra,
        )
        weight = unwrap(model).get_output_embeddings().weight
        hidden = out.hidden_states[-1]  # [B, L, H]
        lp, ent = token_logprobs(hidden, weight, targets, temperature, kind, chunk_size)
    else:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits
        lp, ent = token_logprobs_from_logits(logits, targets, temperature, kind, chunk_size)
    return lp[:, :-1], ent[:, :-1]
