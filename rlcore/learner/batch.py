"""Packing rollout samples into padded tensors for the learner, and splitting them across ranks.

A sample is (prompt_ids, completion_ids, advantage); the learner trains on exactly the token ids the
engine produced (no decode-then-re-tokenize). Loss is taken on completion tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TokenBatch:
    """Right-padded sequences. input_ids/attention_mask [B, L]; loss_mask/advantages/old_logprobs
    are aligned with the *targets* input_ids[:, 1:], so they are [B, L-1] (advantages [B])."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    advantages: torch.Tensor
    old_logprobs: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def slice(self, start: int, stop: int) -> TokenBatch:
        width = int(self.attention_mask[start:stop].sum(1).max().item())  # trim common padding
        return TokenBatch(
            input_ids=self.input_ids[start:stop, :width],
            attention_mask=self.attention_mask[start:stop, :width],
            loss_mask=self.loss_mask[start:stop, : width - 1],
            advantages=self.advantages[start:stop],
            old_logprobs=None
            if self.old_logprobs is None
            else self.old_logprobs[start:stop, : width - 1],
        )


def pack(
    prompts: list[list[int]],
    completions: list[list[int]],
    advantages: list[float],
    pad_id: int,
    old_logprobs: list[list[float]] | None = None,
) -> TokenBatch:
    """Concatenate prompt + completion per sample, right-pad, mask the completion's targets."""
    seqs = [p + c for p, c in zip(prompts, completions, strict=True)]
    width = max(map(len, seqs))
    n = len(seqs)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, width - 1), dtype=torch.float32)
    old = torch.zeros((n, width - 1), dtype=torch.float32) if old_logprobs is not None else None
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        attn[i, : len(p) + len(c)] = 1
        # target position t predicts token t+1: completion tokens are targets len(p)-1 .. len(p)+len(c)-2
        mask[i, len(p) - 1 : len(p) + len(c) - 1] = 1.0
        if old is not None and old_logprobs is not None:
            old[i, len(p) - 1 : len(p) + len(c) - 1] = torch.tensor(old_logprobs[i])
    return TokenBatch(ids, attn, mask, torch.tensor(advantages, dtype=torch.float32), old)


def shard(batch: TokenBatch, rank: int, world_size: int) -> TokenBatch:
    """Rank `rank`'s contiguous 1/world_size share (the batch size must divide evenly)."""
    n = len(batch)
    if n % world_size:
        raise ValueError(f"batch of {n} sequences does not split over {world_size} learner ranks")
    per = n // world_size
    return batch.slice(rank * per, (rank + 1) * per)
