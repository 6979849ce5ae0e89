"""Arithmetic asked in other words: does an RL gain on reasoning-gym's templates carry over?

Writes benchmarks/data/arith_phrasings.jsonl: 240 problems (+, -, x on 1-2 digit numbers) in 12
plain-language templates that no training source uses ("Take 17 away from 52.", word problems
about apples and boxes), each keeping only expressions on the HELD-OUT side of the twin-free split
(rlcore/data/twins.py), so no training row holds the same numbers in any order or wording.
Deterministic: the committed file is what this script writes.

    python benchmarks/phrasings.py                # rewrite the JSONL
    rlcore eval CHECKPOINT --suite benchmarks/suites/phrasings_smollm2.yaml
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from rlcore.data.tasks import is_heldout
from rlcore.data.twins import split_key

OUT = Path(__file__).resolve().parent / "data" / "arith_phrasings.jsonl"
ASK = "\n\nGive your final answer as a number."
TEMPLATES = {
    "+": [
        "Add {a} and {b}.",
        "What is the sum of {a} and {b}?",
        "Tom has {a} apples and buys {b} more. How many apples does he have now?",
        "A shelf holds {a} books and a second shelf holds {b}. How many books are there in all?",
    ],
    "-": [
        "Take {b} away from {a}. What is left?",
        "What is {b} less than {a}?",
        "Sara had {a} stickers and gave {b} of them away. How many stickers does she have left?",
        "A bus carries {a} people and {b} get off at the first stop. How many are still on it?",
    ],
    "*": [
        "Multiply {a} by {b}.",
        "What is the product of {a} and {b}?",
        "There are {a} boxes with {b} pencils in each box. How many pencils are there?",
        "A garden has {a} rows of {b} tulips each. How many tulips grow in the garden?",
    ],
}


def rows(per_template: int = 20, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out: list[dict] = []
    for op, templates in TEMPLATES.items():
        for t, template in enumerate(templates):
            kept = 0
            while kept < per_template:
                a, b = rng.randint(2, 99), rng.randint(2, 99 if op != "*" else 12)
                if op == "-" and b > a:
                    a, b = b, a
                expr = f"{a} {op} {b}"
                if not is_heldout(split_key(expr, {"expression": expr})):
                    continue  # its twin could be a training row: ask only held-out expressions
                answer = a + b if op == "+" else a - b if op == "-" else a * b
                out.append(
                    {
                        "id": f"phrasing-{op}-{t}-{kept}",
                        "prompt": template.format(a=a, b=b) + ASK,
                        "bucket": "arith_phrasings",
                        "reference": {"answer": str(answer)},
                        "meta": {"expression": expr, "template": t},
                    }
                )
                kept += 1
    return out


if __name__ == "__main__":
    data = rows()
    OUT.write_text("".join(json.dumps(r) + "\n" for r in data))
    print(f"{len(data)} problems -> {OUT}")
