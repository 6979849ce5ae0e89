"""IFEval verifier: every instruction type with a passing and a failing response, loose vs strict,
malformed references, and adversarial text (empty, unicode, regex metacharacters, reasoning)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rlcore.verifiers.base import Sample  # noqa: E402
from rlcore.verifiers.ifeval import IFEvalConfig, IFEvalVerifier, loose_variants  # noqa: E402
from rlcore.verifiers.ifeval_checks import CHECKERS  # noqa: E402

# (instruction id, kwargs, a response that follows it, a response that does not)
CASES = [
    ("keywords:existence", {"keywords": ["apple", "banana"]},
     "I like Apple pie and BANANA bread.", "I like apple pie only."),
    ("keywords:frequency", {"keyword": "war", "frequency": 3, "relation": "at least"},
     "War is war and war again.", "War and peace."),
    ("keywords:frequency", {"keyword": "war", "frequency": 2, "relation": "less than"},
     "War and peace.", "War and war."),
    ("keywords:forbidden_words", {"forbidden_words": ["rock", "stone"]},
     "Rocky roads and stones are fine.", "We ROCK the house."),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "at least"},
     "Zebras at the zoo.", "A zebra."),
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 2, "let_relation": "at least"},
     "loving it #summer #sun", "loving it #summer"),
    ("language:response_language", {"language": "fr"},
     "Je pense que la réponse est très simple et je vais l'expliquer maintenant.",
     "I think the answer is very simple and I will explain it now."),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"},
     "Dr. Smith went home. He was tired.", "One is here. Two is here. Three is here."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2},
     "First part.\n***\nSecond part.", "First part.\n***\n***\nSecond part."),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"},
     "one two three four five", "one two three four"),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"},
     "The first paragraph.\n\n\"However, the second one.", "The first paragraph.\n\nBut the second."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2},
     "Dear [name], you live at [address].", "Dear [name], hello."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "Hello there.\np.s. see you soon", "Hello there. PS see you soon"),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"},
     "Hello.\nP.P.S. one more thing", "Hello.\nP.S. only one"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2},
     "Points:\n* first\n- second", "Points:\n* first\n* second\n* third"),
    ("detectable_format:constrained_response", {},
     "After thinking: My answer is maybe.", "Yes, definitely."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "This is *important* and **urgent**.", "This is *important* and ** ** empty."),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section 1\nintro\nSection 2\nend", "Section 1\nintro only"),
    ("detectable_format:json_format", {},
     '```json\n{"name": "x", "n": 1}\n```', 'Here it is: {"name": "x"}'),
    ("detectable_format:title", {}, "<<A Day Out>>\nWe went out.", "<< >>\nWe went out."),
    ("combination:two_responses", {},
     "First answer.\n******\nSecond answer.", "Same answer.\n******\nSame answer."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem about cats."},
     "write a poem about cats. Cats sleep all day.", "Sure! Write a poem about cats. Cats sleep."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     '"That is all. Any other questions?"', "Any other questions? Goodbye."),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "THIS is VERY good.", "THIS is very good."),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "less than"},
     "THIS is very good.", "I'M SO happy."),  # Treebank splits I'M into I and 'M: 3 capital words
    ("change_case:english_capital", {},
     "THIS IS A SHORT ENGLISH TEXT ABOUT MY DOG AND HIS FAVORITE PARK.",
     "This Is Mostly Upper Case But Not All Of It."),
    ("change_case:english_capital", {},
     "THIS IS A SHORT ENGLISH TEXT ABOUT MY DOG AND HIS FAVORITE PARK.",
     "CECI EST UN COURT TEXTE EN FRANÇAIS SUR MON CHIEN ET SON PARC PRÉFÉRÉ."),
    ("change_case:english_lowercase", {},
     "this is a short english text about my dog and his favorite park.",
     "this is a short english text about my dog and His favorite park."),
    ("punctuation:no_comma", {}, "No commas in this one.", "Yes, there is one."),
    ("startend:quotation", {}, '  "The whole answer is quoted."  ', '"Only the start is quoted.'),
]  # fmt: skip


def _verify(ids, kwargs, response, **config):
    verifier = IFEvalVerifier(IFEvalConfig(**config))
    ref = {"instruction_id_list": ids, "kwargs": kwargs}
    return verifier.verify(Sample(prompt="p", response=response, reference=ref))


def test_table_covers_all_25_instruction_types():
    assert len(CHECKERS) == 25
    assert {c[0] for c in CASES} == set(CHECKERS)


@pytest.mark.parametrize(("iid", "kwargs", "good", "bad"), CASES, ids=[c[0] for c in CASES])
def test_instruction_pass_and_fail(iid, kwargs, good, bad):
    ok = _verify([iid], [kwargs], good)
    assert ok.error is None
    assert (ok.reward, ok.correct) == (1.0, True), ok.details
    assert ok.details["instructions"] == [{"id": iid, "strict": True, "loose": True}]
    ko = _verify([iid], [kwargs], bad)
    assert (ko.reward, ko.correct) == (0.0, False), ko.details
    assert ko.details["instructions"][0]["strict"] is False
    assert ko.details["reason"]


# (instruction, kwargs, response) that only the loose variants satisfy
LOOSE_ONLY = [
    ("detectable_format:json_format", {}, 'Here is the JSON:\n{"a": 1}'),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     "Done.\nAny other questions?\nHope this helps!"),
    ("keywords:existence", {"keywords": ["apple"]}, "I like **ap*ple** pie."),
    ("startend:quotation", {}, 'Sure:\n"The quoted answer."'),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."},
     "Of course!\nWrite a poem. Roses are red."),
]  # fmt: skip


@pytest.mark.parametrize(("iid", "kwargs", "response"), LOOSE_ONLY, ids=[c[0] for c in LOOSE_ONLY])
def test_loose_accepts_what_strict_rejects(iid, kwargs, response):
    strict = _verify([iid], [kwargs], response)
    loose = _verify([iid], [kwargs], response, mode="loose")
    assert (strict.reward, strict.correct) == (0.0, False)
    assert (loose.reward, loose.correct) == (1.0, True)
    assert strict.details["instructions"] == loose.details["instructions"]  # both in details
    assert strict.details["instructions"][0] == {"id": iid, "strict": False, "loose": True}


def test_loose_variants_are_the_reference_eight():
    variants = loose_variants("first *a*\nmiddle\nlast")
    assert len(variants) == 8
    assert variants[0] == "first *a*\nmiddle\nlast"
    assert "middle" in variants and "first a\nmiddle" in variants


def test_fraction_and_all_or_nothing():
    ids = ["punctuation:no_comma", "startend:quotation", "detectable_format:title"]
    response = '"No commas here at all."'
    partial = _verify(ids, [{}, {}, {}], response)
    assert partial.reward == pytest.approx(2 / 3) and partial.correct is False
    binary = _verify(ids, [{}, {}, {}], response, all_or_nothing=True)
    assert binary.reward == 0.0 and binary.correct is False
    full = _verify(ids, [{}, {}, {}], '"<<Title>> no commas"', all_or_nothing=True)
    assert full.reward == 1.0 and full.correct is True


@pytest.mark.parametrize("response", ["", "   \n\t  "])
def test_empty_response_follows_nothing(response):
    # Even instructions an empty text would trivially satisfy (no comma, less than N words).
    ids = ["punctuation:no_comma", "length_constraints:number_words"]
    kwargs = [{}, {"num_words": 10, "relation": "less than"}]
    for mode in ("strict", "loose"):
        r = _verify(ids, kwargs, response, mode=mode)
        assert (r.reward, r.correct, r.error) == (0.0, False, None)
        assert r.details["reason"] == "empty response"


UNICODE = [
    # The reference only knows the ASCII comma: a full-width comma is not one.
    ("punctuation:no_comma", {}, "中文，带全角逗号。", True),
    ("keywords:existence", {"keywords": ["café"]}, "WE MET AT THE CAFÉ.", True),
    ("keywords:letter_frequency", {"letter": "e", "let_frequency": 1, "let_relation": "at least"},
     "Café déjà vu", False),  # é is not e
    ("length_constraints:number_words", {"num_words": 3, "relation": "at least"},
     "naïve café résumé", True),  # \w is Unicode-aware
    ("change_case:english_lowercase", {}, "straße ist eine deutsche straße mit vielen häusern.", False),
    ("language:response_language", {"language": "ja"}, "これは日本語で書かれた短い文章です。", True),
    ("language:response_language", {"language": "ja"}, "这是用中文写的一段简短的文字。", False),
    ("startend:end_checker", {"end_phrase": "¿Algo más?"}, "Listo. ¿ALGO MÁS?", True),
    ("detectable_format:title", {}, "<<标题>>\n正文", True),
]  # fmt: skip


@pytest.mark.parametrize(("iid", "kwargs", "response", "follows"), UNICODE)
def test_unicode(iid, kwargs, response, follows):
    r = _verify([iid], [kwargs], response)
    assert r.error is None
    assert r.correct is follows, r.details


ADVERSARIAL = [
    # regex metacharacters in keywords are literal, not patterns (the reference would crash or
    # match "c" followed by anything)
    ("keywords:existence", {"keywords": ["c++"]}, "I write C++ daily.", True),
    ("keywords:existence", {"keywords": ["c++"]}, "I write cc daily.", False),
    ("keywords:forbidden_words", {"forbidden_words": ["a.b"]}, "axb is fine", True),
    # exactly N bullets: padding with extra bullets does not help
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "* a\n- b", False),
    # a response of digits only has no language to identify: passes, as in the reference
    ("language:response_language", {"language": "fr"}, "12345", True),
    # two identical responses are not two responses
    ("combination:two_responses", {}, "A\n******\n  A  ", False),
    # JSON with trailing prose is not JSON
    ("detectable_format:json_format", {}, '{"a": 1} and more', False),
    # an empty paragraph between dividers breaks the count
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3}, "a\n***\n \n***\nb", False),
]  # fmt: skip


@pytest.mark.parametrize(("iid", "kwargs", "response", "follows"), ADVERSARIAL)
def test_adversarial(iid, kwargs, response, follows):
    r = _verify([iid], [kwargs], response)
    assert r.error is None
    assert r.correct is follows, r.details


def test_reasoning_is_stripped_before_checking():
    response = "<think>Well, let me think, with commas, about it.</think>No commas in the answer."
    assert _verify(["punctuation:no_comma"], [{}], response).correct is True
    kept = _verify(["punctuation:no_comma"], [{}], response, strip_thinking=False)
    assert kept.correct is False


def test_none_kwargs_are_ignored_like_the_hf_copy_of_ifeval():
    kwargs = {"num_words": 2, "relation": "at least", "keyword": None, "language": None}
    r = _verify(["length_constraints:number_words"], [kwargs], "two words")
    assert r.correct is True


BAD_REFERENCES = [
    ({}, "instruction_id_list"),
    ({"instruction_id_list": []}, "instruction_id_list"),
    ({"instruction_id_list": ["nonsense:thing"], "kwargs": [{}]}, "unknown IFEval instruction"),
    ({"instruction_id_list": ["length_constraints:number_words"], "kwargs": [{}]}, "missing"),
    ({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{"num_words": 3}]}, "unexpected"),
    ({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}]}, "one per instruction"),
    ({"instruction_id_list": ["punctuation:no_comma"], "kwargs": ["x"]}, "must be a dict"),
    ({"instruction_id_list": ["length_constraints:number_words"],
      "kwargs": [{"num_words": 3, "relation": "at most"}]}, "relation"),
]  # fmt: skip


@pytest.mark.parametrize(("reference", "message"), BAD_REFERENCES)
def test_malformed_reference_is_an_error_not_a_zero(reference, message):
    r = IFEvalVerifier().verify(Sample(prompt="p", response="text", reference=reference))
    assert r.reward == 0.0 and r.correct is None
    assert r.error is not None and r.error.startswith("unparseable:") and message in r.error


def test_missing_kwargs_list_means_no_kwargs():
    r = IFEvalVerifier().verify(
        Sample(
            prompt="p",
            response="no comma",
            reference={"instruction_id_list": ["punctuation:no_comma"]},
        )
    )
    assert r.correct is True


def test_registry_finds_it():
    from rlcore.verifiers.registry import get_verifier_class

    assert get_verifier_class("ifeval") is IFEvalVerifier
