"""Times a weight sync of N MiB through BroadcastSender (gloo on CPU) to receivers in other processes.

    python benchmarks/sync.py --mib 16 64 256 --bucket-mib 64 --receivers 1 --json runs/sync.json

The payload is fp32 tensors of --tensor-mib each (a stand-in for a model's parameters). Each size is
synced --repeats times after one warm-up; the table shows the median. Receivers run the same
`receive_buckets` path as the rollout engines (without loading into a model).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import socket
import statistics
import time

import torch

from rlcore.sync import init_stateless_group, make_sender, param_meta, receive_buckets


def _payload(mib: float, tensor_mib: float) -> list[tuple[str, torch.Tensor]]:
    numel_total, per = int(mib * 2**20 / 4), max(1, int(tensor_mib * 2**20 / 4))
    sizes = [per] * (numel_total // per) + ([numel_total % per] if numel_total % per else [])
    return [(f"layers.{i}.weight", torch.randn(n)) for i, n in enumerate(sizes)]


def _receiver(port, rank, world_size, meta, bucket_bytes, rounds, queue) -> None:
    group = init_stateless_group("127.0.0.1", port, rank, world_size, "gloo")
    for _ in range(rounds):
        start = time.perf_counter()
        for _name, _t in receive_buckets(group, meta, bucket_bytes, "cpu"):
            pass
        queue.put(time.perf_counter() - start)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_one(
    mib: float, bucket_mib: float, tensor_mib: float, receivers: int, repeats: int
) -> dict:
    """Syncs `mib` MiB (1 warm-up + `repeats` timed rounds); returns one result row."""
    tensors = _payload(mib, tensor_mib)
    meta, bucket_bytes, world_size = param_meta(tensors), int(bucket_mib * 2**20), receivers + 1
    ctx = mp.get_context("spawn")
    queue, port = ctx.Queue(), _free_port()
    args = (port, None, world_size, meta, bucket_bytes, repeats + 1, queue)
    procs = [
        ctx.Process(target=_receiver, args=args[:1] + (r,) + args[2:]) for r in range(1, world_size)
    ]
    for p in procs:
        p.start()
    sender = make_sender("broadcast", device="cpu")
    sender.init_group("127.0.0.1", port, world_size)
    send_s, recv_s, buckets = [], [], 0
    for i in range(repeats + 1):
        m = sender.send(iter(tensors), bucket_bytes)
        recv = max(queue.get(timeout=600) for _ in procs)
        if i:  # round 0 is warm-up
            send_s.append(m["seconds"])
            recv_s.append(recv)
        buckets = int(m["buckets"])
    for p in procs:
        p.join(timeout=60)
    send = statistics.median(send_s)
    return {
        "mib": mib,
        "bucket_mib": bucket_mib,
        "receivers": receivers,
        "buckets": buckets,
        "send_s": send,
        "recv_s": statistics.median(recv_s),
        "gib_per_s": mib / 1024 / send,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, nargs="+", default=[16, 64, 128])
    parser.add_argument("--bucket-mib", type=float, default=64)
    parser.add_argument("--tensor-mib", type=float, default=4)
    parser.add_argument("--receivers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the rows to this path")
    args = parser.parse_args()
    rows = [
        bench_one(m, args.bucket_mib, args.tensor_mib, args.receivers, args.repeats)
        for m in args.mib
    ]
    header = f"{'MiB':>8} {'bucket':>7} {'recv':>5} {'buckets':>8} {'send s':>8} {'recv s':>8} {'GiB/s':>7}"
    print(header)
    for r in rows:
        print(
            f"{r['mib']:>8g} {r['bucket_mib']:>7g} {r['receivers']:>5d} {r['buckets']:>8d} "
            f"{r['send_s']:>8.3f} {r['recv_s']:>8.3f} {r['gib_per_s']:>7.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
