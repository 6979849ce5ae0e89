"""The embedded tiny model: tokenizer round trip, chat template, and the cached base build."""

from dataclasses import replace

import pytest

from rlcore.data.chat import completion_ids, render_prompt
from rlcore.models.tiny import IM_END, TinyRecipe, build_tokenizer, tiny_base_path


def test_tokenizer_round_trips_task_text_and_keeps_think_tags():
    tok = build_tokenizer()
    text = "<think>57+87=144, 144-70=74</think>\\boxed{74}"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert tok.decode(ids, skip_special_tokens=True) == text  # think tags are not special
    assert tok.unk_token_id not in ids


def test_chat_template_renders_generation_prompt_once():
    tok = build_tokenizer()
    ids = render_prompt(tok, "1+2=?", "chat", "Q: {prompt}\nA:")
    text = tok.decode(ids)
    assert text == "<|im_start|>user\n1+2=?<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(render_prompt(tok, "1+2=?", "raw", "Q: {prompt}\nA:")) == "Q: 1+2=?\nA:"
    assert completion_ids(tok, "x", IM_END)[-1] == tok.convert_tokens_to_ids(IM_END)


def test_base_is_built_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("RLCORE_CACHE", str(tmp_path))
    recipe = TinyRecipe(
        pretrain_problems=200,
        pretrain_steps=3,
        batch_size=8,
        hidden_size=64,
        num_heads=2,
        num_layers=1,
        intermediate_size=64,
    )
    path = tiny_base_path(recipe)
    assert (path / "config.json").is_file() and (path / "tokenizer.json").is_file()
    stamp = (path / "config.json").stat().st_mtime_ns
    assert tiny_base_path(recipe) == path
    assert (path / "config.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tiny-base-")]  # no leftovers
    other = replace(recipe, pretrain_steps=4)
    assert tiny_base_path(other) != path  # a different recipe is a different cache entry


def test_the_default_base_is_the_shipped_one_verified_by_hash(tmp_path, monkeypatch):
    """README's numbers start from rlcore/models/tiny_base/; a recipe change must re-ship it."""
    import hashlib
    import json
    import shutil

    import rlcore.models.tiny as tiny

    manifest = json.loads((tiny.SHIPPED / "MANIFEST.json").read_text())
    assert manifest["recipe_key"] == TinyRecipe().key()  # re-ship after changing the recipe
    monkeypatch.setenv("RLCORE_CACHE", str(tmp_path / "cache"))
    path = tiny_base_path()
    weights = (path / "model.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == manifest["sha256"]["model.safetensors"]
    # a changed shipped file is an error naming it, and leaves nothing in the cache
    bad = tmp_path / "bad"
    shutil.copytree(tiny.SHIPPED, bad)
    (bad / "model.safetensors").write_bytes(weights[:-8] + b"\x00" * 8)
    monkeypatch.setattr(tiny, "SHIPPED", bad)
    monkeypatch.setenv("RLCORE_CACHE", str(tmp_path / "cache2"))
    with pytest.raises(RuntimeError, match="model.safetensors: missing or not the shipped file"):
        tiny_base_path()
    assert not list((tmp_path / "cache2").iterdir())
