"""The rejection-sampled cold start (rlcore/cold_start.py): the start model's own correct answers
become the SFT targets, the answer boxed in place."""

import json

import pytest
from rlcore.verifiers import Sample
from rlcore.verifiers.build import Scorer

from rlcore.cold_start import box_answer
from rlcore.config import ConfigError, load_config
from rlcore.trainer import train
from tests.test_train_e2e import SMALL


@pytest.mark.parametrize(
    ("text", "answer", "expected"),
    [
        (
            "57 + 65 = 122\n\nThe final answer is 122.",
            "122",
            "57 + 65 = 122\n\nThe final answer is \\boxed{122}.",
        ),
        ("16 + 48 = 64", "64", "16 + 48 = \\boxed{64}"),
        # part of a longer number, a decimal or a negative number is not the answer
        ("1122 and 12.5 and -12", "12", None),
        ("it is 12.", "12", "it is \\boxed{12}."),
        ("-7 is the sum", "-7", "\\boxed{-7} is the sum"),
        ("already \\boxed{ 9 } here, and 9 again", "9", "already \\boxed{ 9 } here, and 9 again"),
        ("no number here", "5", None),
    ],
)
def test_box_answer_wraps_the_last_standalone_occurrence(text, answer, expected):
    assert box_answer(text, answer) == expected


def test_distill_n_must_not_be_negative():
    with pytest.raises(ConfigError, match="sft.distill_n"):
        load_config("configs/tiny_coldstart.yaml", ["sft.distill_n=-1"])


@pytest.mark.slow
def test_coldstart_on_the_models_own_verified_answers(tmp_path, ray_local):
    """A cold start whose SFT targets are the pretrained tiny base's own answers that the math
    verifier accepts (the base install.sh builds; random weights would answer nothing right),
    prompted in its pretraining format ("Q: ...\nA:"; it never saw the chat template): every
    kept target is graded correct again, and each kept row is one SFT example."""
    run_dir = tmp_path / "run"
    cfg = load_config(
        "configs/tiny_coldstart.yaml",
        [
            *SMALL,
            "model.path=tiny-base",
            "data.prompt_format=raw",
            f"run_dir={run_dir}",
            "steps=1",
            "data.sft_size=24",
            "sft.distill_n=4",
            "sft.distill_verifier=math",
            "rollout.max_tokens=64",
        ],
    )
    train(cfg)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    (stats,) = [r for r in rows if r["stage"] == "sft_distill"]
    assert stats["rows"] == 24 and stats["samples"] == 96
    assert 8 <= stats["rows_kept"] <= stats["samples_correct"]
    data = [json.loads(line) for line in (run_dir / "sft_data.jsonl").read_text().splitlines()]
    assert len(data) == stats["rows_kept"]
    # each target, scored again by the same verifier, is right
    refs = {r["id"]: r["reference"] for r in _sft_rows(cfg)}
    items = [
        ("math", Sample(prompt=d["prompt"], response=d["completion"], reference=refs[d["id"]]))
        for d in data
    ]
    with Scorer(["math"], workers=1) as scorer:
        assert all(r.correct for r in scorer.score(items)), data
    sft_steps = [r for r in rows if r["stage"] == "sft"]
    assert len(sft_steps) == int(stats["rows_kept"]) // 8  # sft.batch_size=8, one epoch


def _sft_rows(cfg):
    from rlcore.data.run_rows import load_run_rows as _load_data

    return _load_data(cfg)[2]


def test_distilled_targets_keep_own_tokens_and_edited_ones_are_scored_again(tiny_chat_model):
    """An answer kept as it is trains on the model's own token ids; a boxed (edited) one is
    tokenized again, and only after the verifier RL pays with (the row's own) accepts the edited
    text. The engine is a test double here (fixed completions; the real engine runs in the slow
    test above), the tokenizer and verifiers are real."""
    from transformers import AutoTokenizer

    from rlcore.cold_start import distilled_examples
    from rlcore.config import DataConfig, RolloutConfig
    from rlcore.rollout.engine import Completion, SamplingParams
    from rlcore.sampling import Local, Sampler

    tok = AutoTokenizer.from_pretrained(tiny_chat_model)
    rows = [
        {"id": "a", "prompt": "1+1?", "reference": {"answer": "2"}, "verifier": "math"},
        {"id": "b", "prompt": "3+4?", "reference": {"answer": "7"}, "verifier": "math"},
        {"id": "c", "prompt": "Combien font 2+3 ?", "reference": {"answer": "5", "language": "fr"},
         "verifier": "language"},
    ]  # fmt: skip
    answers = {
        "a": [("so it is 3", "stop"), ("1 + 1 = 2", "stop")],  # the second: boxed in place
        "b": [("the answer is \\boxed{7}", "stop"), ("7", "stop")],  # the first, as it is
        "c": [("The answer is 5.", "stop"), ("5", "length")],  # English where French was asked
    }
    ids = {text: tok(text, add_special_tokens=False)["input_ids"] for a in answers.values()
           for text, _ in a}  # fmt: skip

    def generate(prompts, params):
        return [
            [Completion(ids[text], [0.0] * len(ids[text]), why) for text, why in answers[r["id"]]]
            for r in rows
        ]

    # the distillation verifier: the right last number, boxed or not (as configs/smollm2_zero.yaml)
    answer = {"path": "rlcore.verifiers.math:MathVerifier", "answer_pattern": r"(-?\d+)"}
    with Scorer(["answer", "math", "language"], {"answer": answer}, workers=1) as scorer:
        backend = Local(generate, lambda items: [r.to_dict() for r in scorer.score(items)])
        sampler = Sampler(backend, tok, DataConfig(), RolloutConfig())
        kept, stats = distilled_examples(sampler, rows, SamplingParams(n=2), True, "answer")
    by_id = {t.row["id"]: t for t in kept}
    assert sorted(by_id) == ["a", "b"]  # c: boxed, then refused by its RL verifier (English)
    assert by_id["a"].text == "1 + 1 = \\boxed{2}" and by_id["a"].token_ids is None
    assert by_id["b"].text == "the answer is \\boxed{7}"
    assert by_id["b"].token_ids == tuple(ids["the answer is \\boxed{7}"])
    assert stats["targets_edited"] == 2 and stats["edited_rejected"] == 1
    assert stats["rows_kept"] == 2 and stats["samples_truncated"] == 1
