"""`math`: is the response's final answer mathematically equal to the reference `answer`?

What it checks: the final answer is the content of the LAST `\\boxed{...}` (or `\\fbox{...}`) in the
response, nested braces included; when there is no box and `answer_pattern` is configured, the last
match of that regex (its first group). A response that ends inside a box never closed
(`\\boxed{4} ... \\boxed{5`) has no final answer: it does not fall back to an earlier box or the pattern.
The answer is compared with the reference by math-verify (sympy underneath): `1/2` = `0.5` =
`\\frac{1}{2}`, `x=2` = `2`, `\\{1,2\\}` = `\\{2,1\\}`, intervals, percentages, LaTeX variants, and
constants spelled in ASCII on either side (`pi`, `oo`, `inf`, `Infinity`, `sqrt2`, `exp(1)`).

What it does NOT do: look for an answer anywhere else - an answer stated in the text but not boxed
(or matched by the pattern) earns nothing, and the whole response is never used as the answer. It
does not judge the reasoning, only the final answer, and does not give partial credit.

Hacks refused (each planted as a canary, verifiers/canaries.py): the answer must be outside the
reasoning (`strip_think`, verifiers/text.py: a `<think>` never closed has no answer after it); only
the last box counts, so boxing several candidates buys nothing; and an expression copied from the
prompt (`\\boxed{17+25}` for "What is 17 + 25?") is not its value. `after_think` and
`allow_prompt_copy` turn the first and the last off.

Guards: math-verify bounds parsing and comparison with `signal.alarm` (so this must run on a process's
main thread: the worker pool does that), answers over `max_answer_chars` are rejected, numeric power
towers (`9^{9^{9^9}}`) and huge factorials are rejected before sympy sees them (string comparison
only), and the pool's `timeout_s` kills anything that still hangs.

Reference: {"answer": "..."} (a string or number, a float written out without an exponent; a
`\\boxed{}` in it is unwrapped).
Details: `extracted` (the answer string or None), `reason` when the reward is not the correct one.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from rlcore.verifiers.base import Result, Sample, Verifier, VerifierConfig
from rlcore.verifiers.text import strip_think

# math-verify logs every internal timeout at WARNING; this verifier reports them in its results.
logging.getLogger("math_verify").setLevel(logging.ERROR)


@dataclass(frozen=True)
class MathConfig(VerifierConfig):
    """Settings of the math verifier."""

    use_boxed: bool = True  # take the last complete \boxed{...} / \fbox{...} as the answer
    answer_pattern: str | None = (
        None  # regex, group 1 = answer; used when no box (or use_boxed off)
    )
    reward_correct: float = 1.0
    reward_incorrect: float = 0.0
    reward_no_answer: float = 0.0  # no box / no pattern match / empty box
    max_answer_chars: int = 1000  # longer extracted answers are rejected unparsed
    max_response_chars: int = 200_000  # only the last this-many characters are searched
    parse_timeout_s: int = 3  # math-verify's own signal-based limit per parse (whole seconds)
    compare_timeout_s: int = 3  # ... and per comparison
    float_rounding: int = 6  # decimal places for numeric comparison
    strict: bool = True  # math-verify strict mode: variable names matter, sets != tuples
    # Known hacks, each refused (the canaries in verifiers/canaries.py plant one of each):
    after_think: bool = True  # the answer counts only outside <think> (none in an unclosed one)
    allow_prompt_copy: bool = False  # an expression copied from the prompt is not its value


_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_UNICODE = {
    "\u2212": "-",
    "\u00d7": r"\times ",
    "\u00f7": r"\div ",
    "\u00b7": r"\cdot ",
    "\u2044": "/",
    "\u221a": r"\sqrt",
    "\u03c0": r"\pi ",
    "\u221e": r"\infty ",
}
# Constants and roots spelled in ASCII. math-verify's LaTeX parser reads `pi` as p*i, `oo` as o*o,
# `sqrt2` as s*q*r*t*2 and `exp(1)` as E*x*p(1). A name with a letter (or a backslash) on either
# side is left alone: api, pie, spin, \pi, \infty, \inf. So is `e`: math-verify reads it as Euler's.
_CONSTANT_NAME = "pi|Pi|PI|oo|inf|Inf|INF|infinity|Infinity|INFINITY"
_CONSTANT = re.compile(
    rf"\\(?:text|mathrm)\{{\s*({_CONSTANT_NAME})\s*\}}|(?<![\\A-Za-z])({_CONSTANT_NAME})(?![A-Za-z])"
)
_ROOT = re.compile(
    r"(?:(?<![\\A-Za-z])sqrt|\u221a)\s*(\d+(?:\.\d+)?)"
)  # sqrt23, √23: not \sqrt23 = 3√2
_FUNCTION = re.compile(r"(?<![\\A-Za-z])(sqrt(?=\s*[{\[])|exp(?=\s*\())")  # sqrt( parses already


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """The content of the brace group opening at text[start] == '{' and the index after it."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2  # escaped character, e.g. \{ inside a set
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
        i += 1
    return None


