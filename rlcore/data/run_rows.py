"""The run's rows: held-out, train and SFT, loaded from the config, decontaminated (no held-out
problem or its twin in training, no overlap with an eval suite) and checked before anything
starts (tools that exist, prompts that leave room to answer)."""

from __future__ import annotations

import logging
from typing import Any

from rlcore.config import TrainConfig
from rlcore.data.dataset import load_source

log = logging.getLogger(__name__)


def load_run_rows(
    cfg: TrainConfig,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Held-out, train and SFT rows; held-out prompts never appear in training."""
    d = cfg.data
    hf = {"split": d.split, "columns": dict(d.columns)}

    def load(name: str, size: int, seed: int, split: str) -> list[dict[str, Any]]:
        spec = getattr(d, name)
        return load_source(
            spec, key=f"data.{name}", size=size, seed=seed, split=split, hf_defaults=hf
        )

    heldout = load("heldout", d.heldout_size, cfg.seed + 1, "heldout")
    banned = {str(r["prompt"]) for r in heldout} | {k for r in heldout if (k := _split_key(r))}
    train_rows = _decontaminate(load("train", d.train_size, cfg.seed, "train"), banned, "train")
    sft_rows: list[dict[str, Any]] = []
    if "sft" in cfg.stages:
        sft = load("sft", d.sft_size, cfg.seed + 2, "train")
        sft_rows = _decontaminate(sft, banned, "sft")[: d.sft_size]
    _check_tools(train_rows + heldout, d.train)
    if d.decontam_against:
        _refuse_contaminated(train_rows + sft_rows, d.decontam_against, d.decontam_n)
    from rlcore.data.dataset import DataError

    if "rl" in cfg.stages and not train_rows:
        raise DataError(
            "data.train: no training rows left (every row is a held-out problem or its twin); "
            "give data.train and data.heldout different sources or more rows"
        )
    if len(heldout) < 2:  # one problem gives no accuracy worth reporting (and no bootstrap CI)
        raise DataError(f"data.heldout: {len(heldout)} row(s); at least 2 are needed")
    return heldout, train_rows, sft_rows


def refuse_long_prompts(
    run_rows: dict[str, list[dict[str, Any]]], encode: Any, limit: int
) -> dict[str, int]:
    """A prompt that leaves no room to answer within rollout.max_model_len fails at launch, naming
    the row and its length (as verl's overlong-prompt filter would drop it), not inside the engine.
    Returns each key's longest prompt in tokens (what the planner sizes the run by)."""
    from rlcore.data.dataset import DataError

    longest: dict[str, int] = {}
    for key, rows in run_rows.items():
        longest[key] = 0
        for row in rows:
            n = len(encode(row))
            longest[key] = max(longest[key], n)
            if n >= limit:
                raise DataError(
                    f"{key}: row {row.get('id')!r} has a {n}-token prompt, no room to answer "
                    f"within rollout.max_model_len={limit}; raise it or drop the row"
                )
    return longest


def _split_key(row: dict[str, Any]) -> str | None:
    """A builtin row's twin-free key (rlcore/data/twins.py); None for rows from files."""
    meta = row.get("meta")
    key = meta.get("split_key") if isinstance(meta, dict) else None
    return str(key) if key else None


def _decontaminate(rows: list[dict[str, Any]], banned: set[str], name: str) -> list[dict[str, Any]]:
    """Drop rows whose prompt is a held-out prompt, or whose split key is a held-out problem's
    (its twin: the same expression in another order or template, from another source)."""
    kept = [r for r in rows if str(r["prompt"]) not in banned and _split_key(r) not in banned]
    if len(kept) < len(rows):
        log.info(
            "decontamination: dropped %d %s rows that are held-out problems or their twins",
            len(rows) - len(kept),
            name,
        )
    return kept


def _refuse_contaminated(rows: list[dict[str, Any]], suite: str, n: int) -> None:
    from rlcore.data.dataset import DataError
    from rlcore.eval import find_contaminated, load_suite, suite_items

    hits = find_contaminated(rows, suite_items(load_suite(suite)), n)
    if hits:
        first = hits[0]
        raise DataError(
            f"data.decontam_against={suite}: {len(hits)} training row(s) overlap its items, e.g. "
            f"row {first.get('row_id')!r} ~ {first.get('matches', ['?'])[0]}; clean the data with "
            "`rlcore data decontam` or unset data.decontam_against"
        )


def _check_tools(rows: list[dict[str, Any]], source: str) -> None:
    """A row naming a tool that does not exist fails at launch, not mid-episode."""
    from rlcore.rollout.tools import make_tools

    for row in rows:
        if "tools" in row:
            try:
                make_tools(row["tools"])
            except ValueError as e:
                raise ValueError(f"{source}: row {row.get('id')!r}: {e}") from None
