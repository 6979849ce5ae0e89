"""Multi-turn tool-use rollouts, token-in/token-out, on top of any `generate` (the trainer's
`Sampler.generate`, rlcore/sampling.py, or one engine's).

    groups = generate_episodes(sampler.generate, prompt_ids, [make_tools(r["tools"]) for r in rows],
                               params, tokenizer, max_turns=4, max_model_len=cfg.rollout.max_model_len)

The first turn samples `params.n` completions per prompt; from then on every trajectory continues on
its own (n=1), all active trajectories batched into one `generate` call per turn. After each turn the
completion's text is searched for tool calls in the template's format (`PARSERS`; default Hermes/Qwen
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`); the calls run with the tools that prompt
allows (a thread pool: the python tool waits on a sandboxed subprocess), the results are rendered as
tool messages by the chat template (`tool_turn_ids`), and the next turn is generated from the prompt
plus everything so far. An episode ends at a turn with no tool call, a turn cut by length, the turn
limit, or the `max_model_len` budget.

Only the tool messages are ever tokenized: the policy's tokens stay exactly the ids the engine
sampled, so the learner scores the sequence the policy produced. The returned `Completion` per
trajectory has all tokens after the prompt (policy and tool), logprobs (0.0 on tool tokens), the last
turn's finish_reason, `mask` (1 on policy tokens, 0 on tool tokens; `pad_batch` applies it to the loss),
and `extra`: turns, tool_calls, tool_errors, stop (why the episode ended: answer | max_turns |
max_model_len | length) and last_turn_start (index of the last policy turn in token_ids, for
verifiers that should read the final answer only, not a tool's output).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from rlcore.data.chat import assemble_ids, mark_specials, special_strings
from rlcore.rollout.engine import Completion, SamplingParams
from rlcore.rollout.tools import ERROR_PREFIX, TOOLS, Tool, is_error
from rlcore.verifiers.tool_call import Unparseable, tagged_calls

Generate = Callable[[list[list[int]], SamplingParams], list[list[Completion]]]


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    error: str | None = None  # the call could not be parsed; this text goes back as its result


ToolCallParser = Callable[[str], list[ToolCall]]


def parse_hermes(text: str) -> list[ToolCall]:
    """`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks (Hermes, Qwen 2.5/3), by
    the `tool_call` verifier's own rule (`tagged_calls`): text inside <think> is planning, not a
    call, and a block never closed is not a call. A block that does not decode, or is never
    closed, becomes a ToolCall with `error` set and is not run, so the policy is told what was
    wrong."""
    return [
        ToolCall("", {}, str(c))
        if isinstance(c, Unparseable)
        else ToolCall(c["name"], c["arguments"])
        for c in tagged_calls(text)
    ]


PARSERS: dict[str, ToolCallParser] = {"hermes": parse_hermes}


# ---------------------------------------------------------------- tool messages as token ids
_SENTINEL = "RLCORE7ASSISTANT7SENTINEL"


def tool_turn_ids(
    tokenizer: Any, results: Sequence[tuple[str, str]], end_token_id: int
) -> list[int]:
    """Token ids to append after an assistant turn that ended with `end_token_id` (its stop token):
    the tool messages for `results` [(tool name, result text)] and the next assistant header.

    A template delta: the chat template renders [user, assistant, *tool messages] with the
    generation prompt; the text after the assistant's content, minus the stop token the engine
    already produced, is what follows (for ChatML: "\\n<|im_start|>tool\\n...<|im_end|>\\n
    <|im_start|>assistant\\n"; the "\\n" after <|im_end|> is the template's, not the policy's). The
    assistant content is a sentinel located in one rendering, rather than diffing against a render
    without the tool messages, because some templates (Qwen3) render the last assistant turn
    differently from an earlier one. The delta is tokenized on its own: it starts right after a
    special token, so no merge crosses the boundary. Special-token strings in tool output (text a
    model's program chose) stay text: they cannot end the turn or open a role. Templates that
    demand tool_call ids (Mistral) are not supported.
    """
    specials, found = special_strings(tokenizer), []
    messages = [
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": _SENTINEL},
        *(
            {"role": "tool", "name": n, "content": mark_specials(text, specials, found)}
            for n, text in results
        ),
    ]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    at = rendered.find(_SENTINEL)
    if at < 0:
        raise ValueError("the chat template does not render an assistant message's content as is")
    after = rendered[at + len(_SENTINEL) :]
    end = tokenizer.decode([end_token_id], skip_special_tokens=False)
    cut = after.find(end) if end else -1
    if cut >= 0 and not after[:cut].strip():  # the template's own end-of-turn is the stop token
        after = after[cut + len(end) :]
    return assemble_ids(tokenizer, after, found)


# ---------------------------------------------------------------- episodes
@dataclass
class _Trajectory:
    prompt: int  # index into prompt_ids
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    finish: str = "stop"
    stop: str = ""  # why the episode ended; "" while it goes on
    turns: int = 0
    calls: int = 0
    errors: int = 0
    last_turn_start: int = 0
    pending: list[ToolCall] = field(default_factory=list)

    def completion(self) -> Completion:
        extra = {
            "turns": self.turns,
            "tool_calls": self.calls,
            "tool_errors": self.errors,
            "stop": self.stop,
            "last_turn_start": self.last_turn_start,
        }
        return Completion(self.ids, self.logprobs, self.finish, extra, mask=self.mask)


def generate_episodes(
    generate: Generate,
    prompt_ids: list[list[int]],
    tools_per_prompt: Sequence[Mapping[str, Tool]],
    params: SamplingParams,
    tokenizer: Any,
    max_turns: int,
    parser: ToolCallParser = parse_hermes,
    *,
    max_model_len: int | None = None,  # prompt + every turn and tool message, at most
    max_calls_per_turn: int = 8,  # further calls in one turn get an error result, not a run
) -> list[list[Completion]]:
    """`params.n` episodes per prompt (outer list per prompt), at most `max_turns` policy turns
    each; `params.max_tokens` bounds each turn. See the module docstring for the returned fields."""
    if max_turns < 1:
        raise ValueError(f"max_turns must be >= 1, got {max_turns}")
    if len(tools_per_prompt) != len(prompt_ids):
        raise ValueError(f"{len(tools_per_prompt)} tool sets for {len(prompt_ids)} prompts")
    budget = max_model_len or 1 << 62
    groups = [[_Trajectory(i) for _ in range(params.n)] for i in range(len(prompt_ids))]
    active = [t for g in groups for t in g]
    for turn in range(1, max_turns + 1):
        if turn == 1:
            outs = [c for g in _checked(generate(prompt_ids, params), params.n) for c in g]
        else:
            seed = None if params.seed is None else params.seed + turn * 1_000_003
            contexts = [prompt_ids[t.prompt] + t.ids for t in active]
            outs = [g[0] for g in _checked(generate(contexts, replace(params, n=1, seed=seed)), 1)]
        for t, c in zip(active, outs, strict=True):
            _absorb(t, c, budget - len(prompt_ids[t.prompt]), tokenizer, parser, max_calls_per_turn)
        calling = [t for t in active if t.pending]
        if turn == max_turns:
            for t in calling:  # no turn left to read the result: the call is not run
                t.stop, t.pending = "max_turns", []
            break
        results = _run_calls(calling, tools_per_prompt)
        for t, res in zip(calling, results, strict=True):
            delta = tool_turn_ids(tokenizer, res, t.ids[-1])
            if len(prompt_ids[t.prompt]) + len(t.ids) + len(delta) >= budget:
                t.stop, t.finish = "max_model_len", "length"  # no room left to answer
                continue
            t.ids += delta
            t.logprobs += [0.0] * len(delta)
            t.mask += [0] * len(delta)
        active = [t for t in calling if not t.stop]
        if not active:
            break
    return [[t.completion() for t in g] for g in groups]


def _checked(groups: list[list[Completion]], n: int) -> list[list[Completion]]:
    if any(len(g) != n for g in groups):
        raise ValueError(f"generate returned {[len(g) for g in groups]} samples, expected {n} each")
    return groups


def _absorb(
    t: _Trajectory, c: Completion, room: int, tokenizer: Any, parser: ToolCallParser, limit: int
) -> None:
    """Appends one policy turn (cut to the room left) and queues the tool calls it makes."""
    ids, logprobs, finish = c.token_ids, c.logprobs, c.finish_reason
    room = max(room - len(t.ids), 0)
    if len(ids) > room:
        ids, logprobs, finish = ids[:room], logprobs[:room], "length"
    t.last_turn_start = len(t.ids)
    t.ids += ids
    t.logprobs += logprobs
    t.mask += [1] * len(ids)
    t.turns += 1
    t.finish = finish
    if finish != "stop":  # cut mid-turn: a half-written call is not run
        t.stop = "length"
        return
    # decode without the stop token: an unclosed last call must not swallow it
    calls = parser(tokenizer.decode(ids[:-1], skip_special_tokens=False))
    if not calls:
        t.stop = "answer"
        return
    over = f"more than {limit} tool calls in one turn; this one was not run"
    t.pending = [k if i < limit else ToolCall(k.name, {}, over) for i, k in enumerate(calls)]


def _run_calls(
    calling: list[_Trajectory], tools_per_prompt: Sequence[Mapping[str, Tool]]
) -> list[list[tuple[str, str]]]:
    """Runs every pending call of this turn; per trajectory, [(tool name, result text)]."""
    jobs = [(t, call) for t in calling for call in t.pending]
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(jobs))) as pool:
        texts = list(pool.map(lambda j: _run_one(j[1], tools_per_prompt[j[0].prompt]), jobs))
    out: dict[int, list[tuple[str, str]]] = {id(t): [] for t in calling}
    for (t, call), text in zip(jobs, texts, strict=True):
        out[id(t)].append((call.name or "error", text))
        t.calls += 1
        t.errors += is_error(text)
    for t in calling:
        t.pending = []
    return [out[id(t)] for t in calling]


def _run_one(call: ToolCall, tools: Mapping[str, Tool]) -> str:
    if call.error is not None:
        return ERROR_PREFIX + call.error
    tool = tools.get(call.name)
    if tool is None:
        why = "is not available for this task" if call.name in TOOLS else "does not exist"
        return f"{ERROR_PREFIX}tool {call.name!r} {why}; available: {sorted(tools) or 'none'}"
    return tool(call.arguments)


def episode_metrics(completions: Sequence[Completion]) -> dict[str, float]:
    """Means over episodes, for the step's log (episodes without `extra` count as one turn)."""
    n = max(len(completions), 1)
    return {
        "turns_mean": sum(c.extra.get("turns", 1) for c in completions) / n,
        "tool_calls_mean": sum(c.extra.get("tool_calls", 0) for c in completions) / n,
        "tool_errors_mean": sum(c.extra.get("tool_errors", 0) for c in completions) / n,
        "turn_limit_frac": sum(c.extra.get("stop") == "max_turns" for c in completions) / n,
    }
