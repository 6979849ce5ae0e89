"""`rlcore doctor MODEL [--json]`: checks a model's chat template and tokenizer for problems that
silently hurt training quality, the way rlcore renders prompts (rlcore/data/chat.py).

    rlcore doctor smollm2-135m-instruct          # or tiny-base, or any Hugging Face folder
    rlcore doctor path/to/model --json           # the same checks as JSON

Checks (each PASS, WARN or FAIL with a one-line reason):
  chat_template      the tokenizer has one (prompt_format=chat needs it)
  bos                BOS not doubled (template + tokenizer), not missing when the tokenizer expects it
  generation_prompt  add_generation_prompt=True ends the prompt with the assistant header that the
                     template writes before assistant messages
  eos_stop           the template's end-of-turn token is among the ids rlcore stops generation on
                     (config eos + tokenizer eos, as rlcore/trainer.py); generation_config agrees
  special_in_text    special-token strings inside user text stay text, not control tokens
  tool_calls         assistant `tool_calls` appear in the rendered conversation
  train_inference    for sample conversations (single-turn, multi-turn with <think>, tool use,
                     non-ASCII), rlcore's prompt ids + completion ids equal the ids of the whole
                     conversation rendered by the template; else the first differing token

What it does NOT check: the model's weights or outputs, a data set's own contents, or templates
rendered with extra arguments (tools=, documents=) that rlcore does not pass.

Exit status: 0 when no check FAILs (WARNs allowed), 1 on any FAIL, 2 when the model is not found.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rlcore.data.chat import completion_ids, render_prompt

MARK = "ZQXJ marker 42"  # assistant text that no template writes on its own
TOOL_NAME = "get_weather_7b"
USER = {"role": "user", "content": "What is 12+30?"}

Messages = list[dict[str, Any]]

# Conversations for train_inference: each assistant turn k is checked as prompt msgs[:k] + its text.
SAMPLES: dict[str, Messages] = {
    "single-turn": [USER, {"role": "assistant", "content": "12+30=42. \\boxed{42}"}],
    "multi-turn": [
        {"role": "system", "content": "Answer briefly."},
        USER,
        {"role": "assistant", "content": "<think>12+30 is 42.</think> The answer is 42."},
        {"role": "user", "content": "And times 2?"},
        {"role": "assistant", "content": "<think>42*2=84</think> 84."},
    ],
    "tool-use": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "type": "function",
                    "function": {"name": TOOL_NAME, "arguments": {"city": "Paris"}},
                }
            ],
        },
        {"role": "tool", "name": TOOL_NAME, "content": '{"temp_c": 18}'},
        {"role": "assistant", "content": "It is 18 C in Paris."},
    ],
    "non-ascii": [
        {"role": "user", "content": "Wie viel ist 2+2? 二加二是多少?"},
        {"role": "assistant", "content": "2+2=4. 答案是 4, café."},
    ],
}


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "PASS" | "WARN" | "FAIL"
    detail: str  # one line: what was found and why it matters


# ---- rendering, as rlcore does it ---------------------------------------------------------------
def _text(tok: Any, msgs: Messages, gen: bool) -> str:
    return tok.apply_chat_template(msgs, add_generation_prompt=gen, tokenize=False)


def _ids(tok: Any, msgs: Messages) -> list[int]:
    """Token ids of a whole conversation (no generation prompt), as apply_chat_template makes them."""
    ids = tok.apply_chat_template(msgs, tokenize=True, return_dict=False)
    return list(ids["input_ids"] if isinstance(ids, dict) else ids)


def _assistant_header(tok: Any) -> tuple[str, str, str]:
    """(prompt without / with the generation prompt, the text the template writes between the
    user turn and an assistant message's content)."""
    plain, gen = _text(tok, [USER], False), _text(tok, [USER], True)
    full = _text(tok, [USER, {"role": "assistant", "content": MARK}], False)
    at = full.find(MARK)
    if at < 0:
        raise ValueError("the template drops the content of assistant messages")
    return plain, gen, full[len(plain) : at] if full.startswith(plain) else ""


def _end_of_turn(tok: Any) -> tuple[int, str] | None:
    """The first token the template writes after an assistant message's content."""
    full = _text(tok, [USER, {"role": "assistant", "content": MARK}], False)
    after = full[full.find(MARK) + len(MARK) :]
    ids = tok(after, add_special_tokens=False)["input_ids"]
    return (ids[0], tok.convert_ids_to_tokens(ids[0])) if ids else None


def stop_token_ids(tok: Any, model_path: str) -> list[int]:
    """The ids rlcore's trainer stops generation on: config eos, then the tokenizer's eos.
    Mirrors rlcore.data.chat.stop_token_ids (a test keeps them equal) without importing the
    trainer, which pulls in Ray and DeepSpeed."""
    from transformers import AutoConfig

    eos = AutoConfig.from_pretrained(model_path).eos_token_id
    ids = list(eos) if isinstance(eos, list) else ([eos] if eos is not None else [])
    if tok.eos_token_id is not None and tok.eos_token_id not in ids:
        ids.append(tok.eos_token_id)
    return ids


def _leading(ids: list[int], token: int) -> int:
    n = 0
    while n < len(ids) and ids[n] == token:
        n += 1
    return n


# ---- the checks ---------------------------------------------------------------------------------
def check_bos(tok: Any) -> Check:
    bos = tok.bos_token_id
    if bos is None:
        return Check("bos", "PASS", "the tokenizer defines no BOS token")
    prompt = render_prompt(tok, [USER], "chat", "")
    n = _leading(prompt, bos)
    if n >= 2:
        return Check(
            "bos",
            "FAIL",
            f"rlcore's prompt ids start with {n} x BOS {tok.bos_token!r}: the model "
            "never saw a doubled BOS in training",
        )
    adds_bos = tok("x")["input_ids"][:1] == [bos]
    if adds_bos and n == 0:
        return Check(
            "bos",
            "WARN",
            f"the tokenizer adds BOS {tok.bos_token!r} to plain text but the "
            "template does not write it: rlcore's chat prompts start without BOS",
        )
    text_n = _leading(tok(_text(tok, [USER], True))["input_ids"], bos)
    if text_n >= 2:
        return Check(
            "bos",
            "WARN",
            f"the template writes BOS and the tokenizer adds it again: "
            f"tokenizer(rendered text) starts with {text_n} x BOS (rlcore's own ids have {n})",
        )
    return Check("bos", "PASS", f"prompt ids start with {n} x BOS {tok.bos_token!r}, not doubled")


def check_generation_prompt(tok: Any) -> Check:
    plain, gen, header = _assistant_header(tok)
    if gen == plain:
        return Check(
            "generation_prompt",
            "FAIL",
            "add_generation_prompt=True adds nothing: the prompt "
            "ends inside the user turn and the model must write the assistant header itself",
        )
    if not header:
        return Check(
            "generation_prompt",
            "WARN",
            "cannot locate the assistant header: rendering "
            "[user, assistant] does not extend the rendering of [user]",
        )
    added = gen[len(plain) :] if gen.startswith(plain) else gen
    if gen.endswith(header):
        return Check("generation_prompt", "PASS", f"the prompt ends with the header {header!r}")
    if header.startswith(added):
        return Check(
            "generation_prompt",
            "FAIL",
            f"the generation prompt {added!r} stops short of the "
            f"assistant header {header!r}: the model must generate {header[len(added) :]!r} first",
        )
    if added.startswith(header):
        return Check(
            "generation_prompt",
            "WARN",
            f"the generation prompt adds {added[len(header) :]!r} "
            f"after the assistant header {header!r} (absent from rendered assistant turns)",
        )
    return Check(
        "generation_prompt",
        "FAIL",
        f"the generation prompt {added!r} differs from the header "
        f"{header!r} that the template writes before assistant messages",
    )


def check_eos(tok: Any, model_path: str) -> Check:
    end = _end_of_turn(tok)
    if end is None:
        return Check(
            "eos_stop",
            "FAIL",
            "the template writes nothing after an assistant message: "
            "no end-of-turn token for the model to learn or the engine to stop on",
        )
    end_id, end_tok = end
    stops = stop_token_ids(tok, model_path)
    names = [tok.convert_ids_to_tokens(i) for i in stops]
    if end_id not in stops:
        return Check(
            "eos_stop",
            "FAIL",
            f"turns end with {end_tok!r} (id {end_id}) but rlcore stops on "
            f"{names} {stops}: every rollout runs to max_tokens",
        )
    if tok.eos_token_id != end_id:
        return Check(
            "eos_stop",
            "WARN",
            f"turns end with {end_tok!r} but SFT targets end with the "
            f"tokenizer's eos {tok.eos_token!r} (rlcore/data/chat.py completion_ids)",
        )
    gen_eos = _generation_config_eos(model_path)
    if gen_eos is not None and end_id not in gen_eos:
        return Check(
            "eos_stop",
            "WARN",
            f"rlcore stops on {end_tok!r}, but generation_config.json's eos "
            f"{gen_eos} lacks it: transformers generate and vLLM's server will not stop there",
        )
    return Check(
        "eos_stop", "PASS", f"turns end with {end_tok!r} (id {end_id}); rlcore stops on {stops}"
    )


def _generation_config_eos(model_path: str) -> list[int] | None:
    if not (Path(model_path) / "generation_config.json").is_file():
        return None
    from transformers import GenerationConfig

    eos = GenerationConfig.from_pretrained(model_path).eos_token_id
    return list(eos) if isinstance(eos, list) else ([] if eos is None else [eos])


def check_special_in_text(tok: Any) -> Check:
    """rlcore's prompt ids for "say <special> now" hold no control id the clean prompt lacks; the
    detail says how many of them tokenizing the rendered text whole would have parsed."""
    specials = {t.content: i for i, t in tok.added_tokens_decoder.items() if t.special}
    clean = render_prompt(tok, [{"role": "user", "content": "say  now"}], "chat", "")
    leaked, parsed = [], []
    for text, token_id in specials.items():
        msgs = [{"role": "user", "content": f"say {text} now"}]
        try:
            inject = render_prompt(tok, msgs, "chat", "")
        except ValueError as e:  # the template alters message text: rlcore cannot keep it text
            return Check("special_in_text", "FAIL", f"{text!r} in user text: {e}")
        whole = tok(_text(tok, msgs, True), add_special_tokens=False)["input_ids"]
        if inject.count(token_id) > clean.count(token_id):
            leaked.append(text)
        if whole.count(token_id) > clean.count(token_id):
            parsed.append(text)
    shown = lambda found: ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")  # noqa: E731
    if leaked:
        return Check(
            "special_in_text",
            "WARN",
            f"{len(leaked)}/{len(specials)} special-token strings in user text become control "
            f"tokens ({shown(leaked)}): text holding them can end a turn or fake a role",
        )
    detail = "special-token strings in user text stay plain text"
    if parsed:
        detail += (
            f" (tokenizing the rendered text whole would parse {len(parsed)}/{len(specials)}: "
            f"{shown(parsed)}; rlcore tokenizes message text as text, rlcore/data/chat.py)"
        )
    return Check("special_in_text", "PASS", detail)


def check_tool_calls(tok: Any) -> Check:
    text = _text(tok, SAMPLES["tool-use"], False)
    if TOOL_NAME not in text:
        return Check(
            "tool_calls",
            "WARN",
            "the template ignores assistant `tool_calls`: tool-use "
            "conversations render the calling turn empty (write calls into the content instead)",
        )
    return Check("tool_calls", "PASS", "assistant tool_calls are rendered")


def check_train_inference(tok: Any) -> Check:
    found = []
    for name, msgs in SAMPLES.items():
        diff = _first_difference(tok, msgs)
        if diff:
            found.append(f"{name}: {diff}")
    if found:
        return Check("train_inference", "FAIL", "; ".join(found))
    turns = sum(m["role"] == "assistant" for msgs in SAMPLES.values() for m in msgs)
    return Check(
        "train_inference",
        "PASS",
        f"prompt + completion ids equal the template's ids "
        f"({len(SAMPLES)} conversations, {turns} assistant turns)",
    )


def _first_difference(tok: Any, msgs: Messages) -> str | None:
    """Compares, for each assistant turn, rlcore's prompt + completion ids with the template's ids
    of the whole conversation; describes the first difference."""
    full = _ids(tok, msgs)
    for k, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        seq = render_prompt(tok, msgs[:k], "chat", "") + completion_ids(
            tok, _assistant_text(tok, msgs, k), tok.eos_token
        )
        pos = next((i for i, (a, b) in enumerate(zip(seq, full, strict=False)) if a != b), None)
        if pos is None and len(seq) > len(full):
            pos = len(full)
        if pos is not None:
            ctx = tok.decode(seq[max(0, pos - 8) : pos])
            return (
                f"turn {k}, token {pos} after {ctx!r}: rlcore has {tok.decode(seq[pos : pos + 4])!r}, "
                f"the template {tok.decode(full[pos : pos + 4])!r}"
            )
    return None


def _assistant_text(tok: Any, msgs: Messages, k: int) -> str:
    """What the model generates for turn k: its content, or for a tool call the text the template
    writes for it (between the generation prompt and the end of turn)."""
    if not msgs[k].get("tool_calls"):
        return str(msgs[k]["content"])
    prompt, full = _text(tok, msgs[:k], True), _text(tok, msgs[: k + 1], False)
    end = _end_of_turn(tok)
    body = full[len(prompt) :] if full.startswith(prompt) else str(msgs[k]["content"])
    if end is not None and end[1] in body:
        body = body[: body.index(end[1])]
    return body


CHECKS: list[tuple[str, Callable[[Any, str], Check]]] = [
    ("bos", lambda tok, _: check_bos(tok)),
    ("generation_prompt", lambda tok, _: check_generation_prompt(tok)),
    ("eos_stop", check_eos),
    ("special_in_text", lambda tok, _: check_special_in_text(tok)),
    ("tool_calls", lambda tok, _: check_tool_calls(tok)),
    ("train_inference", lambda tok, _: check_train_inference(tok)),
]


def run_checks(model_path: str, tok: Any = None) -> list[Check]:
    """All checks on the model folder `model_path` (its tokenizer unless `tok` is given)."""
    if tok is None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_path)
    if not tok.chat_template:
        return [Check("chat_template", "FAIL", "no chat template: use data.prompt_format=raw")]
    results = [Check("chat_template", "PASS", "the tokenizer has a chat template")]
    for name, check in CHECKS:
        try:
            results.append(check(tok, model_path))
        except Exception as e:  # a template that cannot render is itself a finding
            results.append(Check(name, "FAIL", f"rendering failed: {type(e).__name__}: {e}"))
    return results


def format_table(model: str, results: list[Check]) -> str:
    width = max(len(r.name) for r in results)
    lines = [f"rlcore doctor {model}", ""]
    lines += [f"{r.status:<4}  {r.name:<{width}}  {r.detail}" for r in results]
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "WARN", "FAIL")}
    lines += ["", ", ".join(f"{n} {s}" for s, n in counts.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rlcore doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a Hugging Face folder, tiny-base or smollm2-135m-instruct")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    path = args.model
    if not Path(path).is_dir():
        from rlcore.rundir import resolve_model_path  # the embedded names

        try:
            path = resolve_model_path(path)
        except (FileNotFoundError, ModuleNotFoundError) as e:
            print(f"rlcore doctor: error: {e}", file=sys.stderr)
            return 2
    results = run_checks(path)
    if args.json:
        print(json.dumps({"model": path, "checks": [asdict(r) for r in results]}, indent=1))
    else:
        print(format_table(args.model, results))
    return 1 if any(r.status == "FAIL" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
