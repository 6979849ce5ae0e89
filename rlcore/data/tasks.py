"""Procedurally generated verifiable tasks: the embedded default's training and held-out data.

The default task is chain sums ("57+87-70") drawn from `reasoning-gym`'s `chain_sum` generator,
rendered compactly for a character-level tiny model, with a worked left-to-right solution:

    prompt:   "57+87-70=?"
    worked:   "57+87=144, 144-70=74"
    answer:   "74"

Held-out problems are decided by a hash of the problem's twin-free key (rlcore/data/twins.py: the
expression with its terms ordered, so "57+87-70" and "87+57-70" share it), not by the generator
seed, so no training, SFT or pretraining split can ever contain a held-out problem or a commuted
twin of one (decontamination by construction: `is_heldout(key)` is checked by every split).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from rlcore.data.twins import split_key

HELDOUT_MOD = 10  # one problem in ten (by hash) is reserved for evaluation


@dataclass(frozen=True)
class ChainSumSpec:
    """Shape of the chain-sum problems (passed to reasoning-gym's ChainSumConfig)."""

    min_terms: int = 2
    max_terms: int = 3
    min_digits: int = 1
    max_digits: int = 2


def is_heldout(expr: str) -> bool:
    digest = hashlib.sha1(expr.encode()).digest()
    return digest[0] % HELDOUT_MOD == 0


def worked_solution(expr: str) -> tuple[str, int]:
    """Left-to-right partial sums: ("57+87=144, 144-70=74", 74)."""
    tokens = expr.replace("+", " + ").replace("-", " - ").split()
    acc = int(tokens[0])
    steps = []
    for op, num in zip(tokens[1::2], tokens[2::2], strict=True):
        nxt = acc + int(num) if op == "+" else acc - int(num)
        steps.append(f"{acc}{op}{num}={nxt}")
        acc = nxt
    return ", ".join(steps), acc


def chain_sum_rows(
    n: int, seed: int, split: str, spec: ChainSumSpec = ChainSumSpec()
) -> list[dict[str, Any]]:
    """`n` distinct prompt rows for `split` ("train" or "heldout"), deterministic in `seed`."""
    import reasoning_gym

    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    want_heldout = split == "heldout"
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    size = max(4 * n, 64)
    for attempt in range(50):
        ds = reasoning_gym.create_dataset(
            "chain_sum",
            size=size,
            seed=seed + attempt * 7919,
            min_terms=spec.min_terms,
            max_terms=spec.max_terms,
            min_digits=spec.min_digits,
            max_digits=spec.max_digits,
        )
        for item in ds:
            expr = item["metadata"]["expression"].replace(" ", "")
            key = split_key(expr, {"expression": expr})
            if expr in seen or is_heldout(key) != want_heldout:
                continue
            seen.add(expr)
            worked, answer = worked_solution(expr)
            assert str(answer) == str(item["answer"]), (expr, answer, item["answer"])
            rows.append(
                {
                    "id": f"chain_sum-{split}-{len(rows)}",
                    "prompt": f"{expr}=?",
                    "bucket": "math",
                    "reference": {"answer": str(answer)},
                    "meta": {
                        "worked": worked,
                        "source": "reasoning_gym:chain_sum",
                        "split_key": key,
                    },
                }
            )
            if len(rows) == n:
                return rows
    raise ValueError(f"could not draw {n} distinct {split} problems from {spec}")
