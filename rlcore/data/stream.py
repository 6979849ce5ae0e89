"""The training rows as RL draws them: one seeded shuffle, drawn `count` at a time, cycling.

    stream = RowStream(rows, seed=0, position=0)
    batch, first = stream.next(16)   # the rows, and the stream position of the first

`position` counts rows drawn so far; a checkpoint keeps it, and a resumed run starts there. Each
sample's seed derives from (seed, position, sample) (rlcore/step.py: sample_seed), so a resumed
run samples exactly what the uninterrupted one did.
"""

from __future__ import annotations

import random
from typing import Any


class RowStream:
    def __init__(self, rows: list[dict[str, Any]], seed: int, position: int = 0) -> None:
        self.rows, self.position = rows, position
        self.order = list(range(len(rows)))
        random.Random(seed).shuffle(self.order)

    def next(self, count: int) -> tuple[list[dict[str, Any]], int]:
        """The next `count` rows, and the stream position of the first."""
        first = self.position
        rows = [self.rows[self.order[(first + i) % len(self.order)]] for i in range(count)]
        self.position += count
        return rows, first