def boxes(text: str) -> list[tuple[int, int, str | None]]:
    """Every \\boxed / \\fbox in text as (start, end, content); content None when unclosed.
    Handles nested braces, escaped braces and the brace-less `\\boxed 5` form."""
    out: list[tuple[int, int, str | None]] = []
    for m in _BOX.finditer(text):
        j = m.end()
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            got = _braced(text, j)
            out.append((m.start(), got[1], got[0]) if got else (m.start(), len(text), None))
            continue
        token = re.match(r"[^\s$]+", text[j:]) if j > m.end() else None  # `\boxed 5`
        if token:
            out.append((m.start(), j + token.end(), token.group(0)))
        else:
            out.append((m.start(), m.end(), None))
    return out


def ends_in_open_box(text: str, found: list[tuple[int, int, str | None]] | None = None) -> bool:
    """The text ends inside a box never closed (`\\boxed{5`, or a bare `\\boxed` at the very end).
    `found`: boxes(text), when the caller has it."""
    found = boxes(text) if found is None else found
    return any(c is None and end == len(text) for _, end, c in found)


def last_boxed(text: str) -> str | None:
    """Content of the last complete top-level \\boxed{...} (or `\\boxed 5`) in text, else None.
    None too when the text ends inside an unclosed box: an answer cut off (`\\boxed{4} then \\boxed{5`)
    is not the earlier one, as in MATH's `last_boxed_only_string`. A box that is nothing but
    another box (`\\boxed{\\boxed{3}}`) is unwrapped."""
    found = boxes(text)
    complete = [(end, start, c) for start, end, c in found if c is not None]
    if not complete or ends_in_open_box(text, found):
        return None
    content = max(complete)[2]
    inner = boxes(content.strip())
    while inner and inner[0][0] == 0 and inner[0][1] == len(content.strip()) and inner[0][2]:
        content = inner[0][2]
        inner = boxes(content.strip())
    return content


def normalize_unicode(s: str) -> str:
    s = unicodedata.normalize("NFKC", s)
    return "".join(_UNICODE.get(c, c) for c in s)


def normalize(s: str) -> str:
    """Unicode symbols, then constants spelled in ASCII, as LaTeX (`pi` -> `\\pi`, `oo` -> `\\infty`)."""
    s = normalize_unicode(_ROOT.sub(r"\\sqrt{\1}", s))
    s = _CONSTANT.sub(lambda m: r"\pi " if (m[1] or m[2]).lower() == "pi" else r"\infty ", s)
    return _FUNCTION.sub(r"\\\1", s)


def _reference_text(answer: Any) -> str:
    """The reference as a string; a finite float without an exponent (str(1e-05) is "1e-05", which
    math-verify reads as 1*e - 5, Euler's e)."""
    if isinstance(answer, float) and Decimal(repr(answer)).is_finite():
        return format(Decimal(repr(answer)), "f")
    return str(answer)


def _exponents(s: str) -> list[str]:
    """The exponent text after each `^` or `**`: a brace group or the next token."""
    out = []
    for m in re.finditer(r"\^|\*\*", s):
        j = m.end()
        while j < len(s) and s[j] == " ":
            j += 1
        if j < len(s) and s[j] == "{":
            got = _braced(s, j)
            out.append(got[0] if got else s[j + 1 :])
        else:
            tok = re.match(r"[\w.]+(?:\s*(?:\^|\*\*)\s*[\w.{]+)*", s[j:])
            out.append(tok.group(0) if tok else "")
    return out


def pathological(answer: str, max_chars: int) -> str | None:
    """Why sympy should not be handed this answer (or None): too long, a numeric power tower,
    a huge numeric exponent or factorial. Symbolic towers such as 2^{2^n} are allowed."""
    if len(answer) > max_chars:
        return f"answer longer than {max_chars} characters"
    for exp in _exponents(answer):
        numeric = not re.search(r"[A-Za-z]", exp.replace("\\left", "").replace("\\right", ""))
        if numeric and ("^" in exp or "**" in exp):
            return "numeric power tower"
        if numeric and re.search(r"\d{7,}", exp):
            return "numeric exponent of 7 or more digits"
    if re.search(r"\d{6,}\s*\)?\s*!", answer):
        return "factorial of a number of 6 or more digits"
    return None


@lru_cache(maxsize=8192)
def _parse_reference(expr: str, timeout_s: int) -> tuple[Any, ...]:
    """References repeat (n samples per prompt): parse each once per worker."""
    return _parse(expr, timeout_s)


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s).strip("$")


