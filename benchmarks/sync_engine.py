"""Where a weight sync's time goes on the engine side: a learner process streams a model's weights
(the trainer's sender, `--sync-type broadcast|ipc`, with digests) into a vLLM engine in this
process, --repeats times; the last receive runs under cProfile.

    python benchmarks/sync_engine.py --model smollm2-135m-instruct --repeats 3 \
        --json benchmarks/results/sync_engine.json

Prints each receive's seconds (`receive_weights`: wire, vLLM's in-place reload with its repack,
the tied-head re-dispatch, the digests), the sender's seconds, and the profile's heaviest functions
by their own time and by cumulative time. Run it alone: on 2 cores a second job doubles it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import multiprocessing as mp
import pstats
import time
from pathlib import Path

from rlcore.ports import free_port


def sender_main(
    path: str, port: int, bucket_bytes: int, repeats: int, queue, go, threads: int, kind: str
) -> None:
    import torch
    from safetensors.torch import load_file

    if threads:
        torch.set_num_threads(threads)

    from rlcore.sync import make_sender, param_meta

    named = list(load_file(f"{path}/model.safetensors").items())
    queue.put(param_meta(named))
    sender = make_sender(kind, device="cpu")
    sender.init_group("127.0.0.1", port, 2)
    for _ in range(repeats):
        go.get()
        t0 = time.perf_counter()
        out = sender.send(iter(named), bucket_bytes, digest=True)
        queue.put({"send_s": time.perf_counter() - t0, "bytes": out.get("bytes", 0.0)})


def profile_rows(prof: cProfile.Profile, key: str, limit: int) -> list[dict[str, object]]:
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (file, line, fn), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{Path(file).name}:{line}({fn})",
                "calls": calls,
                "own_s": tottime,
                "cumulative_s": cumtime,
            }
        )
    return sorted(rows, key=lambda r: -float(r[key]))[:limit]  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bucket-mib", type=int, default=64)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--sender-threads", type=int, default=0, help="torch threads of the sender")
    ap.add_argument("--sync-type", default="broadcast", choices=["broadcast", "ipc"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from rlcore.rollout import EngineSpec, make_engine
    from rlcore.rundir import resolve_model_path

    path = str(resolve_model_path(args.model))
    engine = make_engine(EngineSpec(path, "vllm", max_model_len=256, kv_cache_bytes=64 << 20))
    ctx = mp.get_context("spawn")
    queue, go, port = ctx.Queue(), ctx.Queue(), free_port()
    bucket = args.bucket_mib << 20
    proc = ctx.Process(
        target=sender_main,
        args=(path, port, bucket, args.repeats, queue, go, args.sender_threads, args.sync_type),
    )
    proc.start()
    meta = queue.get(timeout=300)
    engine.init_weight_group("127.0.0.1", port, 1, 2, args.sync_type)
    rows, prof = [], cProfile.Profile()
    for i in range(args.repeats):
        last = i == args.repeats - 1
        go.put(True)
        if last:
            prof.enable()
        t0 = time.perf_counter()
        got = engine.receive_weights(meta, bucket)
        wall = time.perf_counter() - t0
        if last:
            prof.disable()
        sent = queue.get(timeout=300)
        rows.append({"receive_s": wall, "load_s": got["load_seconds"], **sent})
        print(
            f"sync {i + 1}: receive {wall:.2f} s (engine load {got['load_seconds']:.2f} s), "
            f"send {sent['send_s']:.2f} s, {got['bytes'] / 2**20:.0f} MiB in "
            f"{got['buckets']:.0f} buckets",
            flush=True,
        )
    proc.join(timeout=60)
    own, cumulative = (
        profile_rows(prof, "own_s", args.top),
        profile_rows(prof, "cumulative_s", args.top),
    )
    for title, table, key in (
        ("own time", own, "own_s"),
        ("cumulative", cumulative, "cumulative_s"),
    ):
        print(f"\nlast receive, heaviest by {title}:\n| function | calls | s |\n|---|---|---|")
        for r in table:
            print(f"| {r['function']} | {r['calls']} | {float(r[key]):.3f} |")  # type: ignore[arg-type]
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"model": args.model, "syncs": rows, "own": own, "cumulative": cumulative}, indent=1
            )
        )
    engine.shutdown()


if __name__ == "__main__":
    main()
