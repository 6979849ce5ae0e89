"""Reward-model verifier on a tiny random Llama reward model the test builds and saves itself (no
hub): batching equals per-sample scoring, input order is kept, chat template vs plain text,
truncation, sigmoid and threshold."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rlcore.verifiers.base import Sample  # noqa: E402
from rlcore.verifiers.reward_model import RewardModelConfig, RewardModelVerifier  # noqa: E402

WORDS = (
    "the a cat dog sat on mat is what how why answer question paris france capital of city "
    "yes no maybe good bad great terrible sure i think you we it this that two four plus equals "
    "system user assistant helpful"
).split()
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def _tokenizer(chat_template: str | None, with_pad: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]
    vocab = {w: i for i, w in enumerate(specials + WORDS + list("?.,!'"))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>" if with_pad else None,
        additional_special_tokens=specials[4:],
    )
    if chat_template:
        fast.chat_template = chat_template
    return fast


def _build(path, chat_template: str | None = TEMPLATE, with_pad: bool = True) -> str:
    torch.manual_seed(0)
    tokenizer = _tokenizer(chat_template, with_pad)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = transformers.LlamaForSequenceClassification(config)
    with torch.no_grad():  # a random head near zero would make every score look alike
        model.score.weight.normal_(0, 1.0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def rm_path(tmp_path_factory) -> str:
    return _build(tmp_path_factory.mktemp("tiny_rm"))


@pytest.fixture(scope="module")
def verifier(rm_path) -> RewardModelVerifier:
    return RewardModelVerifier(RewardModelConfig(model_path=rm_path, device="cpu", batch_size=3))


SAMPLES = [
    Sample(prompt="what is the capital of france ?", response="paris ."),
    Sample(prompt="what is two plus two ?", response="i think it is four , sure ."),
    Sample(prompt="why ?", response="no"),
    Sample(
        prompt=[
            {"role": "system", "content": "you are helpful ."},
            {"role": "user", "content": "is the cat on the mat ?"},
        ],
        response="yes , the cat sat on the mat . it is a good cat .",
    ),
    Sample(prompt="how is the dog ?", response="the dog is great great great great great !"),
    Sample(prompt="what is the capital of france ?", response="terrible question"),
    Sample(prompt="a", response=""),
]


def test_batch_equals_single_and_keeps_order(verifier):
    batch = verifier.verify_batch(SAMPLES)  # batch_size=3: several padded batches, sorted by length
    single = [verifier.verify(s) for s in SAMPLES]
    assert [r.reward for r in batch] == pytest.approx([r.reward for r in single], abs=1e-4)
    assert len({round(r.reward, 4) for r in batch}) == len(
        SAMPLES
    )  # scores differ: order is testable
    rev = verifier.verify_batch(list(reversed(SAMPLES)))
    assert [r.reward for r in rev] == pytest.approx([r.reward for r in reversed(batch)], abs=1e-4)
    for r in batch:
        assert r.error is None and r.correct is None
        assert r.details["score"] == r.reward and r.details["truncated"] is False
    assert verifier.verify_batch([]) == []


def test_score_is_the_models_last_token_logit(verifier, rm_path):
    sample = SAMPLES[0]
    text = verifier.render(sample)
    ids = verifier.tokenizer(text, add_special_tokens=False, return_tensors="pt")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(rm_path)
    with torch.no_grad():
        expected = model(**ids).logits[0, 0].item()
    assert verifier.verify(sample).reward == pytest.approx(expected, abs=1e-5)


def test_chat_template_renders_the_conversation(verifier):
    text = verifier.render(SAMPLES[3])
    assert text.startswith("<|system|> you are helpful .")
    assert "<|user|> is the cat on the mat ?" in text
    assert "<|assistant|> yes , the cat" in text
    assert verifier.render(SAMPLES[0]).startswith("<|user|> what is the capital")


def test_without_template_plain_prompt_and_response(tmp_path):
    path = _build(tmp_path / "plain", chat_template=None, with_pad=False)  # pad falls back to eos
    v = RewardModelVerifier(RewardModelConfig(model_path=path, device="cpu", batch_size=4))
    assert v.render(SAMPLES[0]) == "what is the capital of france ?\n\nparis ."
    batch = v.verify_batch(SAMPLES[:5])
    single = [v.verify(s).reward for s in SAMPLES[:5]]
    assert [r.reward for r in batch] == pytest.approx(single, abs=1e-4)


def test_truncation_keeps_the_end(rm_path):
    v = RewardModelVerifier(RewardModelConfig(model_path=rm_path, device="cpu", max_length=12))
    long = Sample(prompt="the cat " * 30 + "?", response="paris .")
    short = Sample(prompt="a", response="b")
    r_long, r_short = v.verify_batch([long, short])
    assert r_long.details["truncated"] is True and r_short.details["truncated"] is False
    kept = v.tokenizer(v.render(long), add_special_tokens=False)["input_ids"][-12:]
    assert v.tokenizer.decode(kept).strip().endswith("</s>")  # the response's end survived


def test_sigmoid_and_threshold(rm_path, verifier):
    raw = [r.reward for r in verifier.verify_batch(SAMPLES[:4])]
    v = RewardModelVerifier(
        RewardModelConfig(model_path=rm_path, device="cpu", sigmoid=True, threshold=0.5)
    )
    out = v.verify_batch(SAMPLES[:4])
    for s, r in zip(raw, out, strict=True):
        assert 0.0 < r.reward < 1.0
        assert r.correct is (s >= 0.0)
        assert r.details["score"] == pytest.approx(s, abs=1e-4)


def test_missing_model_path_fails_at_construction():
    with pytest.raises(ValueError, match="model_path"):
        RewardModelVerifier(RewardModelConfig())


def test_missing_local_checkpoint_never_reaches_a_hub(tmp_path):
    with pytest.raises(OSError):
        RewardModelVerifier(RewardModelConfig(model_path=str(tmp_path / "nowhere"), device="cpu"))
