"""`ifeval`: does the response follow IFEval-style verifiable instructions?

Reference fields (as in IFEval's data): `instruction_id_list` (e.g. ["punctuation:no_comma",
"length_constraints:number_words"]) and `kwargs` (one dict per instruction, e.g. [{}, {"relation":
"at least", "num_words": 300}]). The 25 instruction types and their checkers are in ifeval_checks.py.

Try it:
    from rlcore.verifiers.base import Sample
    from rlcore.verifiers.ifeval import IFEvalVerifier
    IFEvalVerifier().verify(Sample(prompt="...", response="no commas here",
        reference={"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rlcore.verifiers.base import Result, Sample, Verifier, VerifierConfig
from rlcore.verifiers.ifeval_checks import build_check
from rlcore.verifiers.text import strip_think


@dataclass(frozen=True)
class IFEvalConfig(VerifierConfig):
    mode: Literal["strict", "loose"] = (
        "strict"  # which verdict gives the reward; both are in details
    )
    all_or_nothing: bool = (
        False  # reward 1 only when every instruction is followed, else the fraction
    )
    strip_thinking: bool = True  # judge only the text outside <think> (verifiers/text.py)


def loose_variants(response: str) -> list[str]:
    """IFEval's loose-mode variants: the response with its first and/or last line dropped, each with
    and without markdown asterisks removed (evaluation_lib.test_instruction_following_loose)."""
    lines = response.split("\n")
    drop_first = "\n".join(lines[1:]).strip()
    drop_last = "\n".join(lines[:-1]).strip()
    drop_both = "\n".join(lines[1:-1]).strip()
    variants = [response, response.replace("*", "")]
    variants += [drop_first, drop_last, drop_both]
    variants += [v.replace("*", "") for v in (drop_first, drop_last, drop_both)]
    return variants


def _follows(check: Callable[[str], bool], text: str) -> bool:
    # As in the reference, an empty or whitespace-only text never follows an instruction.
    return bool(text.strip()) and check(text)


class IFEvalVerifier(Verifier):
    """Checks the IFEval instructions named in the reference, in strict and loose mode.

    Reward: the fraction of instructions followed in `config.mode` (or 1/0 with `all_or_nothing`);
    correct: every instruction followed. details: `instructions` (per instruction: id, strict,
    loose), `strict_fraction`, `loose_fraction`.

    Does NOT check: whether the content answers the prompt (an on-format response about something
    else passes); instructions outside IFEval's 25 types (an unknown id is an error); text that is
    only digits or symbols passes the language checks, as in the reference (nothing to identify);
    language is judged on the whole response (use the `language` verifier against mixing); keyword
    counts match substrings ("war" in "software"), as in the reference.
    """

    name: ClassVar[str] = "ifeval"
    config_cls: ClassVar[type[VerifierConfig]] = IFEvalConfig
    config: IFEvalConfig

    def setup(self) -> None:
        # Load the sentence splitter, word tokenizer and language-id model before the first sample
        # so that a worker's first per-sample timeout is not spent importing.
        from rlcore.verifiers.ifeval_checks import split_sentences, word_tokenize
        from rlcore.verifiers.language import detect_language

        split_sentences("Warm up.")
        word_tokenize("Warm up.")
        detect_language("warm up")

    def verify(self, sample: Sample) -> Result:
        start = time.perf_counter()
        try:
            checks = self._checks(sample.reference)
        except ValueError as e:
            return Result(
                reward=0.0,
                error=f"unparseable: {e}",
                elapsed_s=time.perf_counter() - start,
            )
        response = sample.response
        if self.config.strip_thinking:
            response = strip_think(response)

        variants = loose_variants(response)
        per_instruction: list[dict[str, Any]] = []
        n_strict = n_loose = 0
        for instruction_id, check in checks:
            strict = _follows(check, response)
            loose = strict or any(_follows(check, v) for v in variants[1:])
            per_instruction.append({"id": instruction_id, "strict": strict, "loose": loose})
            n_strict, n_loose = n_strict + strict, n_loose + loose

        strict_frac = n_strict / len(checks)
        loose_frac = n_loose / len(checks)
        frac = strict_frac if self.config.mode == "strict" else loose_frac
        correct = frac == 1.0
        reward = float(correct) if self.config.all_or_nothing else frac
        details: dict[str, Any] = {
            "instructions": per_instruction,
            "strict_fraction": strict_frac,
            "loose_fraction": loose_frac,
        }
        if not response.strip():
            details["reason"] = "empty response"
        elif reward == 0.0:
            details["reason"] = "no instruction followed"
        return Result(
            reward=reward,
            correct=correct,
            details=details,
            elapsed_s=time.perf_counter() - start,
        )

    @staticmethod
    def _checks(reference: dict[str, Any]) -> list[tuple[str, Callable[[str], bool]]]:
        ids = reference.get("instruction_id_list")
        if not isinstance(ids, list) or not ids:
            raise ValueError("reference needs a non-empty list 'instruction_id_list'")
        kwargs = reference.get("kwargs")
        if kwargs is None:
            kwargs = [{} for _ in ids]
        if not isinstance(kwargs, list) or len(kwargs) != len(ids):
            raise ValueError(
                f"reference 'kwargs' must be a list of {len(ids)} dicts, one per instruction"
            )
        return [(i, build_check(i, k)) for i, k in zip(ids, kwargs, strict=True)]
