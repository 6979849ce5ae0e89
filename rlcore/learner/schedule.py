"""Learning-rate schedule: linear warmup from 0, then constant, cosine or linear decay.

    lr_at(step, base_lr=1e-4, warmup=10, total=100, schedule="cosine", min_ratio=0.1)

`step` counts optimizer steps from 0. The learner sets the rate itself before every step (rather than
a DeepSpeed scheduler) so that the SFT stage can run at its own rates in one optimizer.
"""

from __future__ import annotations

import math


def lr_at(
    step: int, base_lr: float, warmup: int, total: int, schedule: str, min_ratio: float = 0.0
) -> float:
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return base_lr
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "linear":
        factor = 1.0 - progress
    else:
        raise ValueError(f"unknown lr schedule {schedule!r} (constant, cosine, linear)")
    return base_lr * (min_ratio + (1.0 - min_ratio) * factor)
