"""One data-parallel learner rank: the policy (and a frozen reference when the algorithm needs one)
under DeepSpeed ZeRO. CPU machines run it with DS_ACCELERATOR=cpu over gloo, GPUs over NCCL: same code.

`Learner` is a plain class; rlcore/workers.py wraps it as the LearnerWorker Ray actor. Every rank gets
its shard of the batch; losses are normalised by the GLOBAL token count so that any world size and any
micro-batch size give the update of one big batch (see `_scale` and `GRPO.aggregate`).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlcore.algo import GRPO
from rlcore.kernels.logprob import logprob_and_entropy
from rlcore.learner.batch import TokenBatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LearnerSpec:
    """What one rank needs to start (a plain record so the Ray actor can be built from it)."""

    model_path: str
    rank: int
    world_size: int
    master_addr: str
    master_port: int
    zero_stage: int
    micro_batch_size: int
    lr: float
    weight_decay: float
    grad_clip: float
    warmup_steps: int
    dtype: str
    use_gpu: bool
    seed: int
    needs_reference: bool


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class Learner:
    def __init__(self, spec: LearnerSpec) -> None:
        if not spec.use_gpu:
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        os.environ.update(
            RANK=str(spec.rank),
            LOCAL_RANK="0",  # a Ray actor sees only its own GPU(s), as cuda:0
            WORLD_SIZE=str(spec.world_size),
            MASTER_ADDR=spec.master_addr,
            MASTER_PORT=str(spec.master_port),
        )
        import deepspeed
        from transformers import AutoModelForCausalLM

        self.spec = spec
        torch.manual_seed(spec.seed + spec.rank)
        deepspeed.init_distributed(dist_backend="nccl" if spec.use_gpu else "gloo")
        self.device = torch.device(f"cuda:{torch.cuda.current_device()}" if spec.use_gpu else "cpu")
        model = AutoModelForCausalLM.from_pretrained(spec.model_path, dtype=_dtype(spec.dtype))
        self.ds_config = {
            "train_micro_batch_size_per_gpu": spec.micro_batch_size,
            "gradient_accumulation_steps": 1,
            "gradient_clipping": spec.grad_clip,
            "zero_optimization": {"stage": spec.zero_stage},
            "bf16": {"enabled": spec.dtype == "bfloat16"},
            # torch's Adam: no fused-Adam compile on CPU (DESIGN.md)
            "optimizer": {
                "type": "AdamW",
                "params": {"lr": spec.lr, "weight_decay": spec.weight_decay, "torch_adam": True},
            },
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        if spec.warmup_steps > 0:  # linear warmup from 0; no scheduler means a constant lr
            self.ds_config["scheduler"] = {
                "type": "WarmupLR",
                "params": {
                    "warmup_min_lr": 0.0,
                    "warmup_max_lr": spec.lr,
                    "warmup_num_steps": spec.warmup_steps,
                    "warmup_type": "linear",
                },
            }
        self.engine, _, _, _ = deepspeed.initialize(
            model=model, model_parameters=model.parameters(), config=self.ds_config
        )
        self.reference = None
        if spec.needs_reference:
            ref = AutoModelForCausalLM.from_pretrained(spec.model_path, dtype=_dtype(spec.dtype))
            self.reference = ref.to(self.device).eval().requires_grad_(False)
        self.pad_id = int(model.config.pad_token_id or 0)

    def set_lr(self, lr: float) -> None:
        """The SFT stage trains at its own learning rate, the RL stage at learner.lr."""
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr

    # ---- forward -----------------------------------------------------------------------------
    def _forward(
        self, model: Any, mb: TokenBatch, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ids = mb.input_ids.to(self.device)
        out = model(input_ids=ids, attention_mask=mb.attention_mask.to(self.device))
        return logprob_and_entropy(out.logits[:, :-1], ids[:, 1:], temperature)

    def _micro_batches(self, batch: TokenBatch) -> Iterator[TokenBatch]:
        for start in range(0, len(batch), self.spec.micro_batch_size):
            yield batch.slice(start, min(start + self.spec.micro_batch_size, len(batch)))

    def _backward(self, loss: torch.Tensor, last: bool) -> None:
        # We own the accumulation boundary (one optimizer step per call, whatever the number of
        # micro-batches), so DeepSpeed's micro-step counter cannot drift between SFT and RL calls.
        self.engine.set_gradient_accumulation_boundary(last)
        self.engine.backward(loss)

    def _scale(self, global_tokens: float) -> float:
        # DeepSpeed averages gradients over ranks; undo it so that the step's gradient is
        # d(sum of token losses over ALL ranks and micro-batches)/d(theta) / global_tokens.
        return self.spec.world_size / max(global_tokens, 1.0)

    # ---- RL ------------------------------------------------------------------------------------
    def rl_step(
        self,
        batch: TokenBatch,
        global_tokens: float,
        algo: GRPO,
        temperature: float = 1.0,
        global_seqs: float | None = None,
    ) -> dict[str, float]:
        """One policy update on this rank's shard. global_tokens / global_seqs: loss tokens and
        sequences over ALL ranks (the denominators of the algorithm's loss aggregation).
        temperature: the rollout's; the policy being optimised is the one the engine sampled from."""
        self.engine.train()
        mbs = list(self._micro_batches(batch))
        seqs = float(len(batch) * self.spec.world_size) if global_seqs is None else global_seqs
        sums: dict[str, float] = {}
        for i, mb in enumerate(mbs):
            logprob, entropy = self._forward(self.engine, mb, temperature)
            old = logprob.detach() if mb.old_logprobs is None else mb.old_logprobs.to(self.device)
            ref = None
            if self.reference is not None:
                with torch.no_grad():
                    ref, _ = self._forward(self.reference, mb, temperature)
            mask = mb.loss_mask.to(self.device)
            adv = mb.advantages.to(self.device)
            token_loss, stats = algo.token_loss(logprob, old, adv, entropy, ref, mask)
            # x world_size: DeepSpeed averages gradients over ranks; the sum over ranks is wanted
            loss = algo.aggregate(token_loss, mask, global_tokens, seqs) * self.spec.world_size
            self._backward(loss, last=i == len(mbs) - 1)
            sums["loss"] = sums.get("loss", 0.0) + float((token_loss.detach() * mask).sum())
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + float((v * mask).sum())
        self.engine.step()
        out = dict(sums)  # sums over this rank's tokens; the driver divides by global_tokens
        out["grad_norm"] = float(self.engine.get_global_grad_norm() or 0.0)
        out["lr"] = float(self.engine.get_lr()[0])
        return out

    # ---- SFT -----------------------------------------------------------------------------------
    def sft_step(self, batch: TokenBatch, global_tokens: float) -> dict[str, float]:
        """Next-token cross-entropy on the masked (assistant) tokens of this rank's shard."""
        self.engine.train()
        mbs = list(self._micro_batches(batch))
        scale = self._scale(global_tokens)
        total = 0.0
        for i, mb in enumerate(mbs):
            logprob, _ = self._forward(self.engine, mb)
            nll = -(logprob * mb.loss_mask.to(self.device)).sum()
            self._backward(nll * scale, last=i == len(mbs) - 1)
            total += float(nll.detach())
        self.engine.step()
        return {"loss": total, "grad_norm": float(self.engine.get_global_grad_norm() or 0.0)}

    @torch.no_grad()
    def logprobs(self, batch: TokenBatch) -> list[list[float]]:
        """Per-target-position logprobs [B][L-1] of this batch under the current policy."""
        self.engine.eval()
        out = []
        for mb in self._micro_batches(batch):
            lp, _ = self._forward(self.engine, mb)
            out.extend(lp.cpu().tolist())
        return out

    # ---- weights -------------------------------------------------------------------------------
    def named_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Full (gathered under ZeRO-3) weights by Hugging Face name. Collective under ZeRO-3: every
        rank must iterate; only rank 0's tensors are meaningful to send."""
        import deepspeed

        for name, param in self.engine.module.named_parameters():
            if self.spec.zero_stage == 3:
                with deepspeed.zero.GatheredParameters([param]):
                    yield name, param.detach().clone()
            else:
                yield name, param.detach()

    def save(self, path: str) -> None:
        """Collective: every rank writes its DeepSpeed shard; rank 0 also writes the HF model."""
        target = Path(path)
        self.engine.save_checkpoint(str(target / "deepspeed"), tag="state")
        state = dict(self.named_weights())
        rng = {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        }
        torch.save(rng, target / f"rng_rank{self.spec.rank}.pt")
        if self.spec.rank == 0:
            self.engine.module.save_pretrained(target / "policy", state_dict=state)

    def load(self, path: str) -> None:
        target = Path(path)
        self.engine.load_checkpoint(str(target / "deepspeed"), tag="state")
        rng = torch.load(target / f"rng_rank{self.spec.rank}.pt", weights_only=False)
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
