"""One data-parallel learner rank: the policy (and a frozen reference when the algorithm needs one)
under DeepSpeed ZeRO. CPU machines run it with DS_ACCELERATOR=cpu over gloo, GPUs over NCCL: same code.

`Learner` is a plain class; rlcore/actors.py wraps it as the LearnerWorker Ray actor. Every rank gets
its shard of the batch; losses are normalised by the GLOBAL token count so that any world size and any
micro-batch size give the update of one big batch (see `Algorithm.aggregate`). Each call is one optimizer
step: the learner owns the accumulation boundary, the learning rate (rlcore/learner/schedule.py) and
the guard that skips a non-finite update.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlcore import threads
from rlcore.algo import Algorithm
from rlcore.algo.offpolicy import mismatch_sums
from rlcore.config import LearnerConfig, effective_zero_stage
from rlcore.learner import reduce
from rlcore.learner.batch import TokenBatch, cat_padded, micro_batches, right_padded, to_packed
from rlcore.learner.fused import fuse_layers
from rlcore.learner.schedule import lr_at
from rlcore.sync.broadcast import WeightSender
from rlcore.sync.buckets import ParamMeta, param_meta

log = logging.getLogger(__name__)


class NonFiniteError(RuntimeError):
    """Too many optimizer steps in a row had a non-finite loss or gradient."""


@dataclass(frozen=True)
class LearnerSpec:
    """What one rank needs to start (a plain record so the Ray actor can be built from it)."""

    model_path: str
    rank: int
    world_size: int
    master_addr: str
    master_port: int
    cfg: LearnerConfig
    dtype: str = "float32"
    seed: int = 0
    total_steps: int = 0  # optimizer steps of the RL stage (the lr schedule's length)
    lr: float | None = None  # None: cfg.lr (the critic passes its own)
    sft: Any = None  # the SFT stage's SFTConfig (its lr schedule), when the run has one
    algo: Algorithm | None = None  # the RL algorithm, held from start-up (None: no RL step)

    @property
    def needs_reference(self) -> bool:
        """A frozen reference model: the algorithm has a KL term."""
        return self.algo is not None and self.algo.needs_reference


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _sum_into(sums: dict[str, float], stats: dict[str, torch.Tensor], mask: torch.Tensor) -> None:
    for k, v in stats.items():
        if reduce.kind(k) == "max":
            sums[k] = max(sums.get(k, 0.0), float(v))
        else:
            sums[k] = sums.get(k, 0.0) + float(v if v.ndim == 0 else (v * mask).sum())


class Learner:
    """One DeepSpeed rank of the policy (rlcore/actors.py makes it the LearnerWorker actor); rank 0
    also sends the weights to the rollout engines (`init_sync`, `send_weights`)."""

    role = "learner"  # in log lines

    def __init__(self, spec: LearnerSpec) -> None:
        log.info(
            "%s rank %d: %d threads, %s",
            self.role,
            spec.rank,
            torch.get_num_threads(),
            "tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else "glibc malloc",
        )
        use_gpu = spec.cfg.gpus_per_rank > 0
        if not use_gpu:
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        os.environ.update(
            RANK=str(spec.rank),
            LOCAL_RANK="0",  # a Ray actor sees only its own GPU(s), as cuda:0
            WORLD_SIZE=str(spec.world_size),
            MASTER_ADDR=spec.master_addr,
            MASTER_PORT=str(spec.master_port),
        )
        import deepspeed

        self.spec, self.cfg = spec, spec.cfg
        self.base_lr = spec.lr if spec.lr is not None else spec.cfg.lr
        self.steps = 0  # RL optimizer steps taken (the schedule's position; checkpointed)
        self.nonfinite_in_row = 0
        torch.manual_seed(spec.seed + spec.rank)
        deepspeed.init_distributed(dist_backend="nccl" if use_gpu else "gloo")
        self.device = torch.device(f"cuda:{torch.cuda.current_device()}" if use_gpu else "cpu")
        self.zero_stage = effective_zero_stage(
            replace(spec.cfg, world_size=spec.world_size), spec.dtype
        )
        if self.zero_stage != spec.cfg.zero_stage and spec.rank == 0:
            log.info(
                "learner.zero_stage=%d on one rank: DeepSpeed's plain engine (nothing to partition)",
                spec.cfg.zero_stage,
            )
        model = self._build_model()
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.engine, _, _, _ = deepspeed.initialize(
            model=model, model_parameters=trainable, config=self._ds_config()
        )
        self.reference = None
        if spec.needs_reference:
            ref = self._load_causal_lm()
            self.reference = ref.to(self.device).eval().requires_grad_(False)
        self.sender: WeightSender | None = None  # rank 0's, once `init_sync` joined the group

    # ---- construction --------------------------------------------------------------------------
    def _load_causal_lm(self, path: str | None = None) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(
            path or self.spec.model_path, dtype=_dtype(self.spec.dtype)
        )

    def load_reference(self, path: str) -> None:
        """The KL anchor becomes the model saved at `path` (a checkpoint's policy/). A cold start
        calls this after SFT: the reference of RL is the policy RL starts from, the SFT weights, as
        in DeepSeek-R1 and every reference trainer. No-op when the algorithm has no reference."""
        if self.reference is not None:
            ref = self._load_causal_lm(path)
            self.reference = ref.to(self.device).eval().requires_grad_(False)

    def _build_model(self) -> torch.nn.Module:
        model = self._load_causal_lm()
        if self.cfg.fused_layers:
            fuse_layers(model)
        if self.cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
            model.config.use_cache = False
        if self.cfg.lora_rank > 0:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(
                r=self.cfg.lora_rank,
                lora_alpha=self.cfg.lora_alpha,
                target_modules=list(self.cfg.lora_target_modules),
                lora_dropout=0.0,
            )
            model = get_peft_model(model, lora)
        return model

    def _ds_config(self) -> dict[str, Any]:
        zero: dict[str, Any] = {"stage": self.zero_stage}
        if self.cfg.offload_optimizer and self.zero_stage > 0:
            zero["offload_optimizer"] = {"device": "cpu", "pin_memory": self.cfg.gpus_per_rank > 0}
        return {
            "train_micro_batch_size_per_gpu": self.cfg.micro_batch_size,
            "gradient_accumulation_steps": 1,
            # stage 0: the learner clips and measures the norm itself (DeepSpeed's plain engine
            # clips without reporting the norm); ZeRO 1-3 do both
            "gradient_clipping": self.cfg.grad_clip if self.zero_stage > 0 else 0.0,
            "zero_optimization": zero,
            "bf16": {"enabled": self.spec.dtype == "bfloat16"},
            # torch's Adam: DeepSpeed's fused Adam would compile a C++ op first on CPU
            "optimizer": {
                "type": "AdamW",
                "params": {
                    "lr": self.base_lr,
                    "weight_decay": self.cfg.weight_decay,
                    "torch_adam": True,
                },
            },
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }

    def reset_optimizer(self) -> None:
        """Forget every optimizer moment and step count: the next step is a fresh AdamW's first
        (bias correction included). DeepSpeed's ZeRO optimizers wrap torch's AdamW, whose state is
        created lazily at its first step, so clearing the innermost state is a fresh start."""
        _torch_optimizer(self.engine.optimizer).state.clear()

    # ---- forward -------------------------------------------------------------------------------
    def _inputs(self, mb: TokenBatch) -> tuple[dict[str, Any], Any]:
        """Model inputs for a micro-batch: padded [B, L], or one packed row (learner.packing)."""
        if not self.cfg.packing:
            ids = mb.input_ids.to(self.device)
            # Right padding only (pad_batch's layout): under causal attention no token sees a pad,
            # which all come after it, and positions count from 0 either way; so the mask changes
            # nothing the loss reads and would cost the attention its mask-free path (a SmolLM2
            # step on 16 ragged rows: 8% slower with it, docs/benchmarks.md).
            mask = None if right_padded(mb.attention_mask) else mb.attention_mask.to(self.device)
            return {"input_ids": ids, "attention_mask": mask}, None
        flash = (
            getattr(self.engine.module.config, "_attn_implementation", "") == "flash_attention_2"
        )
        packed = to_packed(mb, block_mask=not flash)
        inputs = {
            "input_ids": packed.input_ids.to(self.device),
            "position_ids": packed.position_ids.to(self.device),
        }
        if packed.attention_mask is not None:
            inputs["attention_mask"] = packed.attention_mask.to(self.device)
        return inputs, packed

    def _forward(
        self, model: Any, mb: TokenBatch, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-target logprob and entropy [B, L-1] at `temperature` (padded layout)."""
        inputs, packed = self._inputs(mb)
        logprob, entropy = _token_logprobs(model, inputs, temperature, self.cfg.logprob_impl)
        if packed is not None:
            width = mb.input_ids.shape[1]
            logprob, entropy = packed.unpack(logprob, width), packed.unpack(entropy, width)
        return logprob, entropy

    def _micro_batches(self, batch: TokenBatch) -> list[TokenBatch]:
        """A training step's micro-batches: length-sorted (less padding), any order being exact."""
        mb, budget = self.cfg.micro_batch_size, self.cfg.max_tokens_per_micro_batch
        return micro_batches(batch, mb, budget, by_length=True)

    def _backward(self, loss: torch.Tensor, last: bool) -> None:
        # We own the accumulation boundary (one optimizer step per call, whatever the number of
        # micro-batches), so DeepSpeed's micro-step counter cannot drift between SFT and RL calls.
        self.engine.set_gradient_accumulation_boundary(last)
        self.engine.backward(loss)

    def _step(self, losses_finite: bool, lr: float | None = None) -> dict[str, float]:
        """The optimizer step at `lr` (default: the RL schedule, whose position only these
        scheduled steps advance), unless the loss or gradient is non-finite on ANY rank:
        then the gradients are dropped, the weights stay, and after max_nonfinite_steps in a row
        we stop."""
        import torch.distributed as dist

        scheduled = lr is None
        if lr is None:
            lr = lr_at(
                self.steps,
                self.base_lr,
                self.cfg.warmup_steps,
                self.spec.total_steps,
                self.cfg.lr_schedule,
                self.cfg.min_lr_ratio,
            )
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr
        bad = not losses_finite
        plain_norm = None
        if self.zero_stage == 0:  # no ZeRO optimizer to clip or catch a NaN gradient: we do
            # after backward every rank holds the averaged gradient, so this norm is the global one
            params = [p for p in self.engine.module.parameters() if p.grad is not None]
            max_norm = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
            plain_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
            bad = bad or not math.isfinite(plain_norm)
        flag = torch.tensor([float(bad)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() > 0 and self.zero_stage == 0:
            self.engine.zero_grad()
        else:
            # ZeRO 1-3 check the global gradient norm themselves and skip a non-finite step
            self.engine.step()
        norm = plain_norm if plain_norm is not None else self.engine.get_global_grad_norm()
        norm = float(norm) if norm is not None else 0.0
        skipped = flag.item() > 0 or not math.isfinite(norm)
        if scheduled and not skipped:
            self.steps += 1
        self.nonfinite_in_row = self.nonfinite_in_row + 1 if skipped else 0
        if skipped:
            log.warning(
                "non-finite loss or gradient: update skipped (%d in a row)", self.nonfinite_in_row
            )
        if self.nonfinite_in_row >= self.cfg.max_nonfinite_steps:
            raise NonFiniteError(
                f"{self.nonfinite_in_row} optimizer steps in a row had a non-finite loss or "
                f"gradient (learner.max_nonfinite_steps={self.cfg.max_nonfinite_steps}); the weights "
                "are those of the last good step. Lower learner.lr, set algo.tis_cap, or check the "
                "rewards for NaN"
            )
        return {"grad_norm": norm if not skipped else 0.0, "lr": lr, "nonfinite": float(skipped)}

    # ---- RL ------------------------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, batch: TokenBatch, temperature: float = 1.0) -> dict[str, torch.Tensor]:
        """Before an update that needs them: the learner's logprobs of the batch at the current
        weights ("old", the PPO ratio's denominator over several minibatches/epochs) and the
        reference model's. Tensors [B, L-1] in this rank's shard order."""
        self.engine.eval()
        old, ref = [], []
        for mb in micro_batches(batch, self.cfg.micro_batch_size):
            old.append(self._forward(self.engine, mb, temperature)[0].float().cpu())
            if self.reference is not None:
                ref.append(self._forward(self.reference, mb, temperature)[0].float().cpu())
        width = batch.input_ids.shape[1] - 1
        out = {"old_logprobs": cat_padded(old, width)}
        if ref:
            out["ref_logprobs"] = cat_padded(ref, width)
        return out

    def rl_step(
        self,
        batch: TokenBatch,
        global_tokens: float,
        temperature: float = 1.0,
        global_seqs: float | None = None,
    ) -> dict[str, float]:
        """One policy update of the spec's algorithm on this rank's shard. global_tokens /
        global_seqs: loss tokens and sequences over ALL ranks (the denominators of the algorithm's
        loss aggregation).
        temperature: the rollout's; the policy being optimised is the one the engine sampled from.
        Returns SUMS over this rank's loss tokens (the driver divides by global_tokens), plus
        grad_norm, lr and nonfinite."""
        algo = self.spec.algo
        if algo is None:
            raise RuntimeError(
                "rl_step on a learner started without an algorithm (LearnerSpec.algo)"
            )
        start = time.perf_counter()
        self.engine.train()
        mbs = self._micro_batches(batch)
        seqs = float(len(batch) * self.spec.world_size) if global_seqs is None else global_seqs
        sums: dict[str, float] = {}
        finite = True
        for i, mb in enumerate(mbs):
            logprob, entropy = self._forward(self.engine, mb, temperature)
            mask = mb.loss_mask.to(self.device)
            old = logprob.detach() if mb.old_logprobs is None else mb.old_logprobs.to(self.device)
            ref = None
            if self.reference is not None:
                if mb.ref_logprobs is not None:
                    ref = mb.ref_logprobs.to(self.device)
                else:
                    with torch.no_grad():
                        ref, _ = self._forward(self.reference, mb, temperature)
            rollout = None if mb.rollout_logprobs is None else mb.rollout_logprobs.to(self.device)
            adv = mb.advantages.to(self.device)
            token_loss, stats = algo.token_loss(logprob, old, adv, entropy, ref, mask, rollout)
            # x world_size: DeepSpeed averages gradients over ranks; the sum over ranks is wanted
            loss = algo.aggregate(token_loss, mask, global_tokens, seqs) * self.spec.world_size
            finite = finite and bool(torch.isfinite(loss))
            self._backward(loss, last=i == len(mbs) - 1)
            stats["loss"] = token_loss.detach()
            if rollout is not None:
                stats.update(mismatch_sums(old, rollout, mask, algo.tis_cap))
            _sum_into(sums, stats, mask)
        sums.update(self._step(finite))
        sums["compute_s_max"] = time.perf_counter() - start  # this rank's forward/backward/step
        return sums

    # ---- SFT -----------------------------------------------------------------------------------
    def sft_step(
        self, batch: TokenBatch, global_tokens: float, step: int, total: int
    ) -> dict[str, float]:
        """Next-token cross-entropy on the masked (assistant) tokens of this rank's shard, one
        optimizer step at the SFT schedule's rate for `step` of `total` (spec.sft); the RL
        schedule's position does not move."""
        s = self.spec.sft
        if s is None:
            raise RuntimeError("sft_step on a learner built without the SFT stage's config")
        lr = lr_at(step, s.lr, s.warmup_steps, total, s.lr_schedule)
        self.engine.train()
        mbs = self._micro_batches(batch)
        scale = self.spec.world_size / max(global_tokens, 1.0)
        total, finite = 0.0, True
        for i, mb in enumerate(mbs):
            logprob, _ = self._forward(self.engine, mb)
            nll = -(logprob * mb.loss_mask.to(self.device)).sum()
            finite = finite and bool(torch.isfinite(nll))
            self._backward(nll * scale, last=i == len(mbs) - 1)
            total += float(nll.detach())
        return {"loss": total, **self._step(finite, lr)}

    @torch.no_grad()
    def logprobs(self, batch: TokenBatch) -> list[list[float]]:
        """Per-target-position logprobs [B][L-1] of this batch under the current policy."""
        self.engine.eval()
        out = []
        for mb in micro_batches(batch, self.cfg.micro_batch_size):
            lp, _ = self._forward(self.engine, mb)
            out.extend(lp.cpu().tolist())
        return out

    # ---- weights -------------------------------------------------------------------------------
    def named_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Full (gathered under ZeRO-3) weights by Hugging Face name; LoRA adapters merged in.
        Collective under ZeRO-3: every rank must iterate; only rank 0's tensors are meaningful."""
        import deepspeed

        module = self.engine.module
        if self.cfg.lora_rank > 0:
            yield from _merged_lora_weights(module)
            return
        for name, param in module.named_parameters():
            if self.zero_stage == 3:
                with deepspeed.zero.GatheredParameters([param]):
                    yield name, param.detach().clone()
            else:
                yield name, param.detach()

    def param_meta(self) -> list[ParamMeta]:
        """(name, dtype, shape) of every weight in the order `send_weights` streams them. Every
        rank walks the weights: under ZeRO-3 each gather is a collective."""
        return param_meta(self.named_weights())

    def init_sync(self, sync_type: str, addr: str, port: int, world_size: int) -> None:
        """Rank 0: joins the weight-sync group as its rank 0 (rlcore/sync/weights.py). Over
        shared memory on CPU, a lone plain-engine rank keeps its parameters in the sender's buffer
        (rlcore/sync/ipc.py `host`): the engines read them there, nothing is copied to send."""
        from rlcore.sync import IPCSender, make_sender

        if self.sender is not None:
            self.sender.close()  # a rebuilt group (an engine restarted): the old buffer goes
        self.sender = make_sender(sync_type, device=self.device)
        self.sender.init_group(addr, port, world_size)
        alone = self.zero_stage == 0 and self.spec.world_size == 1 and self.cfg.lora_rank == 0
        if isinstance(self.sender, IPCSender) and self.device.type == "cpu" and alone:
            self.sender.host(list(self.engine.module.named_parameters()))
            log.info("weight sync: the parameters live in the shared buffer; a send copies none")

    def send_weights(self, bucket_bytes: int, digest: bool = False) -> dict[str, Any]:
        """Rank 0 streams the weights (with their digests when asked); other ranks only join
        the ZeRO-3 gathers. On CPU the send runs on one torch thread: the engines load at the same
        time on the same cores, and two OpenMP pools on them made every receive 1.5-2x slower
        (benchmarks/sync_engine.py --sender-threads 1, docs/benchmarks.md)."""
        weights = self.named_weights()
        if self.sender is None:
            for _ in weights:  # collective under ZeRO-3; a no-op walk otherwise
                pass
            return {}
        on_cpu = self.device.type == "cpu"
        with threads.one_thread() if on_cpu else contextlib.nullcontext():
            return self.sender.send(weights, bucket_bytes, digest)

    def save(self, path: str) -> None:
        """Collective: every rank writes its DeepSpeed shard; rank 0 also writes the HF model."""
        target = Path(path)
        self.engine.save_checkpoint(
            str(target / "deepspeed"), tag="state", client_state={"rl_steps": self.steps}
        )
        state = dict(self.named_weights())
        _save_rng(target / f"rng_rank{self.spec.rank}.pt")
        if self.spec.rank == 0:
            module = self.engine.module
            base = module.get_base_model() if self.cfg.lora_rank > 0 else module
            base.save_pretrained(target / "policy", state_dict=state)  # merged: serves as it is
            if self.cfg.lora_rank > 0:  # and the adapter alone (peft's format), beside it
                module.save_pretrained(target / "adapter")

    def load(self, path: str) -> None:
        target = Path(path)
        _, client = self.engine.load_checkpoint(str(target / "deepspeed"), tag="state")
        self.steps = int((client or {}).get("rl_steps", 0))
        _load_rng(target / f"rng_rank{self.spec.rank}.pt")


def _torch_optimizer(opt: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside DeepSpeed's wrappers (ZeRO 1-3 keep it as `.optimizer`)."""
    while not isinstance(opt, torch.optim.Optimizer) and hasattr(opt, "optimizer"):
        opt = opt.optimizer
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"no torch optimizer inside {type(opt).__name__}")
    return opt


def _token_logprobs(
    model: Any, inputs: dict[str, Any], temperature: float, impl: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """learner.logprob_impl: the [B, L, V] logits are never materialised in fp32 unless
    "reference" (rlcore/learner/logits.py, rlcore.kernels)."""
    from rlcore.learner.logits import policy_logprobs

    return policy_logprobs(
        model,
        inputs["input_ids"],
        inputs.get("attention_mask"),
        temperature,
        impl,
        position_ids=inputs.get("position_ids"),
    )


def _merged_lora_weights(peft_model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """The base model's weights with W + BA merged, under the base model's own names."""
    peft_model.merge_adapter()
    try:
        base = peft_model.get_base_model()
        for name, param in base.named_parameters():
            if "lora_" in name:
                continue
            yield name.replace(".base_layer", ""), param.detach().clone()
    finally:
        peft_model.unmerge_adapter()


def _save_rng(path: Path) -> None:
    rng = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    torch.save(rng, path)


def _load_rng(path: Path) -> None:
    rng = torch.load(path, weights_only=False)
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
