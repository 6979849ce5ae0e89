"""The PPO critic: a value model (the policy's transformer body + a scalar head) trained by its own
DeepSpeed ranks (`CriticWorker` in rlcore/actors.py), next to the policy's.

It reuses the policy learner's machinery (ZeRO, micro-batches, packing, the lr schedule and the
non-finite guard) and swaps the model and the loss: values [B, L-1] aligned with the targets (the
value at position t is V of the prefix tokens[:t+1], the state from which token t+1 is sampled), and
PPO's clipped value loss against the GAE returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rlcore.algo.policy_loss import aggregate
from rlcore.algo.value_loss import clipped_value_loss
from rlcore.learner.batch import TokenBatch, cat_padded, micro_batches
from rlcore.learner.rank import Learner, _dtype


class ValueModel(torch.nn.Module):
    """A causal LM's body with a linear value head (zero-initialised: V = 0 at the start)."""

    def __init__(self, body: torch.nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.body = body
        self.config = body.config
        self.value_head = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)

    def forward(self, **inputs: Any) -> torch.Tensor:
        hidden = self.body(**inputs).last_hidden_state
        return self.value_head(hidden).squeeze(-1).float()  # [B, L]


class Critic(Learner):
    """One DeepSpeed rank of PPO's value model (rlcore/actors.py makes it the CriticWorker actor)."""

    role = "critic"

    def _build_model(self) -> torch.nn.Module:
        from transformers import AutoModel

        body = AutoModel.from_pretrained(self.spec.model_path, dtype=_dtype(self.spec.dtype))
        if self.cfg.gradient_checkpointing:
            body.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        return ValueModel(body, body.config.hidden_size)

    def _values(self, mb: TokenBatch) -> torch.Tensor:
        inputs, packed = self._inputs(mb)
        values = self.engine(**inputs)[:, :-1]
        if packed is not None:
            values = packed.unpack(values, mb.input_ids.shape[1])
        return values

    @torch.no_grad()
    def values(self, batch: TokenBatch) -> torch.Tensor:
        """V at every target position [B, L-1] (0 where padded) at the current weights."""
        self.engine.eval()
        parts = [self._values(mb).cpu() for mb in micro_batches(batch, self.cfg.micro_batch_size)]
        return cat_padded(parts, batch.input_ids.shape[1] - 1) * batch.loss_mask

    def value_step(self, batch: TokenBatch, global_tokens: float, clip: float) -> dict[str, float]:
        """One critic update: clipped value loss against batch.returns, token mean over ALL ranks."""
        if batch.returns is None or batch.old_values is None:
            raise ValueError("value_step needs batch.returns and batch.old_values")
        self.engine.train()
        mbs = self._micro_batches(batch)
        sums = {"value_loss": 0.0, "value_clip_frac": 0.0}
        finite = True
        for i, mb in enumerate(mbs):
            mask = mb.loss_mask.to(self.device)
            values = self._values(mb)
            assert mb.returns is not None and mb.old_values is not None
            loss_t, clipped = clipped_value_loss(
                values, mb.old_values.to(self.device), mb.returns.to(self.device), mask, clip
            )
            loss = aggregate(loss_t, mask, "token-mean", num_tokens=global_tokens)
            loss = loss * self.spec.world_size
            finite = finite and bool(torch.isfinite(loss))
            self._backward(loss, last=i == len(mbs) - 1)
            sums["value_loss"] += float((loss_t.detach() * mask).sum())
            sums["value_clip_frac"] += float((clipped * mask).sum())
        out = self._step(finite)
        return {**sums, "critic_grad_norm": out["grad_norm"], "critic_nonfinite": out["nonfinite"]}

    def named_weights(self) -> Any:
        raise NotImplementedError("the critic's weights are never synced to an engine")

    def save(self, path: str) -> None:
        self.engine.save_checkpoint(
            str(Path(path) / "critic"), tag="state", client_state={"rl_steps": self.steps}
        )

    def load(self, path: str) -> None:
        _, client = self.engine.load_checkpoint(str(Path(path) / "critic"), tag="state")
        self.steps = int((client or {}).get("rl_steps", 0))
