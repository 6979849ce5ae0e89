"""Prompt rows from builtin generators, JSONL or Parquet; a malformed row fails with file:line.

A row: {"id", "prompt": str | messages, "bucket", "verifier": name | [{name, weight}],
"reference": {...}, "meta": {...}} (only "prompt" is required). SFT rows also carry "completion".

A source (`data.train`, `data.heldout`, `data.sft`) is a string (a builtin, a file, or
`hf:<dataset>`: rlcore/data/hf.py), a mapping
{source, options, verifier, bucket} (options go to a builtin generator; verifier and bucket
replace the rows'), or a mixture: a list of such mappings with a `weight` each, the rows drawn in
proportion to the weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlcore.data.generated import GENERATORS, generated_rows
from rlcore.data.tasks import chain_sum_rows

BUILTINS = (
    "builtin:chain_sum",
    "builtin:reasoning_gym/<dataset>",
    *(f"builtin:{name}" for name in GENERATORS),
)
SOURCE_KEYS = ("source", "weight", "options", "verifier", "bucket")


class DataError(ValueError):
    """Bad data: names the file, the line and what is wrong."""


def _check_row(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DataError(f"{where}: a row must be a JSON object, got {type(row).__name__}")
    prompt = row.get("prompt")
    if isinstance(prompt, list):
        for m in prompt:
            if not (isinstance(m, dict) and "role" in m and "content" in m):
                raise DataError(f"{where}: 'prompt' messages need 'role' and 'content': {m!r}")
    elif not isinstance(prompt, str) or not prompt:
        raise DataError(f"{where}: 'prompt' must be a non-empty string or a list of messages")
    if "reference" in row and not isinstance(row["reference"], dict):
        raise DataError(f"{where}: 'reference' must be an object, got {row['reference']!r}")
    if "completion" in row and not isinstance(row["completion"], str):
        raise DataError(f"{where}: 'completion' must be a string")
    return row


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path}:{lineno}: malformed JSON: {e.msg} (column {e.colno})"
                ) from None
            rows.append(_check_row(row, f"{path}:{lineno}"))
    return rows


def read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None

    rows = pq.read_table(path).to_pylist()
    return [_check_row(r, f"{path}:row {i}") for i, r in enumerate(rows)]


def load_source(
    spec: Any,
    *,
    key: str,
    size: int,
    seed: int,
    split: str,
    hf_defaults: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows from a source spec (a string, a mapping or a weighted list; see the module doc);
    `key` is the config key, named in errors. A mixture draws round(size * weight / total) rows
    from each part (files give all their rows). hf_defaults: the options of an `hf:` source that
    gives none of its own (`data.split`, `data.columns`)."""
    if isinstance(spec, str):
        options = dict(hf_defaults or {}) if spec.startswith("hf:") else None
        return load_rows(spec, key=key, size=size, seed=seed, split=split, options=options)
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(SOURCE_KEYS))
        if unknown or "source" not in spec:
            raise DataError(
                f"{key}: a source mapping needs 'source' and takes only {', '.join(SOURCE_KEYS)}"
                f"{'; unknown: ' + ', '.join(unknown) if unknown else ''}"
            )
        options = dict(spec.get("options") or {})
        if str(spec["source"]).startswith("hf:"):
            options = {**(hf_defaults or {}), **options}
        rows = load_rows(
            str(spec["source"]),
            key=f"{key}.source",
            size=size,
            seed=seed,
            split=split,
            options=options,
        )
        for r in rows:
            for field in ("verifier", "bucket"):
                if spec.get(field) is not None:
                    r[field] = spec[field]
        return rows
    if isinstance(spec, Sequence) and spec:
        weights = [
            float(part.get("weight", 1.0)) if isinstance(part, Mapping) else 1.0 for part in spec
        ]
        if min(weights) <= 0:
            raise DataError(f"{key}: every mixture weight must be > 0, got {weights}")
        rows = []
        for i, (part, w) in enumerate(zip(spec, weights, strict=True)):
            n = max(1, round(size * w / sum(weights)))
            rows += load_source(
                part,
                key=f"{key}[{i}]",
                size=n,
                seed=seed + 1000 * i,
                split=split,
                hf_defaults=hf_defaults,
            )
        return rows
    raise DataError(f"{key}: expected a source string, a mapping or a list of them, got {spec!r}")


def load_rows(
    source: str,
    *,
    key: str,
    size: int,
    seed: int,
    split: str,
    options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows from `source` (the config value at `key`, named in errors)."""
    if (
        source.startswith("builtin:")
        and options
        and not source.startswith("builtin:reasoning_gym/")
    ):
        raise DataError(f"{key}: {source} takes no options (only builtin:reasoning_gym/* does)")
    if source.startswith("hf:"):
        return _hf_source(source, key, options or {})
    if source == "builtin:chain_sum":
        return chain_sum_rows(size, seed=seed, split=split)
    if source.startswith("builtin:reasoning_gym/"):
        from rlcore.data.reasoning_gym import GymError, gym_rows

        try:
            return gym_rows(source.split("/", 1)[1], size, seed, split, options)
        except GymError as e:
            raise DataError(f"{key}: {e}") from None
    if source.removeprefix("builtin:") in GENERATORS:
        return generated_rows(source.removeprefix("builtin:"), size, seed, split)
    if source.startswith("builtin:"):
        raise DataError(f"{key}: unknown builtin {source!r}; known: {', '.join(BUILTINS)}")
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{key}: data file not found: {path}")
    if path.suffix == ".jsonl":
        rows = read_jsonl(path)
    elif path.suffix == ".parquet":
        rows = read_parquet(path)
    else:
        raise DataError(f"{key}: {path} is neither .jsonl nor .parquet")
    if not rows:
        raise DataError(f"{key}: {path} holds no rows")
    for i, r in enumerate(rows):
        r.setdefault("id", f"{path.stem}-{i}")
    return rows


def _hf_source(source: str, key: str, options: dict[str, Any]) -> list[dict[str, Any]]:
    from rlcore.data.hf import HFDataError, check_columns, hf_rows

    unknown = sorted(set(options) - {"split", "columns", "name"})
    if unknown:
        raise DataError(f"{key}: an hf: source takes options split, columns, name; not {unknown}")
    try:
        columns = check_columns(options.get("columns") or {"prompt": "prompt"})
        rows = hf_rows(
            source.removeprefix("hf:"),
            str(options.get("split") or ""),
            columns,
            options.get("name"),
        )
    except HFDataError as e:
        raise DataError(f"{key}: {e}") from None
    if not rows:
        raise DataError(f"{key}: {source} holds no rows")
    for i, r in enumerate(rows):
        _check_row(r, f"{key}: {source} row {i}")
    return rows


def sft_completion(row: dict[str, Any], think: bool) -> str:
    """The worked, correctly formatted answer of a row: its "completion", or built from its
    worked solution (builtin tasks): "<think>57+87=144, 144-70=74</think>\\boxed{74}"."""
    if "completion" in row:
        return str(row["completion"])
    worked = row.get("meta", {}).get("worked")
    answer = row.get("reference", {}).get("answer")
    if worked is None or answer is None:
        raise DataError(f"SFT row {row.get('id')!r} has no 'completion' (and no worked solution)")
    body = f"\\boxed{{{answer}}}"
    return f"<think>{worked}</think>{body}" if think else f"{worked}. {body}"
