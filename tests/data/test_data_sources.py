"""Data sources: reasoning-gym tasks, the generated IF and tool-call tasks, source mappings and
mixtures; every row scored by its real verifier."""

import collections

import pytest
from rlcore.verifiers.base import Sample
from rlcore.verifiers.ifeval import IFEvalVerifier
from rlcore.verifiers.reasoning_gym import GymVerifier
from rlcore.verifiers.tool_call import ToolCallVerifier

from rlcore.data.dataset import DataError, load_source
from rlcore.data.generated import generated_rows
from rlcore.data.reasoning_gym import gym_rows
from rlcore.data.tasks import is_heldout

OPTS = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}


def test_gym_rows_split_by_hash_and_scored_by_the_datasets_own_scorer():
    train = gym_rows("basic_arithmetic", 40, seed=0, split="train", options=OPTS)
    held = gym_rows("basic_arithmetic", 20, seed=0, split="heldout", options=OPTS)
    questions = [r["reference"]["entry"]["question"] for r in train + held]
    assert len(set(questions)) == 60
    # the split goes by the twin-free key (rlcore/data/twins.py), not by the question's text
    assert not any(is_heldout(r["meta"]["split_key"]) for r in train)
    assert all(is_heldout(r["meta"]["split_key"]) for r in held)
    # another seed draws other training rows, never a held-out one
    other = gym_rows("basic_arithmetic", 40, seed=7, split="train", options=OPTS)
    assert not {r["prompt"] for r in other} & {r["prompt"] for r in held}
    v = GymVerifier()
    row = train[0]
    gold = row["reference"]["answer"]
    right = v.verify(Sample(row["prompt"], f"so \\boxed{{{gold}}}", row["reference"]))
    wrong = v.verify(Sample(row["prompt"], f"\\boxed{{{int(gold) + 1}}}", row["reference"]))
    unboxed = v.verify(Sample(row["prompt"], f"the answer is {gold}", row["reference"]))
    assert (right.reward, right.correct) == (1.0, True)
    assert wrong.correct is False and wrong.reward < 1.0
    assert unboxed.correct is False and unboxed.details["reason"] == "no \\boxed{}"
    bad = v.verify(Sample("", "\\boxed{1}", {"dataset": "basic_arithmetic"}))
    assert bad.error is not None and bad.error.startswith("bad_reference")


def test_unknown_gym_dataset_or_option_names_the_key():
    with pytest.raises(DataError, match=r"data.train: unknown reasoning-gym dataset 'nope'"):
        load_source("builtin:reasoning_gym/nope", key="data.train", size=4, seed=0, split="train")
    spec = {"source": "builtin:reasoning_gym/basic_arithmetic", "options": {"min_termz": 2}}
    with pytest.raises(DataError, match=r"data.train.source: reasoning_gym/basic_arithmetic"):
        load_source(spec, key="data.train", size=4, seed=0, split="train")
    with pytest.raises(DataError, match=r"data.train: a source mapping .* unknown: wieght"):
        load_source(
            {"source": "builtin:chain_sum", "wieght": 1},
            key="data.train",
            size=4,
            seed=0,
            split="train",
        )
    with pytest.raises(DataError, match=r"takes no options"):
        load_source(
            {"source": "builtin:chain_sum", "options": {"a": 1}},
            key="data.train",
            size=4,
            seed=0,
            split="train",
        )


def test_generated_if_rows_are_checkable_and_a_compliant_answer_passes():
    rows = generated_rows("if_constraints", 60, seed=0, split="train")
    assert len({r["prompt"] for r in rows}) == 60
    v = IFEvalVerifier()
    for r in rows:  # every generated instruction builds a checker; an empty answer follows none
        res = v.verify(Sample(r["prompt"], "", r["reference"]))
        assert res.error is None and res.reward == 0.0
    row = next(r for r in rows if r["reference"]["instruction_id_list"] == ["punctuation:no_comma"])
    ok = v.verify(
        Sample(row["prompt"], "Bees carry pollen from flower to flower.", row["reference"])
    )
    bad = v.verify(Sample(row["prompt"], "Bees, in short, matter.", row["reference"]))
    assert (ok.reward, bad.reward) == (1.0, 0.0)


