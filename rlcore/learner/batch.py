"""Packing rollout samples into padded tensors for the learner, splitting them across ranks and
micro-batches, and the padding-free ("packed") layout of one micro-batch.

A sample is (prompt_ids, completion_ids, advantage); the learner trains on exactly the token ids the
engine produced (no decode-then-re-tokenize). Loss is taken on completion tokens only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass
class TokenBatch:
    """Right-padded sequences. input_ids/attention_mask [B, L]; every other [B, L-1] tensor is
    aligned with the *targets* input_ids[:, 1:]; advantages are [B] (one per response) or
    [B, L-1] (per token, e.g. GAE)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    advantages: torch.Tensor
    old_logprobs: torch.Tensor | None = None  # the learner's, before this update (PPO ratio)
    rollout_logprobs: torch.Tensor | None = None  # the engine's (mismatch, TIS)
    ref_logprobs: torch.Tensor | None = None
    returns: torch.Tensor | None = None  # critic targets
    old_values: torch.Tensor | None = None  # the critic's values at rollout time

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def lengths(self) -> torch.Tensor:
        return self.attention_mask.sum(1)

    def select(self, index: torch.Tensor | list[int]) -> TokenBatch:
        """The rows `index` (in that order), trimmed to their longest sequence."""
        idx = torch.as_tensor(index, dtype=torch.long)
        width = int(self.attention_mask[idx].sum(1).max().item()) if len(idx) else 1
        out = {}
        for f in dataclasses.fields(self):
            t = getattr(self, f.name)
            if t is None:
                out[f.name] = None
            elif f.name in ("input_ids", "attention_mask"):
                out[f.name] = t[idx, :width]
            else:
                out[f.name] = t[idx, : width - 1] if t.ndim == 2 else t[idx]
        return TokenBatch(**out)

    def slice(self, start: int, stop: int) -> TokenBatch:
        return self.select(list(range(start, stop)))

    def with_(self, **fields: torch.Tensor | None) -> TokenBatch:
        return dataclasses.replace(self, **fields)


def pad_batch(
    prompts: list[list[int]],
    completions: list[list[int]],
    advantages: list[float],
    pad_id: int,
    rollout_logprobs: list[list[float]] | None = None,
    masks: list[list[int] | None] | None = None,
) -> TokenBatch:
    """Concatenate prompt + completion per sample, right-PAD (one row each; `to_packed` is the
    padding-free layout), mask the completion's targets. rollout_logprobs (the engine's, per
    completion token) land in `TokenBatch.rollout_logprobs`, aligned with the targets.
    masks (per completion token, e.g. 0 on a multi-turn episode's tool tokens; None = all 1)
    multiply the completion's loss mask."""
    seqs = [p + c for p, c in zip(prompts, completions, strict=True)]
    width = max(map(len, seqs))
    n = len(seqs)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, width - 1), dtype=torch.float32)
    rollout = None
    if rollout_logprobs is not None:
        rollout = torch.zeros((n, width - 1), dtype=torch.float32)
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        attn[i, : len(p) + len(c)] = 1
        # target position t predicts token t+1: completion tokens are targets len(p)-1 .. len(p)+len(c)-2
        mask[i, len(p) - 1 : len(p) + len(c) - 1] = 1.0
        m = masks[i] if masks is not None else None
        if m is not None:
            if len(m) != len(c):
                raise ValueError(f"sample {i}: {len(m)} mask entries for {len(c)} tokens")
            mask[i, len(p) - 1 : len(p) + len(c) - 1] *= torch.tensor(m, dtype=torch.float32)
        if rollout is not None and rollout_logprobs is not None:
            rollout[i, len(p) - 1 : len(p) + len(c) - 1] = torch.tensor(rollout_logprobs[i])
    adv = torch.tensor(advantages, dtype=torch.float32)
    return TokenBatch(ids, attn, mask, adv, rollout_logprobs=rollout)


def right_padded(attention_mask: torch.Tensor) -> bool:
    """Whether every row of a [B, L] mask is its tokens then its padding (no pad before a token)."""
    return bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())


def cat_padded(parts: list[torch.Tensor], width: int | None = None) -> torch.Tensor:
    """Row blocks [b_i, w_i] right-padded with 0 to `width` (default: the widest) and stacked."""
    width = max(p.shape[1] for p in parts) if width is None else width
    return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1])) for p in parts])


def shard(batch: TokenBatch, rank: int, world_size: int) -> TokenBatch:
    """Rank `rank`'s contiguous 1/world_size share (the batch size must divide evenly)."""
    n = len(batch)
    if n % world_size:
        raise ValueError(f"batch of {n} sequences does not split over {world_size} learner ranks")
    per = n // world_size
    return batch.slice(rank * per, (rank + 1) * per)


def micro_batches(
    batch: TokenBatch, size: int, token_budget: int = 0, by_length: bool = False
) -> list[TokenBatch]:
    """Micro-batches, each trimmed to its longest row: `size` sequences each, in order (callers
    that concatenate per-row outputs rely on it) or, `by_length`, longest first, so a long
    prompt's rows (a tool schema) do not widen a micro-batch of short ones; or, with token_budget >
    0, length-sorted micro-batches whose padded size (rows x longest row) stays within the budget
    (a sequence longer than the budget gets a micro-batch of its own). The loss uses global
    denominators, so the grouping changes memory and speed, never the update (up to the float
    rounding of the summation order)."""
    n = len(batch)
    if token_budget <= 0 and not by_length:
        return [batch.slice(s, min(s + size, n)) for s in range(0, n, size)]
    order = torch.argsort(batch.lengths(), descending=True, stable=True).tolist()
    if token_budget <= 0:
        return [batch.select(order[s : s + size]) for s in range(0, n, size)]
    lengths = batch.lengths().tolist()
    groups: list[list[int]] = []
    for i in order:  # longest first: a group's first row sets its width
        if groups and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= token_budget:
            groups[-1].append(i)
        else:
            groups.append([i])
    return [batch.select(g) for g in groups]


@dataclass
class Packed:
    """One micro-batch as a single padding-free row: input_ids/position_ids [1, S]; `attention_mask`
    a block-diagonal causal [1, 1, S, S] bool mask (None for flash-attention, which reads the
    sequence boundaries from position_ids)."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    lengths: list[int]

    def unpack(self, per_target: torch.Tensor, width: int) -> torch.Tensor:
        """per_target [1, S-1, ...] (position t predicts token t+1 of the packed row) -> [B, width-1,
        ...] in the padded layout (0 in padding); targets that cross a boundary are dropped."""
        rows = per_target.new_zeros((len(self.lengths), width - 1, *per_target.shape[2:]))
        offset = 0
        for i, n in enumerate(self.lengths):
            rows[i, : n - 1] = per_target[0, offset : offset + n - 1]
            offset += n
        return rows


def to_packed(mb: TokenBatch, block_mask: bool = True) -> Packed:
    lengths = mb.lengths().tolist()
    ids = torch.cat([mb.input_ids[i, :n] for i, n in enumerate(lengths)]).unsqueeze(0)
    pos = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
    mask = None
    if block_mask:
        seg = torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)])
        causal = torch.ones(len(seg), len(seg), dtype=torch.bool).tril()
        mask = (causal & (seg[:, None] == seg[None, :]))[None, None]
    return Packed(ids, pos, mask, lengths)
