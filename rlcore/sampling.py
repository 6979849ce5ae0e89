"""One sample-and-verify path, for training, held-out evaluation, the cold start and the eval suite.

    sampler = Sampler(cluster, tokenizer, cfg.data, cfg.rollout, overlap=cfg.verifier.overlap)
    scored = sampler.sample(rows, params)     # n completions per row, each verified
    scored.samples[k], scored.results[k]      # flat, row g's n samples at [g * n, (g + 1) * n)

`sample` encodes each row's prompt (data.prompt_format), samples through the backend (the
cluster's engines), turns every completion into the verifier's `Sample` (a multi-turn episode's
response is the policy's last turn), runs tool-using episodes when rollout.max_turns > 1, and
scores each sample with its row's verifier (data.verifier where the row names none). With
`overlap`, each engine part goes to the verifiers as soon as it comes back, while the other
engines still sample; results are the same either way.

A backend is anything with `generate_parts`, `submit` and `collect` (rlcore/cluster.py); `Local`
makes one from plain generate and score functions (a single engine, a test).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from rlcore.config import DataConfig, RolloutConfig
from rlcore.data.chat import render_prompt
from rlcore.rollout.engine import Completion, SamplingParams
from rlcore.rollout.multiturn import PARSERS, generate_episodes
from rlcore.rollout.tools import make_tools
from rlcore.verifiers import Sample

Groups = list[list[Completion]]  # n completions per prompt, in prompt order
Items = list[tuple[Any, Sample]]  # (verifier spec, sample) pairs


class Backend(Protocol):
    def generate_parts(
        self, prompt_ids: list[list[int]], params: SamplingParams
    ) -> Iterator[tuple[int, Groups]]:
        """(first prompt's index, its part's groups) per part, in the order they finish."""
        ...

    def submit(self, items: Items) -> Any:
        """Starts scoring; returns a handle for `collect`."""
        ...

    def collect(self, pending: Any) -> list[dict[str, Any]]:
        """The submitted items' results (Result.to_dict()), in their order."""
        ...


@dataclass
class Local:
    """A backend from a generate and a score function: one part, scored when collected."""

    generate: Callable[[list[list[int]], SamplingParams], Groups]
    score: Callable[[Items], list[dict[str, Any]]]

    def generate_parts(
        self, prompt_ids: list[list[int]], params: SamplingParams
    ) -> Iterator[tuple[int, Groups]]:
        yield 0, self.generate(prompt_ids, params)

    def submit(self, items: Items) -> Items:
        return items

    def collect(self, pending: Items) -> list[dict[str, Any]]:
        return self.score(pending)


@dataclass
class Scored:
    """What `Sampler.sample` returns: per row its prompt and n completions; per sample (flat, a
    row's n contiguous) the verifier's Sample, spec and result."""

    rows: list[dict[str, Any]]
    prompt_ids: list[list[int]]
    groups: Groups
    samples: list[Sample] = field(default_factory=list)
    specs: list[Any] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    time_rollout: float = 0.0  # until the last completion came back
    time_verify: float = 0.0  # what scoring added after that


def make_sample(row: dict[str, Any], completion: Completion, tokenizer: Any) -> Sample:
    """What the verifier sees. For a multi-turn episode, the response is the policy's LAST turn:
    an answer a tool printed earlier in the episode is not the policy's answer."""
    start = completion.extra.get("last_turn_start", 0)
    return Sample(
        prompt=row["prompt"],
        response=tokenizer.decode(completion.token_ids[start:], skip_special_tokens=True),
        reference=row.get("reference", {}),
        token_ids=tuple(completion.token_ids),
        metadata={"id": row.get("id"), "bucket": row.get("bucket")},
    )


def encode(tokenizer: Any, data: DataConfig, row: dict[str, Any]) -> list[int]:
    """A row's prompt as the engines see it (data.prompt_format, data.raw_template)."""
    return render_prompt(
        tokenizer, row["prompt"], data.prompt_format, data.raw_template, data.parse_special_tokens
    )


class Sampler:
    def __init__(
        self,
        backend: Backend,
        tokenizer: Any,
        data: DataConfig,
        rollout: RolloutConfig,
        overlap: bool = True,
    ) -> None:
        self.backend, self.tokenizer = backend, tokenizer
        self.data, self.rollout, self.overlap = data, rollout, overlap

    def encode(self, row: dict[str, Any]) -> list[int]:
        return encode(self.tokenizer, self.data, row)

    def spec_of(self, row: dict[str, Any]) -> Any:
        """The row's verifier spec: its own, else data.verifier."""
        return row.get("verifier", self.data.verifier)

    def generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> Groups:
        """Every prompt's completions, in prompt order (no verification)."""
        parts = dict(self.backend.generate_parts(prompt_ids, params))
        return [g for start in sorted(parts) for g in parts[start]]

    def score(self, items: Items) -> list[dict[str, Any]]:
        return self.backend.collect(self.backend.submit(items))

    def sample(
        self,
        rows: list[dict[str, Any]],
        params: SamplingParams,
        spec: Any = None,
    ) -> Scored:
        """`params.n` completions per row, each scored by `spec` where given, else by its row's
        verifier."""
        t0 = time.time()
        ids = [self.encode(r) for r in rows]
        out = Scored(rows, ids, [])
        by_start: dict[int, tuple[Groups, list[Sample], list[Any], Any]] = {}
        for start, groups in self._parts(rows, ids, params):
            part_rows = rows[start : start + len(groups)]
            flat = [(r, c) for r, g in zip(part_rows, groups, strict=True) for c in g]
            samples = [make_sample(r, c, self.tokenizer) for r, c in flat]
            specs = [spec if spec is not None else self.spec_of(r) for r, _ in flat]
            items = list(zip(specs, samples, strict=True))
            # without overlap, scoring starts once every part is back (below)
            by_start[start] = (
                groups,
                samples,
                specs,
                self.backend.submit(items) if self.overlap else items,
            )
        t1 = time.time()
        for start in sorted(by_start):
            groups, samples, specs, pending = by_start[start]
            if not self.overlap:
                pending = self.backend.submit(pending)
            out.groups += groups
            out.samples += samples
            out.specs += specs
            out.results += self.backend.collect(pending)
        out.time_rollout, out.time_verify = t1 - t0, time.time() - t1
        return out

    def _parts(
        self, rows: list[dict[str, Any]], prompt_ids: list[list[int]], params: SamplingParams
    ) -> Iterator[tuple[int, Groups]]:
        """One turn: the backend's parts as they finish. Tool-using episodes (max_turns > 1): one
        part, once every episode has ended."""
        rc = self.rollout
        if rc.max_turns <= 1:
            yield from self.backend.generate_parts(prompt_ids, params)
            return
        tools = [make_tools(r.get("tools", []), rc.tool_options) for r in rows]
        yield (
            0,
            generate_episodes(
                self.generate,
                prompt_ids,
                tools,
                params,
                self.tokenizer,
                rc.max_turns,
                PARSERS[rc.tool_format],
                max_model_len=rc.max_model_len,
                max_calls_per_turn=rc.max_tool_calls_per_turn,
            ),
        )