def test_generated_tool_rows_reward_the_right_call_only():
    rows = generated_rows("tool_calls", 30, seed=0, split="train")
    v = ToolCallVerifier()
    for r in rows:
        ((name, args),) = r["reference"]["ground_truth"][0].items()
        call = {"name": name, "arguments": {k: vals[0] for k, vals in args.items()}}
        import json

        good = v.verify(
            Sample(r["prompt"], f"<tool_call>{json.dumps(call)}</tool_call>", r["reference"])
        )
        assert good.reward == 1.0, (r["prompt"], good)
        first = next(iter(call["arguments"]))
        call["arguments"][first] = "something else"
        wrong = v.verify(
            Sample(r["prompt"], f"<tool_call>{json.dumps(call)}</tool_call>", r["reference"])
        )
        assert wrong.reward == 0.0
        assert v.verify(Sample(r["prompt"], "I cannot help.", r["reference"])).reward == 0.0


def test_mixture_draws_rows_by_weight_and_keeps_each_rows_verifier():
    spec = [
        {"source": "builtin:reasoning_gym/basic_arithmetic", "weight": 2, "options": OPTS},
        {"source": "builtin:if_constraints", "weight": 1},
        {"source": "builtin:tool_calls", "weight": 1, "bucket": "tools"},
    ]
    rows = load_source(spec, key="data.train", size=80, seed=0, split="train")
    buckets = collections.Counter(r["bucket"] for r in rows)
    assert buckets == {"reasoning": 40, "if": 20, "tools": 20}
    assert {r["verifier"] for r in rows} == {"reasoning_gym", "ifeval", "tool_call"}
    with pytest.raises(DataError, match=r"weight must be > 0"):
        load_source(
            [{"source": "builtin:chain_sum", "weight": 0}], key="k", size=4, seed=0, split="train"
        )


def test_the_smollm2_mixture_loads_and_shares_no_13_gram_with_its_eval_suite():
    """configs/smollm2_multiobjective.yaml as the trainer reads it: the mixture's rows, and the
    decontamination its `data.decontam_against` asks for (IFEval's and BFCL's whole sets among them)."""
    from rlcore.config import load_config
    from rlcore.eval import find_contaminated, load_suite, suite_items

    cfg = load_config("configs/smollm2_multiobjective.yaml", [])
    d = cfg.data
    rows = load_source(d.train, key="data.train", size=200, seed=0, split="train")
    held = load_source(d.heldout, key="data.heldout", size=50, seed=1, split="heldout")
    assert collections.Counter(r["bucket"] for r in rows) == {  # weights 0.7 / 0.15 / 0.15
        "reasoning": 140,
        "if": 30,
        "tool": 30,
    }
    assert not {r["prompt"] for r in rows if isinstance(r["prompt"], str)} & {
        r["prompt"] for r in held
    }
    items = suite_items(load_suite(d.decontam_against))
    assert find_contaminated(rows, items, d.decontam_n) == []
    # the check is live: a training row copied from IFEval is caught
    ifeval = next(i for i in items if str(i["id"]).startswith("ifeval-"))
    planted = [{"id": "planted", "prompt": ifeval["text"]}]
    assert find_contaminated(planted, items, d.decontam_n)


def test_multilingual_arith_rows_need_the_right_number_in_the_questions_language():
    from rlcore.verifiers import Scorer

    from rlcore.data.twins import split_key

    rows = generated_rows("multilingual_arith", 40, 0, "train")
    assert {r["reference"]["language"] for r in rows} == {"fr", "es", "pt", "de", "it"}
    french = next(r for r in rows if r["reference"]["language"] == "fr")
    answer = french["reference"]["answer"]
    assert french["meta"]["split_key"].startswith("expr:")
    with Scorer(["math", "language"], {}, workers=1) as scorer:
        scored = scorer.score(
            [
                (french["verifier"], Sample(french["prompt"], f"Le résultat est \\boxed{{{answer}}}, "
                                            "car il suffit de faire le calcul avec soin.", french["reference"])),
                (french["verifier"], Sample(french["prompt"], f"The result is \\boxed{{{answer}}}, "
                                            "because you just do the sum carefully.", french["reference"])),
            ]
        )  # fmt: skip
    assert scored[0].correct is True and scored[1].correct is False  # right number, wrong language
    # the same expression asked in English and in French: one twin key, one side of the split
    assert split_key("What is 3 + 4?", {"expression": "4 + 3"}) == split_key(
        "Combien font 3 + 4 ?", {"expression": "3 + 4"}
    )
