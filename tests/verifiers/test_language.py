"""Language verifier: right and wrong language, mid-answer switches, code/math-heavy responses,
mixed scripts, languages inferred from the prompt, malformed references."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rlcore.verifiers.base import Sample  # noqa: E402
from rlcore.verifiers.language import (  # noqa: E402
    LanguageConfig,
    LanguageVerifier,
    chunks,
    normalize_language,
    prose,
)

FR = (
    "Pour résoudre ce problème, on commence par additionner les deux nombres. "
    "Ensuite, on divise le résultat par deux. La réponse finale est donc vingt et un."
)
EN = (
    "To solve this problem, we first add the two numbers. "
    "Then we divide the result by two. So the final answer is twenty-one."
)
ZH = "为了解决这个问题，我们先把两个数相加。然后把结果除以二。所以最终答案是二十一。"

# (case id, expected language, response, lowest reward, highest reward, correct)
CASES = [
    ("french", "fr", FR, 1.0, 1.0, True),
    ("name_instead_of_code", "French", FR, 1.0, 1.0, True),
    ("english_for_french", "fr", EN, 0.0, 0.0, False),
    ("chinese", "zh", ZH, 1.0, 1.0, True),
    ("region_code", "zh-CN", ZH, 1.0, 1.0, True),
    ("english_for_chinese", "zh", EN, 0.0, 0.0, False),
    ("switch_to_english_midway", "fr",
     FR + "\nWait, let me double check this in English. Adding the numbers gives forty-two, "
     "and half of that is twenty-one, so the answer holds.", 0.3, 0.7, False),
    ("reasoning_in_english_answer_in_french", "fr",
     "<think>Let me think about the problem step by step before I answer in French. "
     "Adding gives forty-two, half of it is twenty-one.</think>" + FR, 0.3, 0.7, False),
    ("chinese_collapse_into_english", "zh",
     ZH + "Then we check the result again carefully and confirm that it is correct.", 0.2, 0.7, False),
    ("chinese_words_inside_english", "en",
     "The final answer is 二十一 因为我们把数字相加 because when we add the numbers together and divide by two "
     "we get exactly that value.", 0.5, 0.95, False),
    ("math_heavy_german", "de",
     "Wir setzen $x^2 + 3x - 10 = 0$ und faktorisieren:\n$$(x+5)(x-2) = 0$$\n"
     "Also ist die positive Lösung $x = 2$, und wir prüfen sie durch Einsetzen.", 1.0, 1.0, True),
    ("code_heavy_spanish", "es",
     "Aquí está la función que calcula el resultado correctamente:\n```python\n"
     "def solve(numbers):\n    total = sum(numbers)  # add them all\n    return total / 2\n```\n"
     "La función suma los números y luego divide el total entre dos.", 1.0, 1.0, True),
    ("greek_letters_as_math_symbols", "en",
     "The angle α is twice the angle β, so the triangle has a right angle at the top vertex.",
     1.0, 1.0, True),
    ("numbers_are_ignored", "fr", "La réponse est 42, soit 3.14 × 13.37 environ, donc 42.", 1.0, 1.0, True),
    ("russian", "ru", "Чтобы решить эту задачу, сначала сложим два числа, а затем разделим на два.",
     1.0, 1.0, True),
    ("hindi_written_for_english_prompt", "en",
     "इस समस्या को हल करने के लिए हम पहले दोनों संख्याओं को जोड़ते हैं।", 0.0, 0.0, False),
]  # fmt: skip


@pytest.mark.parametrize(("lang", "response", "lo", "hi", "correct"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # fmt: skip
def test_language_table(lang, response, lo, hi, correct):
    r = LanguageVerifier().verify(
        Sample(prompt="p", response=response, reference={"language": lang})
    )
    assert r.error is None
    assert lo <= r.reward <= hi, r.details
    assert r.correct is correct, r.details


def test_a_switch_costs_in_proportion_to_its_length():
    v = LanguageVerifier()
    extra = " Now I continue in English to explain every step again in full detail for you."
    short = v.verify(Sample(prompt="p", response=FR + extra, reference={"language": "fr"}))
    long = v.verify(Sample(prompt="p", response=FR + extra * 4, reference={"language": "fr"}))
    assert 0.0 < long.reward < short.reward < 1.0


@pytest.mark.parametrize(
    ("response", "correct", "reason"),
    [
        ("", False, "empty response"),
        ("   \n ", False, "empty response"),
        ("```python\nprint('bonjour le monde')\n```", None, "no prose"),
        ("$$\\int_0^1 x^2 \\, dx = \\frac{1}{3}$$", None, "no prose"),
        ("42 3.14 1e10", None, "no prose"),
    ],
)
def test_nothing_to_identify_scores_zero_with_a_reason(response, correct, reason):
    r = LanguageVerifier().verify(
        Sample(prompt="p", response=response, reference={"language": "fr"})
    )
    assert (r.reward, r.correct, r.error) == (0.0, correct, None)
    assert reason in r.details["reason"]


def test_language_inferred_from_the_prompt():
    v = LanguageVerifier()
    prompt = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Explique-moi pourquoi le ciel est bleu, en quelques phrases."},
    ]
    ok = v.verify(
        Sample(prompt=prompt, response="Le ciel est bleu à cause de la diffusion de la lumière.")
    )
    assert ok.details["expected"] == "fr" and ok.details["expected_from"] == "prompt"
    assert ok.correct is True
    ko = v.verify(Sample(prompt=prompt, response="The sky is blue because sunlight is scattered."))
    assert ko.correct is False


def test_unknown_expected_language_is_an_error():
    short = Sample(prompt="Hi?", response="Bonjour à tous, comment allez-vous ?")
    r = LanguageVerifier().verify(short)
    assert r.error is not None and "too short" in r.error
    off = LanguageVerifier(LanguageConfig(infer_from_prompt=False))
    r = off.verify(Sample(prompt="Explique-moi le ciel bleu, s'il te plaît.", response="Bonjour."))
    assert r.error is not None and "language" in r.error


def test_threshold_sets_correct():
    response = FR + " And one short English sentence at the end of it."
    sample = Sample(prompt="p", response=response, reference={"language": "fr"})
    strict = LanguageVerifier().verify(sample)
    lax = LanguageVerifier(LanguageConfig(correct_threshold=0.5)).verify(sample)
    assert strict.reward == lax.reward and 0.5 < strict.reward < 0.9
    assert (strict.correct, lax.correct) == (False, True)


def test_many_tiny_fragments_are_merged_not_trusted_one_by_one():
    # one-word "sentences" cannot be identified alone; merged, the English run is caught
    response = (
        FR + " " + " ".join(["Yes.", "Okay.", "Right.", "Sure.", "Fine.", "Good.", "Done."] * 3)
    )
    pieces = chunks(prose(response), LanguageConfig().min_chunk_letters)
    assert all(sum(c.isalpha() for c in p) >= LanguageConfig().min_chunk_letters for p in pieces)
    r = LanguageVerifier().verify(
        Sample(prompt="p", response=response, reference={"language": "fr"})
    )
    assert r.reward < 0.9


# (expected language, terse response, correct, correct by the rule for long text; None where
# function words decide, which they do under either rule)
TERSE = [
    ("fr", "Oui.", True, None),  # identified as Italian (0.48); "oui" is French
    ("de", "Ja.", True, None),
    ("zh", "答案是 12。", True, False),  # 3 characters: identified as English (0.12)
    ("ru", "Да.", True, False),
    ("ja", "はい。", True, True),
    ("fr", "The answer is 4.", False, None),  # English function words, no French one
    ("de", "The answer is four.", False, None),  # a few English words where German was asked
    ("de", "Die Antwort ist vier.", True, None),
    ("en", "Oui.", False, None),
    ("es", "Sí, es correcto.", True, None),
    ("fr", "Да.", False, False),  # the wrong script
    ("zh", "はい。", False, False),  # kana, identified as Japanese (1.0)
]


@pytest.mark.parametrize(("lang", "response", "correct", "long_rule"), TERSE)
def test_a_terse_answer_is_judged_by_function_words_then_its_script(
    lang, response, correct, long_rule
):
    sample = Sample(prompt="p", response=response, reference={"language": lang})
    r = LanguageVerifier().verify(sample)
    assert r.correct is correct and r.details["terse"] is True, r.details
    strict = LanguageVerifier(LanguageConfig(terse_reject_prob=0.0))  # never trusts the script
    assert strict.verify(sample).correct is (correct if long_rule is None else long_rule)


@pytest.mark.parametrize(
    ("given", "code"),
    [("fr", "fr"), ("FR", "fr"), ("French", "fr"), ("pt-BR", "pt"), ("zh_TW", "zh"), ("nb", "no")],
)
def test_normalize_language(given, code):
    assert normalize_language(given) == code
