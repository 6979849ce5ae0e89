"""`rlcore data decontam TRAIN... --against SUITE [--n 13] [--out DIR]`: training rows that overlap
an evaluation suite's items (n-gram overlap on normalised text; rlcore/eval/decontam.py).

TRAIN: .jsonl or .parquet files of rows (prompt / messages / completion / text fields are checked),
or builtin:chain_sum (the embedded task's train split). SUITE: a suite name (configs/eval_NAME.yaml)
or YAML path; every item of its benchmarks counts, not only the slice a sweep evaluates.

Writes, per TRAIN file, into --out (default: beside the file; "." for builtins):
    <stem>.decontam.json   the report: n, suite, rows, contaminated rows with the items they match
    <stem>.clean.<ext>     the rows that match nothing, in the input's format
Exit status: 0 no contamination, 1 contaminated rows found (clean files written), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def read_rows(source: str) -> list[dict[str, Any]]:
    """Rows without schema checks: any JSON objects (JSONL) or Parquet records."""
    if source.startswith("builtin:"):
        from rlcore.data.dataset import load_rows

        return load_rows(source, key="TRAIN", size=4000, seed=0, split="train")
    path = Path(source)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: malformed JSON: {e.msg}") from None
    return rows


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
        return
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def decontam(args: argparse.Namespace) -> int:
    from rlcore.eval.decontam import find_contaminated, suite_items
    from rlcore.eval.suite import SuiteError, load_suite

    try:
        items = suite_items(load_suite(args.against))
    except SuiteError as e:
        print(f"rlcore data decontam: {e}", file=sys.stderr)
        return 2
    found_any = False
    for source in args.train:
        if not source.startswith("builtin:") and not Path(source).is_file():
            print(f"rlcore data decontam: {source}: no such file", file=sys.stderr)
            return 2
        try:
            rows = read_rows(source)
        except ValueError as e:
            print(f"rlcore data decontam: {e}", file=sys.stderr)
            return 2
        hits = find_contaminated(rows, items, args.n)
        bad = {h["row"] for h in hits}
        src = Path(source.replace(":", "_"))
        out = Path(args.out) if args.out else (Path(".") if ":" in source else src.parent)
        out.mkdir(parents=True, exist_ok=True)
        ext = ".parquet" if src.suffix == ".parquet" else ".jsonl"
        clean_path = out / f"{src.stem}.clean{ext}"
        write_rows([r for i, r in enumerate(rows) if i not in bad], clean_path)
        report = {
            "train": source,
            "against": args.against,
            "n": args.n,
            "suite_items": len(items),
            "rows": len(rows),
            "contaminated": len(hits),
            "clean_file": str(clean_path),
            "hits": hits,
        }
        report_path = out / f"{src.stem}.decontam.json"
        report_path.write_text(json.dumps(report, indent=1, ensure_ascii=False))
        by_bench: dict[str, int] = {}
        for h in hits:
            for b in {m["benchmark"] for m in h["matches"]}:
                by_bench[b] = by_bench.get(b, 0) + 1
        detail = ", ".join(f"{b}: {c}" for b, c in sorted(by_bench.items())) or "none"
        print(
            f"{source}: {len(hits)} of {len(rows)} rows overlap {args.against} "
            f"({len(items)} items, {args.n}-grams); by benchmark: {detail}\n"
            f"  report {report_path}\n  clean  {clean_path} ({len(rows) - len(bad)} rows)"
        )
        found_any |= bool(hits)
    return 1 if found_any else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rlcore data", description="data tools")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("decontam", help="training rows that overlap an eval suite")
    p.add_argument("train", nargs="+", help=".jsonl / .parquet files, or builtin:chain_sum")
    p.add_argument("--against", required=True, help="eval suite name or YAML path")
    p.add_argument("--n", type=int, default=13, help="n-gram length in words (default 13)")
    p.add_argument("--out", help="output folder (default: beside each input)")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n must be >= 1")
    return decontam(args)


if __name__ == "__main__":
    raise SystemExit(main())
