"""`reward_model` (model-based): a Hugging Face sequence-classification checkpoint scores the
conversation (prompt + response), batched, on GPU or CPU.

A plain class whose construction loads the model, so it runs in-process or as its own Ray actor:

    import ray
    Actor = ray.remote(num_gpus=1)(RewardModelVerifier)   # num_gpus=0 on a CPU node
    rm = Actor.remote(RewardModelConfig(model_path="/ckpt/rm", device="auto"))
    results = ray.get(rm.verify_batch.remote(samples))    # one remote call per batch, not per sample

Nothing is downloaded: `model_path` is a local folder (`local_files_only` unless configured
otherwise).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from rlcore.verifiers.base import Message, Result, Sample, Verifier, VerifierConfig


@dataclass(frozen=True)
class RewardModelConfig(VerifierConfig):
    model_path: str = ""  # folder of an AutoModelForSequenceClassification checkpoint (required)
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1"
    dtype: str = (
        "auto"  # "auto" (bfloat16 on CUDA, float32 on CPU), "float32", "bfloat16", "float16"
    )
    batch_size: int = 8  # conversations per forward pass (sorted by length to pad less)
    max_length: int = 4096  # tokens; longer conversations lose their start (the response end stays)
    use_chat_template: bool = True  # when the tokenizer has one; else "prompt\n\nresponse"
    label_index: int = 0  # which output logit is the score (0 for the usual num_labels=1 RMs)
    sigmoid: bool = False  # reward = sigmoid(score) in (0, 1) instead of the raw logit
    threshold: float | None = None  # correct = reward >= threshold; None: correct is None
    local_files_only: bool = True  # never reach a model hub


def _sigmoid(x: float) -> float:
    # Two branches so that exp never overflows for large |x|.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


class RewardModelVerifier(Verifier):
    """Reward = the reward model's score of the conversation (raw logit, or its sigmoid).

    The conversation is the sample's prompt (a string becomes one user message; chat messages are
    kept, system prompt included) followed by the response as the assistant turn, rendered with the
    tokenizer's chat template when it has one. `verify_batch` sorts by length, pads, and returns
    results in input order; each result's details hold the raw `score` and whether the input was
    `truncated`.

    Does NOT check: anything the reward model was not trained on. Its score is a learned preference,
    open to reward hacking (length, flattery, formatting the model happens to like); it is not
    calibrated across checkpoints, and raw logits have no fixed range. Conversations longer than
    `max_length` are cut from the left, so a long prompt may be judged without its start.
    """

    name: ClassVar[str] = "reward_model"
    model_based: ClassVar[bool] = True
    config_cls: ClassVar[type[VerifierConfig]] = RewardModelConfig
    config: RewardModelConfig

    def __init__(self, config: RewardModelConfig | None = None) -> None:
        super().__init__(config)
        if not self.config.model_path:
            raise ValueError(
                "reward_model verifier: config.model_path must name a checkpoint folder"
            )
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        device = self.config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        dtype_name = self.config.dtype
        if dtype_name == "auto":
            dtype_name = "bfloat16" if self.device.type == "cuda" else "float32"
        path, local = self.config.model_path, self.config.local_files_only
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
        self.tokenizer.truncation_side = "left"
        self.tokenizer.padding_side = "right"  # left padding shifts positions in some models
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        model = AutoModelForSequenceClassification.from_pretrained(
            path, local_files_only=local, dtype=getattr(torch, dtype_name)
        )
        if model.config.pad_token_id is None:
            # The model finds each sequence's last real token through the pad id.
            model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model = model.to(self.device).eval()
        self.use_template = self.config.use_chat_template and bool(
            getattr(self.tokenizer, "chat_template", None)
        )

    def render(self, sample: Sample) -> str:
        """The conversation as the text the reward model reads."""
        if self.use_template:
            messages: list[Message] = (
                [{"role": "user", "content": sample.prompt}]
                if isinstance(sample.prompt, str)
                else [dict(m) for m in sample.prompt]
            )
            messages.append({"role": "assistant", "content": sample.response})
            return str(self.tokenizer.apply_chat_template(messages, tokenize=False))
        return f"{sample.prompt_text}\n\n{sample.response}"

    def score(self, texts: list[str]) -> tuple[list[float], list[bool]]:
        """Raw scores and truncation flags for rendered conversations, in input order."""
        import torch

        # A chat template writes its own BOS; plain text gets the tokenizer's special tokens.
        special = not self.use_template
        ids = [self.tokenizer(t, add_special_tokens=special)["input_ids"] for t in texts]
        truncated = [len(x) > self.config.max_length for x in ids]
        ids = [x[-self.config.max_length :] for x in ids]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        scores = [0.0] * len(ids)
        for b in range(0, len(order), self.config.batch_size):
            idx = order[b : b + self.config.batch_size]
            batch = self.tokenizer.pad(
                {"input_ids": [ids[i] for i in idx]}, padding=True, return_tensors="pt"
            ).to(self.device)
            with torch.inference_mode():
                logits = self.model(**batch).logits  # [B, num_labels]
            for i, s in zip(idx, logits[:, self.config.label_index].float().tolist(), strict=True):
                scores[i] = s
        return scores, truncated

    def verify(self, sample: Sample) -> Result:
        return self.verify_batch([sample])[0]

    def verify_batch(self, samples: list[Sample], workers: int = 1) -> list[Result]:
        """Score in input order; `workers` is ignored (the model batches instead of processes)."""
        if not samples:
            return []
        start = time.perf_counter()
        scores, truncated = self.score([self.render(s) for s in samples])
        elapsed = (time.perf_counter() - start) / len(samples)
        results = []
        for s, t in zip(scores, truncated, strict=True):
            reward = _sigmoid(s) if self.config.sigmoid else s
            th = self.config.threshold
            details: dict[str, Any] = {"score": s, "truncated": t}
            if reward == 0.0:
                details["reason"] = "the reward model scored exactly 0"
            results.append(
                Result(
                    reward=reward,
                    correct=None if th is None else reward >= th,
                    details=details,
                    elapsed_s=elapsed,
                )
            )
        return results
