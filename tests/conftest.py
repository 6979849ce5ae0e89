"""Shared fixtures: a tiny chat model built on the spot, and one local Ray cluster per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory) -> str:
    """The embedded tiny architecture and tokenizer with random weights (no pretraining: fast).
    Small enough for tests, real enough for vLLM, DeepSpeed and the chat template."""
    from rlcore.models.tiny import TinyRecipe, build_model, build_tokenizer

    path = tmp_path_factory.mktemp("tiny_chat")
    tok = build_tokenizer()
    recipe = TinyRecipe(hidden_size=64, num_heads=2, num_layers=2, intermediate_size=128)
    build_model(recipe, vocab_size=len(tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def ray_local():
    """One embedded Ray cluster for every test that needs actors (ray.init costs seconds)."""
    import ray

    from rlcore.actors import init_ray

    init_ray("", num_cpus=4)
    yield ray
    ray.shutdown()


def run_dir_files(run_dir: Path) -> set[str]:
    return {p.name for p in run_dir.iterdir()}


@pytest.fixture(scope="session")
def tiny_reward_model(tmp_path_factory) -> str:
    """A tiny random Llama sequence classifier (num_labels=1) on the embedded tiny tokenizer: a
    real reward model for the `reward_model` verifier, built here (nothing downloaded)."""
    import torch
    import transformers

    from rlcore.models.tiny import build_tokenizer

    path = tmp_path_factory.mktemp("tiny_rm")
    tok = build_tokenizer()
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    model = transformers.LlamaForSequenceClassification(config)
    with torch.no_grad():  # a random head near zero would score every answer alike
        model.score.weight.normal_(0, 1.0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)
