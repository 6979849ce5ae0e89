"""`rlcore verify IN.jsonl [-o OUT.jsonl] [--workers N] [--config verifiers.yaml]`: score a file.

Each input line is a JSON object with `verifier` (a name or a weighted list), `prompt`, `response`,
`reference` (a dict, default {}) and optionally `id` and `meta`. Each output line holds `id`,
`reward`, `correct`, `details`, `error`, `elapsed_s`, in input order (blank input lines are skipped).
`--config` is a YAML/JSON mapping of verifier name -> config fields (see rlcore.verifiers.build).

Exit status: 0 when every line was scored (a timeout or crash of a verifier is a scored result with
`error`); 1 when some lines were malformed (each is reported on stderr with its line number and gets
an output line with `error: "malformed: ..."`; the rest are still scored); 2 for a usage error, an
unknown verifier name or a bad config, in which case no output file is written. The output file is
written to a temporary name and renamed at the end, so it is never left half-written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from rlcore.verifiers import (
    Result,
    Sample,
    Scorer,
    UnknownVerifierError,
    build_verifier,
    json_row,
    parse_spec,
    row_item,
)
from rlcore.verifiers.pool import error_kind

CHUNK = 256  # items per Scorer call: the progress bar moves per chunk


def _parse_line(line: str) -> tuple[Any, Sample]:
    """(verifier spec, Sample) from one input line; ValueError says what is wrong."""
    return row_item(json_row(line))


def _load_config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of verifier name -> config")
    return data


def _out_line(rid: Any, r: Result) -> str:
    return json.dumps({"id": rid, **r.to_dict()}, ensure_ascii=False, default=str)


def _summary(results: list[Result], seconds: float, malformed: int, out: TextIO) -> None:
    n = len(results)
    judged = [r.correct for r in results if r.correct is not None]
    kinds = Counter(error_kind(r.error) for r in results if r.error is not None)
    mean = sum(r.reward for r in results) / n if n else 0.0
    acc = f"{sum(judged) / len(judged):.4f} ({len(judged)} judged)" if judged else "n/a"
    print(f"samples       {n}  (malformed lines: {malformed})", file=out)
    print(f"mean reward   {mean:.4f}", file=out)
    print(f"accuracy      {acc}", file=out)
    errs = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) or "none"
    print(f"errors        {errs}", file=out)
    print(
        f"throughput    {n / seconds if seconds > 0 else 0.0:.1f} samples/s ({seconds:.2f}s)",
        file=out,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rlcore verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("input", help="JSONL file of {verifier, prompt, response, reference, id}")
    ap.add_argument("-o", "--output", help="output JSONL (default: stdout)")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--config", help="YAML/JSON: verifier name -> config fields")
    args = ap.parse_args(argv)
    err = sys.stderr

    try:
        lines = Path(args.input).read_text(encoding="utf-8").splitlines()
        configs = _load_config(args.config)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        print(f"rlcore verify: {e}", file=err)
        return 2
    rows: list[
        tuple[int, Any, Any, Sample | None, str | None]
    ] = []  # lineno, id, spec, sample, bad
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            spec, sample = _parse_line(line)
            rows.append((lineno, sample.metadata.get("id"), spec, sample, None))
        except ValueError as e:
            print(f"{args.input}:{lineno}: malformed line: {e}", file=err)
            rows.append((lineno, None, None, None, f"malformed: line {lineno}: {e}"))

    specs = [(lineno, spec) for lineno, _, spec, s, _ in rows if s is not None]
    names: dict[str, int] = {}
    for lineno, spec in specs:
        for name, _ in parse_spec(spec):
            names.setdefault(name, lineno)
    for name, lineno in names.items():  # unknown names fail here, with the first line naming them
        try:
            build_verifier(name, configs)
        except UnknownVerifierError as e:
            print(f"rlcore verify: {args.input}:{lineno}: {e.args[0] if e.args else e}", file=err)
            return 2
        except (ValueError, TypeError) as e:
            print(f"rlcore verify: bad config for verifier {name!r}: {e}", file=err)
            return 2
    if args.output and not Path(args.output).resolve().parent.is_dir():
        print(f"rlcore verify: output folder of {args.output} does not exist", file=err)
        return 2
    scorer = Scorer(names, configs, workers=max(1, args.workers))

    from tqdm import tqdm

    results: list[Result] = []
    t0 = time.perf_counter()
    bar = tqdm(total=len(rows), unit="sample", file=err, disable=not err.isatty())
    try:
        for i in range(0, len(rows), CHUNK):
            chunk = rows[i : i + CHUNK]
            good = [(spec, s) for _, _, spec, s, _ in chunk if s is not None]
            scored = iter(scorer.score(good))
            for _, _, _, s, bad in chunk:
                results.append(next(scored) if s is not None else Result(reward=0.0, error=bad))
            bar.update(len(chunk))
    finally:
        bar.close()
        scorer.close()
    seconds = time.perf_counter() - t0

    text = "".join(
        _out_line(rid, r) + "\n" for (_, rid, _, _, _), r in zip(rows, results, strict=True)
    )
    if args.output:
        out = Path(args.output)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.resolve().parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    malformed = sum(1 for r in rows if r[3] is None)
    _summary(results, seconds, malformed, err)
    return 1 if malformed else 0


if __name__ == "__main__":
    raise SystemExit(main())
