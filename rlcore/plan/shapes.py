"""A model's shape from its config.json (read as JSON: no torch, no weights), and its parameter counts.

    shape = model_shape("smollm2-135m-instruct")      # or a Hugging Face folder, or a known name
    shape.params, shape.compute_params, shape.lora_params(16, ["q_proj", "v_proj"])

Embedded names are found where rlcore keeps them without building anything: the tiny base's
config ships with the package (rlcore/models/tiny_base/), SmolLM2's converted folder is looked for
in the cache, and failing that `rlcore.rundir.resolve_model_path` converts it once (as `rlcore
train` would). A path that is not a folder here (a GPU config's /data/models/...) is matched by its
last component against `KNOWN`, the published config.json numbers of the models rlcore's GPU
configs and published comparisons use, so that a cluster config plans on a laptop.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Published config.json values (huggingface.co/<org>/<name>/blob/main/config.json):
# (hidden, layers, heads, kv_heads, head_dim, intermediate, vocab, tied embeddings)
KNOWN: dict[str, tuple[int, int, int, int, int, int, int, bool]] = {
    "smollm2-135m-instruct": (576, 30, 9, 3, 64, 1536, 49152, True),
    "qwen2.5-math-1.5b": (1536, 28, 12, 2, 128, 8960, 151936, True),
    "qwen2.5-1.5b": (1536, 28, 12, 2, 128, 8960, 151936, True),
    "qwen2.5-1.5b-instruct": (1536, 28, 12, 2, 128, 8960, 151936, True),
    "qwen2.5-7b": (3584, 28, 28, 4, 128, 18944, 152064, False),
    "qwen2.5-7b-instruct": (3584, 28, 28, 4, 128, 18944, 152064, False),
    "qwen2.5-math-7b": (3584, 28, 28, 4, 128, 18944, 152064, False),
    "qwen3-0.6b": (1024, 28, 16, 8, 128, 3072, 151936, True),
    "qwen3-1.7b": (2048, 28, 16, 8, 128, 6144, 151936, True),
    "qwen3-4b": (2560, 36, 32, 8, 128, 9728, 151936, True),
    "qwen3-8b": (4096, 36, 32, 8, 128, 12288, 151936, False),
}
# the seven projections of a Llama/Qwen decoder layer, for LoRA's adapter count
_PROJ = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class PlanError(ValueError):
    """The planner cannot describe this config (an unknown model, most often)."""


@dataclass(frozen=True)
class ModelShape:
    """A dense decoder-only transformer (Llama, Qwen2/3, SmolLM2)."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def proj_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each projection of one layer."""
        h, q, kv, i = self.hidden, self.q_dim, self.kv_dim, self.intermediate
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    @property
    def layer_params(self) -> int:
        return sum(a * b for a, b in self.proj_shapes().values()) + 2 * self.hidden  # + 2 norms

    @property
    def embed_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def params(self) -> int:
        """Every parameter: the layers, the embedding, an untied lm_head, the final norm."""
        head = 0 if self.tied else self.embed_params
        return self.layers * self.layer_params + self.embed_params + head + self.hidden

    @property
    def compute_params(self) -> int:
        """Parameters a token multiplies through: the layers and the output projection (the
        embedding is a lookup). FLOPs per token forward = 2 x this (+ attention)."""
        return self.layers * self.layer_params + self.embed_params

    def attn_flops_per_token(self, context: int) -> float:
        """Forward attention FLOPs per token (QK^T and AV, causal: the mean context is L/2)."""
        return 4.0 * self.layers * self.q_dim * context / 2

    def lora_params(self, rank: int, targets: list[str]) -> int:
        shapes = self.proj_shapes()
        return self.layers * sum(rank * (a + b) for n, (a, b) in shapes.items() if n in targets)


def _from_json(name: str, c: dict[str, Any]) -> ModelShape:
    text = c.get("text_config")
    if isinstance(text, dict):  # multimodal wrappers keep the decoder's numbers here
        c = {**c, **text}
    try:
        hidden, heads = int(c["hidden_size"]), int(c["num_attention_heads"])
        return ModelShape(
            name=name,
            hidden=hidden,
            layers=int(c["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(c.get("num_key_value_heads") or heads),
            head_dim=int(c.get("head_dim") or hidden // heads),
            intermediate=int(c["intermediate_size"]),
            vocab=int(c["vocab_size"]),
            tied=bool(c.get("tie_word_embeddings", False)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise PlanError(
            f"model {name}: config.json lacks {e} (a dense decoder is planned)"
        ) from None


def _cache_root() -> Path:
    # the rule of rlcore.models.tiny.cache_root, which imports torch with its module
    return Path(os.environ.get("RLCORE_CACHE", Path.home() / ".cache" / "rlcore"))


def config_json(path: str) -> Path | None:
    """The config.json of model.path without building or downloading anything; None: not here."""
    if path == "tiny-base":
        return Path(__file__).resolve().parents[1] / "models" / "tiny_base" / "config.json"
    if path == "smollm2-135m-instruct":
        found = sorted(_cache_root().glob("smollm2-135m-instruct-*/config.json"))
        return found[-1] if found else None
    p = Path(path) / "config.json"
    return p if p.is_file() else None


def model_shape(path: str) -> ModelShape:
    """The shape of model.path: its config.json if it is here, else the KNOWN table by name."""
    found = config_json(path)
    if found is not None:
        try:
            data = json.loads(found.read_text())
        except (OSError, ValueError) as e:
            raise PlanError(f"model.path: {found} cannot be read as JSON ({e})") from None
        return _from_json(path, data)
    key = Path(path.rstrip("/")).name.lower()
    if key in KNOWN:
        return ModelShape(key, *KNOWN[key])
    raise PlanError(
        f"model.path: {path} has no config.json here and is not one of the known models "
        f"({', '.join(sorted(KNOWN))}); plan on a machine that has the folder"
    )
