"""The cold start's training targets: worked completions from the data, or the start model's own
answers, rejection-sampled (sft.distill_n > 0).

Rejection sampling keeps the targets in the model's own words: each SFT prompt is answered
`distill_n` times, and a row keeps its first answer that the verifier marks correct and that ended
on its own (not at the token limit). With `distill_box_answer` the last place the answer states the
reference is wrapped in \\boxed{} (the format RL pays for); nothing else of the answer changes. A
small instruct model trained on text in a new style forgets what it could do elsewhere (long-context
retrieval, the prompt's language: docs/benchmarks.md, "A real model"); its own filtered answers
teach the format with less drift (as STaR and rejection-sampling fine-tuning do).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rlcore.rollout.engine import SamplingParams


def box_answer(text: str, answer: str) -> str | None:
    """`text` with the last standalone occurrence of `answer` wrapped in \\boxed{} (unchanged when
    it is boxed already); None when the text never states it."""
    if re.search(r"\\boxed\{\s*" + re.escape(answer) + r"\s*\}", text):
        return text
    # not part of a longer number: no digit, decimal point or minus sign glued to either side
    hits = list(re.finditer(r"(?<![\d.\-])" + re.escape(answer) + r"(?![\d]|\.\d)", text))
    if not hits:
        return None
    m = hits[-1]
    return f"{text[: m.start()]}\\boxed{{{answer}}}{text[m.end() :]}"


def distilled_examples(
    rows: list[dict[str, Any]],
    encode: Callable[[dict[str, Any]], list[int]],
    generate: Callable[[list[list[int]], SamplingParams], list[list[Any]]],
    score: Callable[[list[tuple[Any, Any]]], list[dict[str, Any]]],
    make_sample: Callable[[dict[str, Any], Any], Any],
    verifier_of: Callable[[dict[str, Any]], Any],
    params: SamplingParams,
    box: bool,
) -> tuple[list[tuple[dict[str, Any], str]], dict[str, float]]:
    """[(row, target text)] for the rows that kept an answer, and the yield:
    {rows, rows_kept, samples, samples_correct, samples_truncated}."""
    groups = generate([encode(r) for r in rows], params)
    samples = [[make_sample(r, c) for c in g] for r, g in zip(rows, groups, strict=True)]
    items = [(verifier_of(r), s) for r, ss in zip(rows, samples, strict=True) for s in ss]
    results = iter(score(items))
    kept: list[tuple[dict[str, Any], str]] = []
    correct = truncated = 0
    for row, group, ss in zip(rows, groups, samples, strict=True):
        answer = str(row.get("reference", {}).get("answer", ""))
        target = None
        for completion, sample in zip(group, ss, strict=True):
            ok = bool(next(results).get("correct"))
            stopped = completion.finish_reason == "stop"
            correct += ok
            truncated += not stopped
            if target is None and ok and stopped:
                text = sample.response.strip()
                target = box_answer(text, answer) if box and answer else text
        if target is not None:
            kept.append((row, target))
    n = sum(len(g) for g in groups)
    stats = {
        "rows": float(len(rows)),
        "rows_kept": float(len(kept)),
        "samples": float(n),
        "samples_correct": float(correct),
        "samples_truncated": float(truncated),
    }
    return kept, stats