def _parse(expr: str, timeout_s: int) -> tuple[Any, ...]:
    """math-verify's parse of one answer (LaTeX first, then plain expression)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    expr = expr.replace("$", " ")
    return tuple(
        parse(
            f"${expr}$",
            extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
            parsing_timeout=timeout_s,
        )
    )


def _copied(answer: str, gold: str, prompt: str) -> bool:
    """The answer is an expression (not a plain number) written in the prompt, other than the
    reference itself: "\\boxed{17+25}" for "What is 17 + 25?" equals 42 to sympy, but says nothing."""
    a = _squash(answer)
    return (
        bool(a) and a != _squash(gold) and not _PLAIN_NUMBER.fullmatch(a) and a in _squash(prompt)
    )


_PLAIN_NUMBER = re.compile(r"[+-]?(\d{1,50}(\.\d{0,50})?|\.\d{1,50})")


def _plain_number_equal(answer: str, gold: str) -> bool | None:
    """Exact equality when both strings are plain decimal numbers ("-12", "3.50"), else None."""
    a, g = answer.strip(), gold.strip()
    if not (_PLAIN_NUMBER.fullmatch(a) and _PLAIN_NUMBER.fullmatch(g)):
        return None
    return Decimal(a) == Decimal(g)


class MathVerifier(Verifier):
    """Final answer (last \\boxed{}) equals the reference `answer` under math-verify; see module doc."""

    name = "math"
    config_cls = MathConfig
    config: MathConfig

    def __init__(self, config: MathConfig | None = None) -> None:
        super().__init__(config)
        pat = self.config.answer_pattern
        self._pattern = re.compile(pat, re.DOTALL) if pat else None

    def setup(self) -> None:
        _parse("1/2", self.config.parse_timeout_s)  # imports sympy and math-verify once per worker

    def extract(self, response: str) -> str | None:
        """The final answer string, or None when the response states no answer the config accepts."""
        text = response[-self.config.max_response_chars :]
        if self.config.after_think:
            text = strip_think(text)
        if self.config.use_boxed:
            boxed = last_boxed(text)
            if boxed is not None:
                return boxed.strip()
            if ends_in_open_box(text):
                return None
        if self._pattern is not None:
            matches = list(self._pattern.finditer(text))
            if matches:
                m = matches[-1]
                return (m.group(1) if m.groups() else m.group(0)).strip()
        return None

    def _result(
        self,
        correct: bool,
        extracted: str | None,
        reason: str | None = None,
        error: str | None = None,
    ) -> Result:
        c = self.config
        details: dict[str, Any] = {"extracted": extracted}
        if reason:
            details["reason"] = reason
        reward = c.reward_correct if correct else c.reward_incorrect
        return Result(reward=reward, correct=correct, details=details, error=error)

    def verify(self, sample: Sample) -> Result:
        c = self.config
        if "answer" not in sample.reference:
            return Result(
                reward=0.0,
                error="bad_reference: no 'answer' in reference",
                details={"extracted": None},
            )
        gold = normalize(_reference_text(sample.reference["answer"])).strip()
        gold = last_boxed(gold) or gold
        extracted = self.extract(sample.response)
        if extracted is None or not extracted:
            why = "empty \\boxed{}" if extracted == "" else "no final answer (\\boxed{} or pattern)"
            tail = sample.response[-c.max_response_chars :]
            if extracted is None and c.use_boxed and ends_in_open_box(tail):
                why = "no final answer: the last \\boxed{ is never closed"
            return Result(
                reward=c.reward_no_answer,
                correct=False,
                details={"extracted": extracted, "reason": why},
            )
        # An answer over max_answer_chars is rejected unparsed below: not worth normalising.
        answer = normalize(extracted) if len(extracted) <= c.max_answer_chars else extracted
        bad = pathological(answer, c.max_answer_chars)
        if bad is not None or pathological(gold, c.max_answer_chars) is not None:
            same = _squash(answer) == _squash(gold)
            return self._result(same, extracted[:200], None if same else f"not parsed: {bad}")
        plain = _plain_number_equal(answer, gold)
        if plain is not None:  # both plain decimals: exact comparison, no sympy (~100x faster)
            return self._result(plain, extracted, None if plain else "not equal to the reference")
        gold_p = _parse_reference(gold, c.parse_timeout_s)
        pred_p = _parse(answer, c.parse_timeout_s)
        if not pred_p:
            same = _squash(answer) == _squash(gold)
            return self._result(same, extracted, None if same else "answer not parseable")
        from math_verify import verify

        t0 = time.perf_counter()
        ok = verify(
            list(gold_p),
            list(pred_p),
            float_rounding=c.float_rounding,
            strict=c.strict,
            timeout_seconds=c.compare_timeout_s,
        )
        if ok and not c.allow_prompt_copy and _copied(extracted, gold, sample.prompt_text):
            return self._result(False, extracted, "the prompt's expression, not its value")
        if ok:
            return self._result(True, extracted)
        if time.perf_counter() - t0 >= c.compare_timeout_s:
            return self._result(
                False,
                extracted,
                "comparison timed out",
                error=f"timeout: math-verify comparison over {c.compare_timeout_s}s",
            )
        return self._result(False, extracted, "not equal to the reference")
