"""The transformers rollout engine: the fallback where vLLM does not install (`generate` + a forward).

Sampling uses `model.generate` with the same parameters as vLLM (temperature, top-p, top-k, n,
stop token ids; stops ONLY on `stop_token_ids`, never on the checkpoint's own eos). Logprobs are
then computed by one forward pass over prompt + completion under the sampling distribution
(temperature, top-k, top-p: `engine.sampling_logprobs`), as vLLM's "processed_logprobs"; `score`
returns raw ones. See rollout/engine.py. Slow next to vLLM, but exact and dependency-free.

Weight sync: joins the same stateless group as the vLLM engine (rlcore/sync/receiver.py) and copies
each received tensor into the parameter of that name (tied parameters are one tensor, so either name
updates both).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import torch

from rlcore.rollout.engine import (
    Completion,
    EngineSpec,
    RolloutEngine,
    SamplingParams,
    sampling_logprobs,
)
from rlcore.sync.digest import tensor_digest
from rlcore.sync.receiver import WeightReceiver

log = logging.getLogger(__name__)


class HFEngine(RolloutEngine, WeightReceiver):
    """transformers `AutoModelForCausalLM` on one device (CUDA if available, else CPU); its own
    one weight-sync worker (rank 0 inside the engine)."""

    name = "hf"
    rank = 0

    def __init__(self, spec: EngineSpec, score_batch_size: int = 16) -> None:
        """score_batch_size: sequences per forward pass when computing logprobs."""
        if spec.tensor_parallel_size != 1:
            raise ValueError("the transformers rollout engine has no tensor parallelism")
        from transformers import AutoModelForCausalLM, GenerationConfig

        start = time.perf_counter()
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = AutoModelForCausalLM.from_pretrained(
            spec.model_path, dtype=getattr(torch, spec.dtype)
        ).to(self.device)
        self.model.eval()
        self.pad_id = self.model.config.pad_token_id or 0
        # A neutral default so that the checkpoint's generation_config (eos, top_k=50, ...) never
        # merges into ours: sampling is defined by SamplingParams alone.
        self.model.generation_config = GenerationConfig(pad_token_id=self.pad_id)
        self.max_model_len = spec.max_model_len
        self.score_batch_size = score_batch_size
        self.rng = torch.Generator().manual_seed(spec.seed)
        self.start_seconds = time.perf_counter() - start

    @torch.no_grad()
    def generate(
        self, prompt_token_ids: list[list[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        from transformers import GenerationConfig

        longest = max(len(p) for p in prompt_token_ids)
        max_new = min(params.max_tokens, self.max_model_len - longest)
        if max_new < 1:
            raise ValueError(f"a prompt of {longest} tokens leaves no room in max_model_len")
        greedy = params.temperature == 0
        config = GenerationConfig(
            do_sample=not greedy,
            temperature=None if greedy else params.temperature,
            top_p=None if greedy else params.top_p,
            top_k=None if greedy or params.top_k <= 0 else params.top_k,
            max_new_tokens=max_new,
            num_return_sequences=params.n,
            eos_token_id=list(params.stop_token_ids) or None,
            pad_token_id=self.pad_id,
        )
        input_ids, mask = _left_pad(prompt_token_ids, self.pad_id, self.device)
        seed = (
            params.seed
            if params.seed is not None
            else int(torch.randint(2**62, (1,), generator=self.rng))
        )
        torch.manual_seed(seed)  # transformers samples from the global RNG
        out = self.model.generate(
            input_ids=input_ids, attention_mask=mask, generation_config=config
        )
        generated = out[:, input_ids.shape[1] :].tolist()  # rows: prompt 0 x n, prompt 1 x n, ...

        stops = set(params.stop_token_ids)
        rows = [_trim(row, stops) for row in generated]
        prompts = [p for p in prompt_token_ids for _ in range(params.n)]
        seqs = [p + r for p, (r, _) in zip(prompts, rows, strict=True)]
        logprobs = self._logprobs(seqs, params)
        completions = [
            Completion(token_ids=r, logprobs=lp[len(p) - 1 :], finish_reason=reason)
            for p, (r, reason), lp in zip(prompts, rows, logprobs, strict=True)
        ]
        return [completions[i : i + params.n] for i in range(0, len(completions), params.n)]

    def score(self, sequences: list[list[int]]) -> list[list[float]]:
        return self._logprobs(sequences)

    @torch.no_grad()
    def _logprobs(
        self, sequences: list[list[int]], params: SamplingParams | None = None
    ) -> list[list[float]]:
        """Logprob of seq[1:] given the prefix, raw (params None) or under params' sampling
        distribution; right padding keeps positions exact."""
        result: list[list[float]] = []
        for i in range(0, len(sequences), self.score_batch_size):
            chunk = sequences[i : i + self.score_batch_size]
            width = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, seq in enumerate(chunk):
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            targets = ids[:, 1:]
            if params is None:
                lp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]
            else:
                flat = sampling_logprobs(
                    logits.reshape(-1, logits.shape[-1]),
                    targets.reshape(-1),
                    params.temperature,
                    params.top_k,
                    params.top_p,
                )
                lp = flat.view(targets.shape)
            lp = lp.cpu()
            result.extend(lp[row, : len(seq) - 1].tolist() for row, seq in enumerate(chunk))
        return result

    def _on_workers(self, method: str, *args: Any) -> list[Any]:
        return [getattr(self, method)(*args)]  # this engine is its one worker

    @torch.no_grad()
    def _rlcore_load(self, weights: Iterator[tuple[str, torch.Tensor]]) -> dict[str, str]:
        """Copies each tensor into the parameter of that name; the digests are of the parameter
        after the copy (what this engine computes with), of the received tensor where the copy
        casts it to another dtype."""
        params = dict(self.model.named_parameters(remove_duplicate=False))
        digests, unknown = {}, []
        for name, tensor in weights:  # received even when names are unknown, so the sender finishes
            if name not in params:
                unknown.append(name)
                continue
            param = params[name]
            param.copy_(tensor)
            digests[name] = tensor_digest(param if param.dtype == tensor.dtype else tensor)
        if unknown:
            raise KeyError(f"weight sync sent parameters this model does not have: {unknown[:5]}")
        return digests

    def shutdown(self) -> None:
        del self.model


def _left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = torch.tensor(p)
        mask[row, width - len(p) :] = 1
    return ids.to(device), mask.to(device)


def _trim(row: list[int], stops: set[int]) -> tuple[list[int], str]:
    """Cuts a generated row after its first stop token (transformers pads finished rows)."""
    for i, tok in enumerate(row):
        if tok in stops:
            return row[: i + 1], "stop"
    return row, "length"
