"""Shared by the GPU check's parts (benchmarks/gpu_check*.py): importing rlcore from this checkout,
the context a check runs in, its verdicts, and the small random Qwen2 model the learner and engine
checks use. Imports only torch at module level (transformers inside the functions that need it).
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def use_checkout() -> None:
    """Makes `import rlcore` and its folder-mapped sub-packages (rlcore.kernels -> kernels/, ...)
    work from this checkout without installing it: the GPU image has no `pip install -e .`, and
    pyproject's package-dir maps kernels/, verifiers/ and launch/ under `rlcore` at install time.
    Appending the repo root to `rlcore.__path__` gives the same mapping at import time."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import rlcore

    if str(ROOT) not in rlcore.__path__:
        rlcore.__path__.append(str(ROOT))


@dataclass(frozen=True)
class Ctx:
    """Where a check runs. device "cpu" only in the CPU smoke run (toy sizes, nothing proven)."""

    device: str
    work: Path  # scratch folder of this run
    wheels: Path  # the carried wheels (see scripts/gpu_check_wheels.sh)

    @property
    def smoke(self) -> bool:
        return self.device != "cuda"


def verdict(ok: bool, summary: str, **details: Any) -> dict[str, Any]:
    return {"status": "passed" if ok else "failed", "summary": summary, **details}


def not_checked(reason: str, **details: Any) -> dict[str, Any]:
    return {"status": f"not checked: {reason}", "summary": "", **details}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def model_config(smoke: bool) -> Any:
    """A Qwen2 (Qwen2.5's architecture: GQA, RMSNorm, tied embeddings) with Qwen2.5's vocabulary
    and a tiny body; random weights, so nothing is downloaded. initializer_range 0.1 (not 0.02)
    makes the logits depend on the context enough for a packing error to show."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=2048 if smoke else 151936,
        hidden_size=64 if smoke else 256,
        intermediate_size=128 if smoke else 704,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        initializer_range=0.1,
        pad_token_id=0,
    )


def build_model(smoke: bool, seed: int = 0) -> Any:
    """The check's model in fp32 on CPU, the same weights for the same seed."""
    import torch
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(seed)
    return Qwen2ForCausalLM(model_config(smoke)).eval()


def random_batch(smoke: bool, vocab: int, seed: int = 0) -> Any:
    """A learner batch (rlcore.learner.batch.TokenBatch): 8 prompt+completion rows of ragged
    lengths (4 short rows in the smoke run), random token ids, advantages +-1 by group of 4."""
    import torch

    from rlcore.learner.batch import pad_batch

    g = torch.Generator().manual_seed(seed)
    rows, (p_lo, p_hi), (c_lo, c_hi) = (4, (4, 12), (6, 20)) if smoke else (8, (16, 64), (32, 256))
    prompts, completions = [], []
    for _ in range(rows):
        p = int(torch.randint(p_lo, p_hi, (1,), generator=g))
        c = int(torch.randint(c_lo, c_hi, (1,), generator=g))
        prompts.append(torch.randint(1, vocab, (p,), generator=g).tolist())
        completions.append(torch.randint(1, vocab, (c,), generator=g).tolist())
    adv = [1.0 if i % 2 == 0 else -1.0 for i in range(rows)]
    return pad_batch(prompts, completions, adv, pad_id=0)
