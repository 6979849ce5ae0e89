"""One grammar for model output, shared by every verifier and the multi-turn rollout.

    strip_think("<think>plan</think> \\boxed{4}")  ->  " \\boxed{4}"

`strip_think` leaves the text a model means as its answer: every `<think>...</think>` block is
removed; a `</think>` with no `<think>` before it (a chat template that opened the block in the
prompt) removes everything before it; and a `<think>` never closed removes the rest (the model
was still thinking when it stopped). The language verifier alone keeps the reasoning's text.
"""

from __future__ import annotations

import re

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def strip_think(text: str, open_tag: str = THINK_OPEN, close_tag: str = THINK_CLOSE) -> str:
    """The text outside the reasoning (see the module doc)."""
    first_close, first_open = text.find(close_tag), text.find(open_tag)
    if first_close >= 0 and (first_open < 0 or first_close < first_open):
        text = text[first_close + len(close_tag) :]  # opened by the template, in the prompt
    blocks = re.compile(re.escape(open_tag) + r".*?(?:" + re.escape(close_tag) + r"|\Z)", re.DOTALL)
    return blocks.sub("", text)
