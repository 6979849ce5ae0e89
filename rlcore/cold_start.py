"""The cold start's training targets: worked completions from the data, or the start model's own
answers, rejection-sampled (sft.distill_n > 0).

Rejection sampling keeps the targets in the model's own words: each SFT prompt is answered
`distill_n` times, and a row keeps its first answer that the verifier marks correct and that ended
on its own (not at the token limit). With `distill_box_answer` the last place the answer states the
reference is wrapped in \\boxed{} (the format RL pays for); nothing else of the answer changes, and
the boxed text is scored again by the verifier RL pays with. An answer kept as it is trains on the
model's own tokens. A small instruct model trained on text in a new style forgets what it could do
elsewhere (long-context retrieval, the prompt's language: docs/benchmarks.md, "A real model"); its
own filtered answers teach the format with less drift (as STaR and rejection-sampling fine-tuning
do).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from rlcore.rollout.engine import SamplingParams
from rlcore.sampling import Sampler


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


@dataclass(frozen=True)
class Target:
    """One SFT target: the text, and the model's own token ids where the text is its answer
    unedited (None where it was edited, e.g. boxed: the text is then tokenized for training)."""

    row: dict[str, Any]
    text: str
    token_ids: tuple[int, ...] | None


def distilled_examples(
    sampler: Sampler,
    rows: list[dict[str, Any]],
    params: SamplingParams,
    box: bool,
    spec: Any = None,
) -> tuple[list[Target], dict[str, float]]:
    """The rows that kept an answer, and the yield: {rows, rows_kept, samples, samples_correct,
    samples_truncated, targets_edited, edited_rejected}. `spec` (sft.distill_verifier) judges the
    answers; None: each row's own verifier.

    An answer edited by boxing is scored again by the row's own verifier (the one RL will pay
    with): a target the reward would not accept is not taught. An unedited answer keeps the
    model's own tokens (re-tokenizing its text need not give them back)."""
    scored, n = sampler.sample(rows, params, spec), params.n
    chosen: list[Target] = []
    edited: list[tuple[Target, Any]] = []  # (target, its sample with the edited response)
    correct = truncated = 0
    for g, (row, group) in enumerate(zip(rows, scored.groups, strict=True)):
        answer = str(row.get("reference", {}).get("answer", ""))
        target = None
        mine = slice(g * n, (g + 1) * n)
        for completion, sample, result in zip(
            group, scored.samples[mine], scored.results[mine], strict=True
        ):
            ok = bool(result.get("correct"))
            stopped = completion.finish_reason == "stop"
            correct += ok
            truncated += not stopped
            if target is not None or not (ok and stopped):
                continue
            text = box_answer(sample.response, answer) if box and answer else sample.response
            if text is None:  # the answer is never stated as such: nothing to box
                continue
            if text == sample.response:
                target = Target(row, text, tuple(completion.token_ids))
            else:
                target = Target(row, text, None)
                edited.append((target, replace(sample, response=text, token_ids=())))
        if target is not None:
            chosen.append(target)
    rejected: set[int] = set()
    if edited:
        rescored = sampler.score([(sampler.spec_of(t.row), s) for t, s in edited])
        rejected = {
            id(t) for (t, _), r in zip(edited, rescored, strict=True) if not r.get("correct")
        }
    kept = [t for t in chosen if id(t) not in rejected]
    stats = {
        "rows": float(len(rows)),
        "rows_kept": float(len(kept)),
        "samples": float(len(scored.samples)),
        "samples_correct": float(correct),
        "samples_truncated": float(truncated),
        "targets_edited": float(len(edited)),
        "edited_rejected": float(len(rejected)),
    }
    return kept, stats
