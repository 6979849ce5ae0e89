"""`judge` (model-based): an instruction-tuned LLM reads a rubric prompt and writes a verdict.

pointwise: reward = the judge's score of the response ("Score: 7", "[[7]]"), scaled to [0, 1].
pairwise: the response against another one (`sample.reference[opponent_key]`), judged in both
orders (A/B, then swapped) to cancel position bias; reward = the mean of the two verdicts for the
sample's response (win 1, tie 0.5, loss 0). `compare()` gives the same per pair, for arenas.

Greedy decoding on the judge's own engine, in this process (verifiers/generation.py: `vllm.LLM` on
CPU or GPU, or transformers `generate` with engine: hf). Nothing is downloaded: `model_path` is a
local folder; callers resolve embedded names (`rlcore eval --compare` resolves
smollm2-135m-instruct).

    v = JudgeVerifier(JudgeConfig(model_path="/models/judge", mode="pairwise"))
    v.compare(["What is 2+2?"], ["4"], ["5"])  # [{"ab": {...}, "ba": {...}, "outcome": 1.0}]
"""

from __future__ import annotations

import re
import string
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rlcore.verifiers.base import Message, Result, Sample, Verifier, VerifierConfig
from rlcore.verifiers.generation import ChatGenerator, ChatModelConfig

POINTWISE = (
    "Rate how well the response answers the request, from 1 (wrong, off-topic or empty) to 10 "
    "(correct, complete and helpful).\n\n[Request]\n{prompt}\n\n[Response]\n{response}\n"
    '{reference}\nReply with the rating only, as "Score: N".'
)
PAIRWISE = (
    "Which response answers the request better? Judge correctness and helpfulness, not length."
    "\n\n[Request]\n{prompt}\n\n[Response A]\n{response_a}\n\n[Response B]\n{response_b}\n"
    '{reference}\nReply with "[[A]]" if A is better, "[[B]]" if B is better, "[[C]]" for a tie.'
)
# mode -> (template, score_pattern, response_prefix). The prefix starts the judge's answer in the
# format asked for: SmolLM2-135M wrote a parseable verdict in 0 of 16 pairwise answers without it,
# 16 of 16 with "[[" (measured on chat_reference.jsonl pairs; docs/evaluation.md).
DEFAULTS = {
    "pointwise": (
        POINTWISE,
        r"(?i)\[\[\s*(-?\d+(?:\.\d+)?)\s*\]\]|score\s*(?:of|is|:|=)?\s*(-?\d+(?:\.\d+)?)",
        "Score: ",
    ),
    "pairwise": (PAIRWISE, r"(?i)\[\[\s*(A|B|C|tie)\s*\]\]", "[["),
}
FIELDS = {
    "pointwise": {"prompt", "response", "reference"},
    "pairwise": {"prompt", "response_a", "response_b", "reference"},
}
VERDICTS = {"a": "A", "b": "B", "c": "tie", "tie": "tie"}
OVERFLOW = "overflow: the judge prompt is longer than max_model_len - max_tokens"


