"""Config schema and data loading: bad input fails early, naming the key or file:line."""

import json
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from rlcore.config import ConfigError, key_table, load_config, with_key_table
from rlcore.data.dataset import DataError, load_rows, sft_completion
from rlcore.data.tasks import chain_sum_rows, is_heldout, worked_solution
from rlcore.data.twins import split_key
from rlcore.preflight import check

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_and_overrides(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("rollout:\n  n: 4\nstages: [rl]\n")
    cfg = load_config(y, ["learner.world_size=2", "algo.clip_high=0.28"])
    assert cfg.rollout.n == 4 and cfg.stages == ["rl"]
    assert cfg.learner.world_size == 2 and cfg.algo.clip_high == 0.28
    with pytest.raises(FrozenInstanceError):  # frozen: nothing mutates the config after launch
        cfg.rollout.n = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("rollout.nn=3", "did you mean 'rollout.n'"),
        ("lerner.lr=1", "did you mean 'learner'"),
        ("algo.clip_lowe=0.1", "did you mean 'algo.clip_low'"),
    ],
)
def test_misspelled_key_names_the_nearest(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(None, [override])


def test_sft_only_may_leave_temperature_at_zero_and_weight_decay_is_declared_once():
    assert load_config(None, ["stages=[sft]", "rollout.temperature=0"]).rollout.temperature == 0
    import inspect

    from rlcore.config import LearnerConfig

    assert inspect.getsource(LearnerConfig).count("weight_decay:") == 1


def test_misspelled_key_in_yaml_names_the_file(tmp_path):
    y = tmp_path / "bad.yaml"
    y.write_text("rollout:\n  temprature: 0.5\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*rollout.temprature.*rollout.temperature"):
        load_config(y)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("stages=[pretrain]", "stages"),
        ("rollout.n=1", "rollout.n"),
        ("learner.zero_stage=4", "zero_stage"),
        ("gpus=8", "this machine has 0"),
        ("learner.gpus_per_rank=1", "GPU"),
        ("rollout.temperature=0", "rollout.temperature: 0.0 must be > 0 for RL"),
        ("rollout.temperature=-1", "rollout.temperature"),
        ("algo.loss_agg=seq-sum", "algo: loss_agg 'seq-sum' is not one of"),
        ("algo.std_normalize=true algo.type=rloo", "algo.type=rloo does not use std_normalize"),
        ("algo.dual_clip=3 algo.type=gspo", "algo.type=gspo does not use dual_clip"),
        ("algo.loss_agg_constant=64", "algo.type=grpo aggregates by token-mean"),
        ("algo.critic_warmup_steps=5", "algo.critic_warmup_steps: algo.type=grpo trains no critic"),
    ],
)
def test_cross_field_rules(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        check(load_config(None, override.split()))


def test_the_docs_key_table_is_the_schemas():
    """docs/configuration.md's table of keys is generated from the fields' defaults, ranges and
    docs: regenerate it with `python -m rlcore.config --doc-table docs/configuration.md`."""
    docs = (ROOT / "docs" / "configuration.md").read_text()
    regenerate = "python -m rlcore.config --doc-table docs/configuration.md"
    assert with_key_table(docs) == docs, f"the key table is stale: run {regenerate}"
    table = key_table()
    assert "| `rollout.n` | `8` | [2, inf) | samples per prompt" in table
    assert '| `model.dtype` | `"float32"` | `float32`, `bfloat16`, `float16` |' in table


def test_missing_config_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("nope/missing.yaml")


def test_malformed_jsonl_row_names_file_and_line(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_text(json.dumps({"prompt": "1+1=?"}) + "\n" + "{not json\n")
    with pytest.raises(DataError, match=r"train.jsonl:2: malformed JSON"):
        load_rows(str(p), key="data.train", size=0, seed=0, split="train")
    p.write_text(json.dumps({"prompt": "1+1=?"}) + "\n\n" + json.dumps({"prompt": 5}) + "\n")
    with pytest.raises(DataError, match=r"train.jsonl:3: 'prompt' must be"):
        load_rows(str(p), key="data.train", size=0, seed=0, split="train")


def test_missing_data_file_names_the_key():
    with pytest.raises(DataError, match=r"data.train: data file not found"):
        load_rows("missing.jsonl", key="data.train", size=0, seed=0, split="train")


def test_jsonl_rows_load_with_ids(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text(
        json.dumps({"prompt": [{"role": "user", "content": "hi"}], "reference": {"answer": "1"}})
        + "\n"
    )
    rows = load_rows(str(p), key="data.train", size=0, seed=0, split="train")
    assert rows[0]["id"] == "t-0" and rows[0]["prompt"][0]["role"] == "user"


def test_chain_sum_splits_never_overlap_and_answers_are_right():
    train = chain_sum_rows(500, seed=0, split="train")
    held = chain_sum_rows(100, seed=1, split="heldout")
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in held}
    assert all(
        is_heldout(split_key(r["prompt"][:-2], {"expression": r["prompt"][:-2]})) for r in held
    )
    for r in train[:50]:
        expr = r["prompt"][:-2]
        assert int(r["reference"]["answer"]) == eval(expr)  # noqa: S307 - our own digits and +/-
    assert worked_solution("57+87-70") == ("57+87=144, 144-70=74", 74)
    assert sft_completion(train[0], think=True).startswith("<think>")
