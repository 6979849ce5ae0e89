"""Decontamination: planted near-duplicates of suite items are caught, clean data passes."""

import json

import pytest
from rlcore.launch.data import main as data_main

from rlcore.eval.decontam import find_contaminated, normalize, suite_items, tokens
from rlcore.eval.suite import load_suite

ITEMS = [
    {
        "benchmark": "gsm",
        "id": "g1",
        "text": "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
        "clips in May. How many clips did Natalia sell altogether in April and May?",
    },
    {
        "benchmark": "aime",
        "id": "a1",
        "text": "Find the number of ordered pairs (x, y) of integers such that x^2 + y^2 = 2025.",
    },
    {"benchmark": "chain", "id": "c1", "text": "57+87-70=?"},
    {
        "benchmark": "zh",
        "id": "z1",
        "text": "班尼看到一條長10英尺的鯊魚，身上附著2條各長6英吋的鮣魚。鮣魚的總長度是這條鯊魚身長的百分之多少？",
    },
]

CLEAN = [
    {"prompt": "Tom has 3 apples and buys 5 more. How many apples does he have now?"},
    {"prompt": "What is the derivative of x^3 + 2x?", "completion": "3x^2 + 2"},
    {"prompt": "12+7-3=?"},
    {"prompt": "57+87-70=? and then double it"},  # contains the short item but is not it
    {"prompt": [{"role": "user", "content": "一隻貓坐在窗邊看著外面的鳥。"}]},
]


def test_normalisation_ignores_case_whitespace_and_punctuation():
    assert normalize("  Hello,\tWORLD!!  How's it\n going? ") == "hello world how s it going"
    assert tokens("鯊魚的長度") == ["鯊", "魚", "的", "長", "度"]
    # arithmetic keeps its operators: different problems stay different
    assert normalize("57+87-70=?") == normalize(" 57 + 87 - 70 = ") != normalize("57-87+70=?")
    assert normalize("x^2+y^2=2025.") == normalize("X^2 + Y^2 = 2025")


@pytest.mark.parametrize(
    "planted",
    [
        # whitespace, case and punctuation changed, embedded in a longer row
        "QUESTION:   natalia SOLD clips to 48 of her friends in april and then   she sold half as "
        "many clips in may!!! how many clips did natalia sell altogether?",
        # only the middle of the item, as a completion
        "...to 48 of her friends in April; and then she sold half as many clips in May -- how many",
        # a short item: punctuation and spacing changed
        "Find the number of ordered pairs (x,y) of integers such that x^2+y^2=2025 .",
    ],
)
def test_planted_near_duplicates_are_caught(planted):
    rows = CLEAN + [{"id": "bad", "prompt": "Solve this.", "completion": planted}]
    hits = find_contaminated(rows, ITEMS, n=13)
    assert [h["row_id"] for h in hits] == ["bad"]
    assert hits[0]["matches"][0]["benchmark"] in ("gsm", "aime")


def test_short_items_match_exactly_and_cjk_by_characters():
    rows = [
        {"id": "chain", "prompt": " 57 + 87 - 70 = ? "},
        {"id": "zh", "prompt": "請回答：班尼看到一條長10英尺的鯊魚 身上附著2條各長6英吋的鮣魚"},
    ]
    hits = find_contaminated(rows + CLEAN, ITEMS, n=13)
    assert sorted(h["row_id"] for h in hits) == ["chain", "zh"]


def test_clean_data_passes():
    assert find_contaminated(CLEAN, ITEMS, n=13) == []


def test_embedded_train_split_is_clean_against_its_heldout_split():
    from rlcore.data.tasks import chain_sum_rows

    train = chain_sum_rows(2000, seed=0, split="train")
    assert find_contaminated(train, suite_items(load_suite("embedded")), n=13) == []


def test_suite_items_and_cli(tmp_path):
    items = suite_items(load_suite("embedded"))
    assert len(items) == 100 and all(it["text"] for it in items)
    train = tmp_path / "train.jsonl"
    rows = [{"id": "ok", "prompt": "1+2+3=?"}, {"id": "leak", "prompt": items[5]["text"].upper()}]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert data_main(["decontam", str(train), "--against", "embedded", "--out", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "train.decontam.json").read_text())
    assert report["contaminated"] == 1 and report["hits"][0]["row_id"] == "leak"
    clean = [json.loads(x) for x in (tmp_path / "train.clean.jsonl").read_text().splitlines()]
    assert [r["id"] for r in clean] == ["ok"]
    # the cleaned file is clean
    out2 = tmp_path / "again"
    assert data_main(["decontam", str(tmp_path / "train.clean.jsonl"), "--against", "embedded",
                      "--out", str(out2)]) == 0  # fmt: skip
