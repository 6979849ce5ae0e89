"""The eval cache: torn appends survive, model keys follow weight content, verifier keys follow
spec, options and reference."""

import shutil

from rlcore.eval.cache import append_jsonl, model_key, read_jsonl, verifier_key


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_fresh(tmp_path):
    p = tmp_path / "x.samples.jsonl"
    append_jsonl(p, [{"key": "a", "j": 0}, {"key": "a", "j": 1}])
    with p.open("a") as f:
        f.write('{"key": "a", "j": 2, "te')  # the process died mid-write
    assert [r["j"] for r in read_jsonl(p)] == [0, 1]
    append_jsonl(p, [{"key": "a", "j": 2}])
    assert [r["j"] for r in read_jsonl(p)] == [0, 1, 2]


def test_model_key_hashes_weight_content_not_path(tmp_path, tiny_chat_model):
    a = tmp_path / "a"
    shutil.copytree(tiny_chat_model, a)
    memo = tmp_path / "hashes.json"
    key = model_key(a, memo)
    assert model_key(tiny_chat_model, memo) == key  # same weights elsewhere: same samples
    assert memo.is_file() and model_key(a, memo) == key  # memoised
    weights = next(a.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    assert model_key(a, memo) != key


def test_verifier_key_changes_with_spec_options_and_reference():
    ref = {"answer": "2"}
    base = verifier_key("math", {}, ref)
    assert verifier_key("math", {}, dict(ref)) == base
    assert verifier_key("math", {"math": {"strict": False}}, ref) != base
    assert verifier_key([{"name": "math", "weight": 1.0}, "format"], {}, ref) != base
    assert verifier_key("math", {}, {"answer": "3"}) != base
