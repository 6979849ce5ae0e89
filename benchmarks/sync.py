"""Times a weight sync through BroadcastSender (gloo on CPU) to receivers in other processes, next to
a raw broadcast of the same bytes on the same group.

    python benchmarks/sync.py --mib 16 64 128 --models tiny-base smollm2-135m-instruct \
        --bucket-mib 64 --receivers 1 --json benchmarks/results/sync.json

Payloads: --mib N is fp32 tensors of --tensor-mib each (a stand-in for a model's parameters);
--models NAME streams a real model's parameters as the learner does (`named_parameters()`, tied
weights once, the model's dtype). Each payload is synced --repeats times after one warm-up, then
broadcast --repeats times as ONE preallocated flat buffer of the same byte count on the same group
(the transport's floor: no bucketing, packing, or fresh receive buffers). The table shows medians;
`ratio` is sync receive time / raw receive time. Receivers run the same `receive_buckets` path as
the rollout engines (without loading into a model).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import time

import torch

from rlcore.sync import init_stateless_group, make_sender, param_meta, plan_buckets, receive_buckets


def _payload(mib: float, tensor_mib: float) -> list[tuple[str, torch.Tensor]]:
    numel_total, per = int(mib * 2**20 / 4), max(1, int(tensor_mib * 2**20 / 4))
    sizes = [per] * (numel_total // per) + ([numel_total % per] if numel_total % per else [])
    return [(f"layers.{i}.weight", torch.randn(n)) for i, n in enumerate(sizes)]


def _model_payload(name: str) -> list[tuple[str, torch.Tensor]]:
    from transformers import AutoModelForCausalLM

    from rlcore.rundir import resolve_model_path

    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(name), dtype=torch.float32)
    return [(n, p.detach()) for n, p in model.named_parameters()]


def _receiver(port, rank, world_size, meta, bucket_bytes, rounds, queue) -> None:
    group = init_stateless_group("127.0.0.1", port, rank, world_size, "gloo")
    for _ in range(rounds):
        start = time.perf_counter()
        for _name, _t in receive_buckets(group, meta, bucket_bytes, "cpu"):
            pass
        queue.put(("sync", time.perf_counter() - start))
    flat = torch.empty(sum(b.nbytes for b in plan_buckets(meta, bucket_bytes)), dtype=torch.uint8)
    for _ in range(rounds):
        start = time.perf_counter()
        group.broadcast(flat, src=0)
        queue.put(("raw", time.perf_counter() - start))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_one(
    label: str,
    tensors: list[tuple[str, torch.Tensor]],
    bucket_mib: float,
    receivers: int,
    repeats: int,
) -> dict:
    """Syncs `tensors`, then raw-broadcasts their bytes (1 warm-up + `repeats` timed rounds each)."""
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

    def receive_time(kind: str) -> float:
        times = [queue.get(timeout=600) for _ in procs]
        assert all(k == kind for k, _ in times), times
        return max(t for _, t in times)

    send_s, recv_s, buckets, nbytes = [], [], 0, 0
    for i in range(repeats + 1):
        m = sender.send(iter(tensors), bucket_bytes)
        recv = receive_time("sync")
        if i:  # round 0 is warm-up
            send_s.append(m["seconds"])
            recv_s.append(recv)
        buckets, nbytes = int(m["buckets"]), int(m["bytes"])
    flat = torch.zeros(nbytes, dtype=torch.uint8)
    raw_send, raw_recv = [], []
    for i in range(repeats + 1):
        start = time.perf_counter()
        sender.group.broadcast(flat, src=0)  # type: ignore[attr-defined]
        sent = time.perf_counter() - start
        recv = receive_time("raw")
        if i:
            raw_send.append(sent)
            raw_recv.append(recv)
    for p in procs:
        p.join(timeout=60)
    send, recv, raw = map(statistics.median, (send_s, recv_s, raw_recv))
    return {
        "payload": label,
        "mib": nbytes / 2**20,
        "bucket_mib": bucket_mib,
        "receivers": receivers,
        "buckets": buckets,
        "send_s": send,
        "recv_s": recv,
        "raw_send_s": statistics.median(raw_send),
        "raw_recv_s": raw,
        "ratio": recv / raw,
        "gib_per_s": nbytes / 2**30 / send,
        "loadavg_1m": os.getloadavg()[0],  # other processes on the machine skew every number
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, nargs="*", default=[16, 64, 128])
    parser.add_argument("--models", nargs="*", default=[], help="e.g. tiny-base, or a HF folder")
    parser.add_argument("--bucket-mib", type=float, default=64)
    parser.add_argument("--tensor-mib", type=float, default=4)
    parser.add_argument("--receivers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the rows to this path")
    args = parser.parse_args()
    payloads = [(f"{m:g} MiB fp32", lambda m=m: _payload(m, args.tensor_mib)) for m in args.mib]
    payloads += [(name, lambda name=name: _model_payload(name)) for name in args.models]
    rows = [
        bench_one(label, make(), args.bucket_mib, args.receivers, args.repeats)
        for label, make in payloads
    ]
    print(
        f"{'payload':>22} {'MiB':>7} {'buckets':>7} {'send s':>7} {'recv s':>7} "
        f"{'raw s':>7} {'ratio':>6} {'GiB/s':>6}"
    )
    for r in rows:
        print(
            f"{r['payload']:>22} {r['mib']:>7.1f} {r['buckets']:>7d} {r['send_s']:>7.3f} "
            f"{r['recv_s']:>7.3f} {r['raw_recv_s']:>7.3f} {r['ratio']:>6.2f} {r['gib_per_s']:>6.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
