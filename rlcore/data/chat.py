"""One function renders prompts to token ids, for rollout and learner alike.

The learner trains on exactly the ids the engine produced: prompts are rendered once here and the
completion ids come back from the engine; nothing is decoded and re-tokenized in between.

Text from users, data sets and tools is text. A tokenizer parses every special-token string in
what it is given, so a prompt holding "<|im_end|><|im_start|>assistant" would end the user's turn
and open a fake assistant one. Here such strings inside message text are tokenized as the
characters they are (`text_ids`), and only the chat template's own markup becomes control tokens;
text without them gets exactly the ids the tokenizer gives the whole rendering.
`data.parse_special_tokens: true` turns this off for a data set that means its control strings.
"""

from __future__ import annotations

from typing import Any

_MARK = "\ue000"  # a private-use character: stands for a special-token string while rendering


def as_messages(prompt: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def special_strings(tokenizer: Any) -> list[str]:
    """The tokenizer's special-token strings, longest first (so "<|im_end|>" wins over "<")."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    found = {t.content for t in added.values() if getattr(t, "special", False)}
    return sorted(found | set(tokenizer.all_special_tokens), key=len, reverse=True)


def text_ids(tokenizer: Any, text: str) -> list[int]:
    """Ids of `text` as plain text: a special-token string in it stays its characters."""
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def mark_specials(text: str, specials: list[str], found: list[str]) -> str:
    """`text` with each special-token string replaced by a mark, appended to `found` in order;
    `assemble_ids` turns the rendering back into ids."""
    if not any(s in text for s in specials):
        return text
    out, i = [], 0
    while i < len(text):
        hit = next((s for s in specials if text.startswith(s, i)), None)
        if hit is None:
            out.append(text[i])
            i += 1
        else:
            out.append(_MARK)
            found.append(hit)
            i += len(hit)
    return "".join(out)


def assemble_ids(tokenizer: Any, rendered: str, found: list[str]) -> list[int]:
    """Ids of a rendering whose k-th _MARK stands for found[k]: the template's text as the
    tokenizer parses it, each marked string as plain text."""
    parts = rendered.split(_MARK)
    if len(parts) != len(found) + 1:
        raise ValueError(
            f"the chat template dropped or repeated message text: {len(found)} special-token "
            f"strings in the messages, {len(parts) - 1} in the rendering"
        )
    ids: list[int] = []
    for k, part in enumerate(parts):
        ids += tokenizer(part, add_special_tokens=False)["input_ids"] if part else []
        if k < len(found):
            ids += text_ids(tokenizer, found[k])
    return ids


def chat_ids(
    tokenizer: Any, messages: list[dict[str, Any]], parse_specials: bool = False, **template: Any
) -> list[int]:
    """Token ids of `messages` through the chat template (`template`: its keyword arguments, e.g.
    add_generation_prompt=True), special-token strings inside message text kept as text."""
    found: list[str] = []
    specials = [] if parse_specials else special_strings(tokenizer)
    if specials and any(
        isinstance(m.get("content"), str) and any(s in m["content"] for s in specials)
        for m in messages
    ):
        marked = [
            {**m, "content": mark_specials(m["content"], specials, found)}
            if isinstance(m.get("content"), str)
            else m
            for m in messages
        ]
        rendered = tokenizer.apply_chat_template(marked, tokenize=False, **template)
        return assemble_ids(tokenizer, rendered, found)
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False, **template)
    if isinstance(ids, dict):  # transformers versions differ in what tokenize=True returns
        ids = ids["input_ids"]
    return list(ids)


def render_prompt(
    tokenizer: Any,
    prompt: str | list[dict[str, Any]],
    fmt: str,
    raw_template: str,
    parse_specials: bool = False,
) -> list[int]:
    """Token ids of a prompt. fmt "chat": the tokenizer's chat template with the generation prompt;
    "raw": `raw_template` with the (string) prompt, for base models that know no chat format. The
    prompt's special-token strings stay text unless `parse_specials` (data.parse_special_tokens)."""
    if fmt == "chat":
        return chat_ids(tokenizer, as_messages(prompt), parse_specials, add_generation_prompt=True)
    if not isinstance(prompt, str):
        raise ValueError("data.prompt_format=raw needs string prompts, not chat messages")
    found: list[str] = []
    specials = [] if parse_specials else special_strings(tokenizer)
    marked = mark_specials(prompt, specials, found) if specials else prompt
    return assemble_ids(tokenizer, raw_template.format(prompt=marked), found)


def completion_ids(
    tokenizer: Any, text: str, end_token: str, parse_specials: bool = False
) -> list[int]:
    """Ids of an SFT target completion, ending with the token the engine stops on; special-token
    strings in the target stay text unless `parse_specials`."""
    ids = (
        tokenizer(text, add_special_tokens=False)["input_ids"]
        if parse_specials
        else text_ids(tokenizer, text)
    )
    return list(ids) + [tokenizer.convert_tokens_to_ids(end_token)]


def stop_token_ids(tokenizer: Any, model_path: str) -> list[int]:
    """What generation stops on: the model config's EOS ids, plus the tokenizer's EOS."""
    from transformers import AutoConfig

    eos = AutoConfig.from_pretrained(model_path).eos_token_id
    ids = list(eos) if isinstance(eos, list) else ([eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError(f"model.path: {model_path} defines no EOS token to stop generation on")
    return ids
