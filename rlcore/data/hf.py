"""Hugging Face datasets as rows: `hf:<name or local path>` with a split and a column mapping.

    data:
      train:   {source: "hf:openai/gsm8k", options: {name: main, split: train,
                columns: {prompt: question, answer: answer}}}
      heldout: {source: "hf:/data/gsm8k", options: {split: test}}   # a save_to_disk folder
      columns: {prompt: question, answer: answer}   # the default mapping of every hf: source

What `datasets` reads: a folder written by `save_to_disk`, a .parquet / .json / .jsonl / .csv file,
or a hub name (when online; HF_HUB_OFFLINE=1 makes that an error naming the source).

The mapping's keys are row fields: `prompt` (required), `id`, `completion`, `bucket`, `verifier`;
any other key lands in the row's `reference` (`answer` -> reference["answer"], what the math
verifier compares with). An answer column in GSM8K's form ("... #### 72") gives the text after the
last "####"; one in MATH's form (a worked solution) gives its last \\boxed{...}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROW_FIELDS = ("prompt", "id", "completion", "bucket", "verifier")
FORMATS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}


class HFDataError(ValueError):
    """A dataset that cannot be read or mapped; the caller adds the config key."""


def hf_rows(
    source: str, split: str, columns: dict[str, str], name: str | None = None
) -> list[dict[str, Any]]:
    """Rows of `source` (without the `hf:` prefix), mapped by `columns` (see the module doc)."""
    if "prompt" not in columns:
        raise HFDataError(
            f"hf:{source}: the column mapping needs 'prompt' (e.g. columns: {{prompt: question, "
            f"answer: answer}}); got {dict(columns)}"
        )
    table = _load(source, split or "train", name)
    missing = sorted({c for c in columns.values() if c not in table.column_names})
    if missing:
        raise HFDataError(
            f"hf:{source} (split {split or 'train'}): no column {', '.join(map(repr, missing))}; "
            f"it has {', '.join(table.column_names)}"
        )
    rows = []
    for i, record in enumerate(table):
        row: dict[str, Any] = {"id": f"{Path(source).stem or source}-{i}", "reference": {}}
        for field, column in columns.items():
            value = record[column]
            if field in ROW_FIELDS:
                row[field] = value if field in ("prompt", "verifier") else str(value)
            else:
                row["reference"][field] = final_answer(value) if field == "answer" else value
        rows.append(row)
    return rows


def final_answer(value: Any) -> Any:
    """GSM8K's "... #### 72" -> "72"; a MATH solution -> its last \\boxed{...}; else as is."""
    if not isinstance(value, str):
        return value
    if "####" in value:
        return value.rsplit("####", 1)[1].strip().replace(",", "")
    boxed = _last_boxed(value)
    return boxed if boxed is not None else value.strip()


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None  # unclosed


def _load(source: str, split: str, name: str | None) -> Any:
    try:
        import datasets
    except ImportError:
        raise HFDataError(
            "hf: sources need the `datasets` package (pip install datasets)"
        ) from None
    path = Path(source)
    try:
        if path.is_dir() and any(
            (path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")
        ):
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise HFDataError(
                        f"hf:{source}: no split {split!r}; it has {', '.join(loaded)}"
                    )
                return loaded[split]
            return loaded
        if path.is_file():
            fmt = FORMATS.get(path.suffix)
            if fmt is None:
                raise HFDataError(
                    f"hf:{source}: cannot read {path.suffix or 'a file without suffix'} "
                    f"(read: {', '.join(FORMATS)}, or a save_to_disk folder)"
                )
            return datasets.load_dataset(fmt, data_files=str(path), split="train")
        if path.exists() or source.startswith((".", "/")):
            raise HFDataError(f"hf:{source}: not a dataset folder or a data file")
        return datasets.load_dataset(source, name, split=split)
    except HFDataError:
        raise
    except Exception as e:  # datasets raises many kinds: offline hub, bad split, bad file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HFDataError(f"hf:{source}: {type(e).__name__}: {first}") from None


def check_columns(columns: Any) -> dict[str, str]:
    if not isinstance(columns, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in columns.items()
    ):
        raise HFDataError(f"columns must map row fields to column names, got {columns!r}")
    return dict(columns)
