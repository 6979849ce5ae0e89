"""`format`: does the response have the structure the config asks for?

By default: optional whitespace, then `<think>` reasoning `</think>` (exactly one pair, in that order,
non-empty), then the answer, which holds exactly one `\\boxed{...}` and no text after it (whitespace,
closing `$`, `\\]`, `\\)` and a final period are allowed). Configurable: think tags required, optional
or forbidden; the tag strings; a chat template that already opened `<think>` in the prompt; whether a
box is required; how much trailing text is tolerated.

What it does NOT check: whether the answer is right (`correct` is always None; pair it with `math` in
a composite), the quality or language of the reasoning, or boxes inside the reasoning (those are
allowed; only the answer part must hold exactly one).

Reward: `reward_ok` when every check passes, else `reward_fail`. Details: `ok`, `failed` (names of
the failed checks) and `reason` (human-readable, the first failure) when not ok.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from rlcore.verifiers.base import Result, Sample, Verifier, VerifierConfig
from rlcore.verifiers.math import boxes


@dataclass(frozen=True)
class FormatConfig(VerifierConfig):
    """Settings of the format verifier."""

    think: Literal["required", "optional", "forbidden"] = "required"
    think_open: str = "<think>"
    think_close: str = "</think>"
    think_opened_in_prompt: bool = (
        False  # the template emitted `<think>`: response has only the close
    )
    allow_text_before_think: bool = False
    min_think_chars: int = 1  # non-whitespace reasoning characters required inside the tags
    require_boxed: bool = True  # the answer part holds exactly one complete \boxed{...}
    max_trailing_chars: int = (
        0  # characters allowed after the box beyond whitespace, $, \], \), "."
    )
    reward_ok: float = 1.0
    reward_fail: float = 0.0


_CLOSERS = re.compile(r"\\\]|\\\)|\$|\s")


class FormatVerifier(Verifier):
    """Checks think-tag structure and a single final \\boxed{} answer; see the module docstring."""

    name = "format"
    config_cls = FormatConfig
    config: FormatConfig

    def _think(self, text: str, failed: list[tuple[str, str]]) -> str:
        """Check the think block; return the answer part (text after the reasoning)."""
        c = self.config
        opens, closes = text.count(c.think_open), text.count(c.think_close)
        if c.think == "forbidden":
            if opens or closes:
                failed.append(("think_present", "think tags present but forbidden"))
            return text
        if c.think == "optional" and opens == 0 and closes == 0:
            return text
        want_opens = 0 if c.think_opened_in_prompt else 1
        if opens != want_opens or closes != 1:
            failed.append(
                (
                    "think_tags",
                    f"expected {want_opens} {c.think_open} and 1 {c.think_close}, "
                    f"found {opens} and {closes}",
                )
            )
            return text[text.rfind(c.think_close) + len(c.think_close) :] if closes else text
        close_at = text.index(c.think_close)
        start = 0
        if want_opens:
            open_at = text.index(c.think_open)
            if open_at > close_at:
                failed.append(("think_order", f"{c.think_close} comes before {c.think_open}"))
                return text[close_at + len(c.think_close) :]
            if text[:open_at].strip() and not c.allow_text_before_think:
                failed.append(("text_before_think", f"text before {c.think_open}"))
            start = open_at + len(c.think_open)
        if len(text[start:close_at].strip()) < c.min_think_chars:
            failed.append(("think_empty", "reasoning inside the think tags is empty"))
        return text[close_at + len(c.think_close) :]

    def _answer(self, answer: str, failed: list[tuple[str, str]]) -> None:
        c = self.config
        if not answer.strip():
            failed.append(("answer_empty", "no answer after the reasoning"))
            return
        if not c.require_boxed:
            return
        found = boxes(answer)
        top = [b for b in found if not any(o[0] < b[0] and b[1] <= o[1] for o in found)]
        if len(top) != 1:
            failed.append(("boxed_count", f"expected exactly one \\boxed{{}}, found {len(top)}"))
        if any(content is None for _, _, content in top):
            failed.append(("boxed_unclosed", "a \\boxed{ is never closed"))
            return
        if not top:
            return
        if not (top[-1][2] or "").strip():
            failed.append(("boxed_empty", "the \\boxed{} is empty"))
        trailing = _CLOSERS.sub("", answer[top[-1][1] :])
        trailing = trailing[:-1] if trailing.endswith(".") else trailing
        if len(trailing) > c.max_trailing_chars:
            failed.append(("text_after_box", f"{len(trailing)} characters after the \\boxed{{}}"))

    def verify(self, sample: Sample) -> Result:
        failed: list[tuple[str, str]] = []
        answer = self._think(sample.response, failed)
        self._answer(answer, failed)
        ok = not failed
        details: dict[str, object] = {"ok": ok, "failed": [name for name, _ in failed]}
        if failed:
            details["reason"] = failed[0][1]
        reward = self.config.reward_ok if ok else self.config.reward_fail
        return Result(reward=reward, correct=None, details=details)
