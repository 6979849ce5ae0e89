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