@dataclass(frozen=True)
class JudgeConfig(ChatModelConfig):
    """The judge model and its engine (model_path, engine, dtype, max_model_len, max_tokens,
    batch_size: verifiers/generation.py), then the rubric and how its verdict is read."""

    mode: Literal["pointwise", "pairwise"] = "pointwise"
    template: str = ""  # rubric with {prompt} {response} {reference} (pairwise: {response_a}
    # {response_b}); "" = the mode's default above
    score_pattern: str = ""  # regex; the last match's first non-empty group is the score
    # (pairwise: A, B, C or tie); "" = the mode's default
    response_prefix: str | None = None  # written as the start of the judge's answer, and parsed
    # with it; None: the mode's default ("Score: ", "[[") with the default template, else ""
    min_score: float = 1.0  # pointwise: reward = (score - min_score) / (max_score - min_score)
    max_score: float = 10.0
    threshold: float | None = None  # correct = reward >= threshold; None: correct is None
    reference_key: str = ""  # {reference} shows sample.reference[reference_key]; "" = none
    opponent_key: str = "response"  # pairwise: sample.reference[opponent_key] is the other answer

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"judge verifier: {key}: {why}")

        if self.mode not in DEFAULTS:
            raise bad("mode", f"{self.mode!r} is not 'pointwise' or 'pairwise'")
        if self.engine not in ("vllm", "hf"):
            raise bad("engine", f"{self.engine!r} is not 'vllm' or 'hf'")
        if self.max_score <= self.min_score:
            raise bad("max_score", f"{self.max_score} must exceed min_score {self.min_score}")
        if not 1 <= self.max_tokens < self.max_model_len or self.batch_size < 1:
            raise bad("max_tokens", "needs 1 <= max_tokens < max_model_len and batch_size >= 1")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise bad("threshold", f"{self.threshold} is not in [0, 1] (rewards are)")
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(self.rubric) if f is not None}
        except ValueError as e:
            raise bad("template", f"{e} (write a literal brace as {{{{ or }}}})") from None
        need = {"response"} if self.mode == "pointwise" else {"response_a", "response_b"}
        if names - FIELDS[self.mode] or need - names:
            raise bad(
                "template",
                f"uses {sorted(names)}; {self.mode} needs {sorted(need)} and "
                f"allows {sorted(FIELDS[self.mode])}",
            )
        try:
            groups = re.compile(self.pattern).groups
        except re.error as e:
            raise bad("score_pattern", f"not a regular expression: {e}") from None
        if groups < 1:
            raise bad("score_pattern", "needs a capture group around the score")

    @property
    def rubric(self) -> str:
        return self.template or DEFAULTS[self.mode][0]

    @property
    def pattern(self) -> str:
        return self.score_pattern or DEFAULTS[self.mode][1]

    @property
    def prefix(self) -> str:
        if self.response_prefix is not None:
            return self.response_prefix
        return "" if self.template else DEFAULTS[self.mode][2]


def _last_group(text: str, pattern: str) -> str | None:
    found = list(re.finditer(pattern, text))
    return next((g for g in found[-1].groups() if g is not None), None) if found else None


def parse_score(
    text: str | None, pattern: str, lo: float, hi: float
) -> tuple[float | None, str | None]:
    """(score, None), or (None, "parse: why") when there is no score in [lo, hi]. text None: the
    prompt did not fit, the judge was not asked."""
    if text is None:
        return None, OVERFLOW
    got = _last_group(text, pattern)
    try:
        score = float(got) if got is not None else None
    except ValueError:
        return None, f"parse: {got!r} is not a number"
    if score is None:
        return None, "parse: no score in the judge's output"
    if not lo <= score <= hi:
        return None, f"parse: score {score:g} outside [{lo:g}, {hi:g}]"
    return score, None


def parse_verdict(text: str | None, pattern: str) -> tuple[str | None, str | None]:
    """("A" | "B" | "tie", None), or (None, "parse: why"); text None as in parse_score."""
    if text is None:
        return None, OVERFLOW
    got = _last_group(text, pattern)
    if got is None:
        return None, "parse: no verdict in the judge's output"
    verdict = VERDICTS.get(got.strip().lower())
    return (verdict, None) if verdict else (None, f"parse: verdict {got!r} is not A, B, C or tie")


