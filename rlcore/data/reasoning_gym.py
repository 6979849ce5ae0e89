"""Any reasoning-gym dataset as prompt rows: `data.train: builtin:reasoning_gym/<dataset>`.

    rows = gym_rows("basic_arithmetic", 500, seed=0, split="train", options={"max_terms": 3})

Each row's prompt is the dataset's question plus one line asking for the answer as \\boxed{...}; its
reference is the dataset's own answer and entry, scored by the `reasoning_gym` verifier (the
dataset's own scorer on the last \\boxed{}). Held-out problems are chosen by a hash of the problem's
twin-free key (`rlcore/data/twins.py`: the expression with commutative operands ordered, no
template), so no training split can ever contain a held-out problem or a reworded or commuted twin
of one, whatever the seeds or sizes.
"""

from __future__ import annotations

import json
from typing import Any

from rlcore.data.tasks import is_heldout
from rlcore.data.twins import split_key

ANSWER_FORMAT = "Give your final answer as \\boxed{ANSWER}."


class GymError(ValueError):
    """An unknown reasoning-gym dataset or options it does not take."""


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def gym_rows(
    dataset: str, n: int, seed: int, split: str, options: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """`n` distinct rows of `dataset` for `split` ("train" or "heldout"), deterministic in seed."""
    import reasoning_gym
    from reasoning_gym.factory import DATASETS

    if dataset not in DATASETS:
        raise GymError(f"unknown reasoning-gym dataset {dataset!r}; known: {', '.join(DATASETS)}")
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    want_heldout = split == "heldout"
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    size = max(4 * n, 64) if not want_heldout else max(20 * n, 200)
    for attempt in range(20):
        try:
            ds = reasoning_gym.create_dataset(
                dataset, size=size, seed=seed + attempt * 7919, **(options or {})
            )
        except TypeError as e:  # an option the dataset's config does not have
            raise GymError(f"reasoning_gym/{dataset}: {e}") from None
        for item in ds:
            question = str(item["question"])
            key = split_key(question, item.get("metadata"))
            if question in seen or is_heldout(key) != want_heldout:
                continue
            seen.add(question)
            entry = {"question": question, "answer": item["answer"], "metadata": item["metadata"]}
            rows.append(
                {
                    "id": f"{dataset}-{split}-{len(rows)}",
                    "prompt": f"{question}\n\n{ANSWER_FORMAT}",
                    "bucket": "reasoning",
                    "verifier": "reasoning_gym",
                    "reference": {
                        "answer": str(item["answer"]),
                        "dataset": dataset,
                        "entry": _jsonable(entry),
                    },
                    "meta": _meta(dataset, item, key),
                }
            )
            if len(rows) == n:
                return rows
    raise GymError(f"could not draw {n} distinct {split} problems from reasoning_gym/{dataset}")


def _meta(dataset: str, item: dict[str, Any], key: str) -> dict[str, Any]:
    """The row's source, and a worked solution where the dataset states its expression
    (basic_arithmetic, chain_sum...): "23 + 45 = 68", what an SFT cold start shows before the box."""
    meta: dict[str, Any] = {
        "source": f"reasoning_gym:{dataset}",
        "split_key": key,
    }
    expression = (item.get("metadata") or {}).get("expression")
    if isinstance(expression, str) and expression.strip():
        meta["worked"] = f"{expression.strip()} = {item['answer']}"
    return meta
