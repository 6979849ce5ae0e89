"""Held-out problems have no twin in training: the split key (rlcore/data/twins.py) orders
commutative operands and drops the template, and every builtin split goes by it."""

import re

import pytest

from rlcore.config import load_config
from rlcore.data.run_rows import load_run_rows as _load_data
from rlcore.data.twins import canonical_expression, split_key


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("57 + 87 - 70", "87+57-70", True),
        ("57 + 87 - 70", "-70 + 87 + 57", True),
        ("5 - 9", "-9 + 5", True),
        ("5 - 9", "9 - 5", False),  # another problem, another answer
        ("3 * 4 * 2", "2 * (4 * 3)", True),
        ("2 + 2", "2 * 2", False),  # same numbers and answer, other operation
        ("8 / 2", "2 / 8", False),
        ("( 56 + -33 ) - 84", "56 - 33 - 84", True),
        ("9 - (4 - 1)", "9 - 4 + 1", True),
    ],
)
def test_canonical_expression_identifies_commuted_twins(a, b, same):
    assert (canonical_expression(a) == canonical_expression(b)) is same


def test_split_key_drops_the_template_and_falls_back_to_the_numbers():
    natural = split_key("What is 87 + 57 - 70?", {"expression": "87 + 57 - 70"})
    assert natural == split_key("Compute 57+87-70.", {"expression": "57+87-70"})
    assert canonical_expression("__import__('os')") is None  # not arithmetic: never evaluated
    legs = "How many legs are there in total if you have {} cows, {} ducks?"
    assert (
        split_key(legs.format(3, 12))
        == split_key(legs.format(12, 3))
        != split_key(legs.format(3, 11))
    )


def _twin_signature(row):
    """An independent twin test: the same numbers, the same operator symbols and the same answer
    (what a reader would call one problem written twice), from the prompt text alone."""
    text = row["prompt"] if isinstance(row["prompt"], str) else str(row["prompt"])
    text = text.split("\n\nGive your final answer")[0]
    numbers = tuple(sorted(re.findall(r"\d+", text)))
    ops = tuple(sorted(re.findall(r"(?<=[\d\s])[-+*/](?=[\s\d(])", text)))
    return numbers, ops, str(row["reference"].get("answer"))


@pytest.mark.parametrize(
    "config",
    [
        "configs/smollm2_zero.yaml",
        "configs/smollm2_multiobjective.yaml",
        "configs/tiny_coldstart.yaml",
        "configs/tiny_zero.yaml",
    ],
)
def test_no_heldout_problem_has_a_twin_in_training(config):
    cfg = load_config(config, ["data.decontam_against=''"])
    heldout, train, sft = _load_data(cfg)
    trained = {_twin_signature(r) for r in train + sft if "answer" in r.get("reference", {})}
    held = [r for r in heldout if "answer" in r.get("reference", {})]
    assert len(held) >= 100
    twins = [r["prompt"] for r in held if _twin_signature(r) in trained]
    assert twins == [], f"{len(twins)} of {len(held)} held-out problems have a twin: {twins[:3]}"