class JudgeVerifier(Verifier):
    """Reward = an LLM judge's rubric score (pointwise) or position-debiased preference (pairwise).

    A judge output that does not parse is an error on that sample (`error="parse: ..."`, reward 0,
    the raw text in details), never a silent score of 0; so is a judge prompt longer than
    `max_model_len - max_tokens` ("overflow: ...").

    Does NOT check: correctness beyond what the judge model knows. A weak judge (the 135M default)
    is close to noise and often answers off-format; judges prefer the first (or second) position,
    longer answers, confident tone and their own style. Swapping the order cancels position bias
    only on average; length bias stays (see the length-controlled win rate of `rlcore eval
    --compare`). Open to reward hacking when trained against; keep a rule-based verifier beside it.
    """

    name: ClassVar[str] = "judge"
    config_cls: ClassVar[type[VerifierConfig]] = JudgeConfig
    model_based: ClassVar[bool] = True
    config: JudgeConfig

    def __init__(self, config: JudgeConfig | None = None) -> None:
        super().__init__(config)
        self.generator = ChatGenerator(self.config, "judge verifier")  # loads on the first call

    def setup(self) -> None:
        """Starts the judge's engine now (a model-based verifier actor calls it as it starts)."""
        if getattr(self.generator, "engine", None) is None:
            self.generator.load()

    def generate(self, texts: list[str]) -> list[str | None]:
        """The judge's raw answers to rubric texts in one batched call (None: prompt too long)."""
        return self.generator.generate(texts, self.config.prefix)

    def _fill(
        self, prompt: str | list[Message], reference: dict[str, Any] | None, **kw: str
    ) -> str:
        key = self.config.reference_key
        ref = (reference or {}).get(key) if key else None
        block = f"\n[Reference answer]\n{ref}\n" if ref is not None else ""
        text = prompt if isinstance(prompt, str) else Sample(prompt, "").prompt_text
        return self.config.rubric.format(prompt=text, reference=block, **kw)

    def compare(
        self,
        prompts: list[str | list[Message]],
        responses_a: list[str],
        responses_b: list[str],
        references: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Per pair: {"ab": {"text", "verdict"}, "ba": {...}, "outcome", "consistent", "error"}.
        ab shows response_a as A; ba swaps them. verdicts are as the judge wrote them (A/B/tie);
        outcome = response_a's mean score over both orders (win 1, tie 0.5), None on an error."""
        if self.config.mode != "pairwise":
            raise ValueError("judge verifier: compare() needs mode: pairwise (its rubric)")
        refs = references or [{} for _ in prompts]
        texts = []
        for p, a, b, r in zip(prompts, responses_a, responses_b, refs, strict=True):
            texts += [
                self._fill(p, r, response_a=a, response_b=b),
                self._fill(p, r, response_a=b, response_b=a),
            ]
        outs = self.generate(texts)
        pairs = []
        for k in range(0, len(outs), 2):
            orders: dict[str, Any] = {}
            for name, text, a_is in (("ab", outs[k], "A"), ("ba", outs[k + 1], "B")):
                v, err = parse_verdict(text, self.config.pattern)
                score = None if v is None else 0.5 if v == "tie" else float(v == a_is)
                orders[name] = {"text": text, "verdict": v, "score_a": score, "error": err}
            a1, a2 = orders["ab"]["score_a"], orders["ba"]["score_a"]
            ok = a1 is not None and a2 is not None
            error = orders["ab"]["error"] or orders["ba"]["error"]
            outcome, consistent = ((a1 + a2) / 2, a1 == a2) if ok else (None, None)
            pairs.append({**orders, "outcome": outcome, "consistent": consistent, "error": error})
        return pairs

    def verify(self, sample: Sample) -> Result:
        return self.verify_batch([sample])[0]

    def verify_batch(self, samples: list[Sample], workers: int = 1) -> list[Result]:
        """Score in input order in one batched judge call; `workers` is ignored."""
        start, c = time.perf_counter(), self.config
        missing = [self._missing(s) for s in samples]
        scored = iter(self._score([s for s, m in zip(samples, missing, strict=True) if not m]))
        per = (time.perf_counter() - start) / max(1, len(samples))
        results = []
        for m in missing:
            if m:
                results.append(Result(reward=0.0, error=m))
                continue
            reward, err, details = next(scored)
            correct = None if reward is None or c.threshold is None else reward >= c.threshold
            results.append(
                Result(reward or 0.0, correct, details=details, error=err, elapsed_s=per)
            )
        return results

    def _score(self, samples: list[Sample]) -> list[tuple[float | None, str | None, dict]]:
        """(reward, or None on an error; the error; details) per sample."""
        c = self.config
        if c.mode == "pairwise":
            others = [str(s.reference[c.opponent_key]) for s in samples]
            prompts, responses = [s.prompt for s in samples], [s.response for s in samples]
            verdicts = self.compare(prompts, responses, others, [s.reference for s in samples])
            return [(v["outcome"], v["error"], v) for v in verdicts]
        texts = [self._fill(s.prompt, s.reference, response=s.response) for s in samples]
        out: list[tuple[float | None, str | None, dict]] = []
        for text in self.generate(texts):
            score, err = parse_score(text, c.pattern, c.min_score, c.max_score)
            reward = None if score is None else (score - c.min_score) / (c.max_score - c.min_score)
            out.append((reward, err, {"score": score, "judge": text}))
        return out

    def _missing(self, sample: Sample) -> str | None:
        """Why the sample lacks what the rubric needs (reference / opponent), else None."""
        c = self.config
        for key in (c.reference_key, c.opponent_key if c.mode == "pairwise" else ""):
            if key and sample.reference.get(key) is None:
                return f"unparseable: the reference has no {key!r}"
        return None
