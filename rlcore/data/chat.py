"""One function renders prompts to token ids, for rollout and learner alike.

The learner trains on exactly the ids the engine produced: prompts are rendered once here and the
completion ids come back from the engine; nothing is decoded and re-tokenized in between.
"""

from __future__ import annotations

from typing import Any


def as_messages(prompt: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def render_prompt(
    tokenizer: Any, prompt: str | list[dict[str, Any]], fmt: str, raw_template: str
) -> list[int]:
    """Token ids of a prompt. fmt "chat": the tokenizer's chat template with the generation prompt;
    "raw": `raw_template` with the (string) prompt, for base models that know no chat format."""
    if fmt == "chat":
        ids = tokenizer.apply_chat_template(
            as_messages(prompt), add_generation_prompt=True, tokenize=True, return_dict=False
        )
        if isinstance(ids, dict):  # transformers versions differ in what tokenize=True returns
            ids = ids["input_ids"]
        return list(ids)
    if not isinstance(prompt, str):
        raise ValueError("data.prompt_format=raw needs string prompts, not chat messages")
    return list(
        tokenizer(raw_template.format(prompt=prompt), add_special_tokens=False)["input_ids"]
    )


def completion_ids(tokenizer: Any, text: str, end_token: str) -> list[int]:
    """Ids of an SFT target completion, ending with the token the engine stops on."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return list(ids) + [tokenizer.convert_tokens_to_ids(end_token)]
