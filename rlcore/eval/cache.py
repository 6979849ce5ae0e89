"""The sample and verdict cache: reruns cost only what changed.

    OUT/cache/<model key>/<benchmark>.samples.jsonl    one line per sample
    OUT/cache/<model key>/<benchmark>.verdicts.jsonl   one line per (sample, verifier) verdict

Model key: a SHA-256 of the weight files' CONTENT (*.safetensors, *.bin, *.gguf, *.pt) and
config.json, so the same weights at two paths share samples and retrained weights at the same path
do not. Hashing is memoised by (path, size, mtime) in OUT/cache/hashes.json.
Sample key: the item id, a hash of the prompt's token ids (so a changed prompt template or tokenizer
samples anew), and a hash of the sampling parameters except n; sample j = 0, 1, ... under it. A
rerun with a larger n draws only indices it lacks; a smaller n reuses the first n.
Verdict key: the sample's key and j, and a hash of the verifier spec, its options, the source of the
verifier classes it names and the item's reference: a new or edited verifier re-verifies only.

Files are append-only JSONL, flushed and fsync'd after each batch; an interrupted sweep leaves at most
one torn last line, which is skipped on read (and the next append starts on a fresh line).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


def digest(obj: Any, size: int = 16) -> str:
    """Short stable hash of JSON-able data."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def model_key(model_dir: str | Path, memo_path: Path | None = None) -> str:
    """Content hash of a model folder's weights and config (memoised by path, size and mtime)."""
    root = Path(model_dir).resolve()
    files = sorted(
        p for p in root.iterdir() if p.suffix in WEIGHT_SUFFIXES or p.name == "config.json"
    )
    if not any(p.suffix in WEIGHT_SUFFIXES for p in files):
        raise FileNotFoundError(f"{root}: no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    stamp = [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    memo: dict[str, str] = {}
    if memo_path is not None and memo_path.is_file():
        memo = json.loads(memo_path.read_text())
    key = digest(stamp, 32)
    if key in memo:
        return memo[key]
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0")
        with p.open("rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    memo[key] = h.hexdigest()[:16]
    if memo_path is not None:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(memo, indent=1))
        tmp.replace(memo_path)
    return memo[key]


def verifier_key(spec: Any, options: dict[str, Any], reference: dict[str, Any]) -> str:
    """Hash of what decides a verdict: spec, its options, the classes' source and the reference."""
    from rlcore.verifiers import get_verifier_class, parse_spec

    parts = []
    for name, weight in parse_spec(spec):
        opt = options.get(name, {})
        cls = get_verifier_class(opt.get("path", name) if isinstance(opt, dict) else name)
        parts.append([name, weight, opt, _source_hash(cls)])
    return digest([parts, reference])


_SOURCES: dict[type, str] = {}


def _source_hash(cls: type) -> str:
    if cls not in _SOURCES:
        try:
            _SOURCES[cls] = digest(Path(inspect.getsourcefile(cls) or "").read_text())
        except (OSError, TypeError):
            _SOURCES[cls] = cls.__qualname__
    return _SOURCES[cls]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete line; a torn last line (an interrupted append) is skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def append_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Appends rows and fsyncs; starts on a fresh line if the file ends mid-line."""
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in rows]
    if not lines:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as f:
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write("".join(lines).encode())
        f.flush()
        os.fsync(f.fileno())
    return len(lines)


class BenchmarkCache:
    """The cached samples and verdicts of one model on one benchmark."""

    def __init__(self, root: Path, model: str, benchmark: str) -> None:
        base = root / model
        self.samples_path = base / f"{benchmark}.samples.jsonl"
        self.verdicts_path = base / f"{benchmark}.verdicts.jsonl"
        self.samples: dict[tuple[str, int], dict[str, Any]] = {}
        for r in read_jsonl(self.samples_path):
            self.samples.setdefault((r["key"], r["j"]), r)
        self.verdicts: dict[tuple[str, int, str], dict[str, Any]] = {}
        for r in read_jsonl(self.verdicts_path):
            self.verdicts[(r["key"], r["j"], r["vkey"])] = r

    def count(self, key: str) -> int:
        """How many consecutive samples 0, 1, ... exist under a sample key."""
        j = 0
        while (key, j) in self.samples:
            j += 1
        return j

    def add_samples(self, rows: list[dict[str, Any]]) -> None:
        append_jsonl(self.samples_path, rows)
        for r in rows:
            self.samples[(r["key"], r["j"])] = r

    def add_verdicts(self, rows: list[dict[str, Any]]) -> None:
        append_jsonl(self.verdicts_path, rows)
        for r in rows:
            self.verdicts[(r["key"], r["j"], r["vkey"])] = r
