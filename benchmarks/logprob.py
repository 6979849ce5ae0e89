"""Peak memory and time of per-token logprob + entropy, by implementation, training and inference.

    python benchmarks/logprob.py --json benchmarks/results/logprob.json
    python benchmarks/logprob.py --cases 49152x576 --tokens 512 1024 --impls reference chunked

Each case is (vocabulary V, hidden size H, tokens N): hidden [N, H] and the output projection [V, H]
(fp32 by default, as the CPU learner runs) through `rlcore.kernels.token_logprobs`. Mode "train": both
require grad, one forward and backward of `-(adv * logprob).mean() - 0.01 * entropy.mean()` (the
policy update). Mode "infer": forward under no_grad (old/reference-model logprobs). The reference is
the learner's current path: logits = hidden @ weight.T, then log_softmax over them. Default cases:
SmolLM2-135M (V 49,152, H 576) and Qwen2.5-like heads (V 152,064, H 896 and 1536). On CUDA the fused
Triton kernel is added (and bf16 as well).

How memory is measured: every case runs in a fresh child process. On CPU the child allocates its
inputs, runs a small warm-up, resets the kernel's resident-set high-water mark
(/proc/self/clear_refs = 5), and reports VmHWM - VmRSS across the measured step: the peak of resident
memory the step added, whoever allocated it (tracemalloc does not see torch's allocator). The child
runs with MALLOC_MMAP_THRESHOLD_=131072, so that glibc maps every tensor of 128 KiB and up on its
own and unmaps it on free: resident memory then follows live tensors rather than freed heap. On CUDA:
torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus what was allocated before.

In "train" the peak includes the gradients of weight and hidden (`grad_bytes`), outputs that every
implementation must hold at the end; at few tokens and a large [V, H] they are most of the chunked
path's peak, and a floor under any implementation's. Time: the shortest of --repeats measured steps
after a warm-up (wall clock, synchronised on CUDA); on a shared machine it is noisy, memory is not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

DEFAULT_CASES = ["49152x576", "152064x896", "152064x1536"]
DEFAULT_TOKENS = [512, 1024, 2048]
# Cases left out of the default grid to keep a 2-core CPU run under ~5 minutes.
SKIP_ON_CPU = {("152064x1536", 1024), ("152064x1536", 2048)}


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _step(impl: str, hidden: torch.Tensor, weight: torch.Tensor, targets, adv) -> None:
    from rlcore.kernels import token_logprobs

    logprob, entropy = token_logprobs(hidden, weight, targets, 1.0, impl=impl)  # type: ignore[arg-type]
    if weight.requires_grad:
        (-(adv * logprob).mean() - 0.01 * entropy.mean()).backward()


def _peak_of_one_step(impl: str, hidden, weight, targets, adv) -> tuple[int, float]:
    """(bytes the step added at its peak, seconds) of one step."""
    weight.grad = hidden.grad = None
    cuda = hidden.is_cuda
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = _kib("VmRSS") * 1024
    start = time.perf_counter()
    _step(impl, hidden, weight, targets, adv)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if cuda else _kib("VmHWM") * 1024
    return peak - before, seconds


def measure(
    impl: str,
    mode: str,
    vocab: int,
    hidden_size: int,
    tokens: int,
    dtype: str,
    device: str,
    repeats: int = 1,
) -> dict:
    """Runs in the child: one case, one row (the largest peak and the shortest time of `repeats`)."""
    torch.manual_seed(0)
    dt = getattr(torch, dtype)
    weight = torch.randn(vocab, hidden_size, device=device, dtype=dt).div_(hidden_size**0.5)
    hidden = torch.randn(tokens, hidden_size, device=device, dtype=dt)
    targets = torch.randint(0, vocab, (tokens,), device=device)
    adv = torch.randn(tokens, device=device)
    train = mode == "train"
    weight.requires_grad_(train), hidden.requires_grad_(train)
    torch.set_grad_enabled(train)
    _step(impl, hidden[:16], weight, targets[:16], adv[:16])  # warm-up: threads, kernels
    runs = [_peak_of_one_step(impl, hidden, weight, targets, adv) for _ in range(repeats)]
    grad_bytes = sum(t.numel() * t.element_size() for t in (weight, hidden)) if train else 0
    return {
        "impl": impl,
        "mode": mode,
        "device": device,
        "dtype": dtype,
        "vocab": vocab,
        "hidden": hidden_size,
        "tokens": tokens,
        "peak_mem_bytes": max(r[0] for r in runs),
        "grad_bytes": grad_bytes,
        "logits_fp32_bytes": tokens * vocab * 4,
        "seconds": round(min(r[1] for r in runs), 4),
    }


def run_child(
    impl: str, mode: str, case: str, tokens: int, dtype: str, device: str, repeats: int
) -> dict:
    vocab, hidden = (int(x) for x in case.split("x"))
    spec = json.dumps([impl, mode, vocab, hidden, tokens, dtype, device, repeats])
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", spec], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"case {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict]) -> None:
    mib = 2**20
    key = ("mode", "device", "dtype", "vocab", "hidden", "tokens")
    ref = {tuple(r[k] for k in key): r for r in rows if r["impl"] == "reference"}
    head = f"{'impl':<10}{'mode':<6}{'device':<7}{'dtype':<9}{'vocab':>7}{'hidden':>7}{'tokens':>7}"
    head += f"{'peak MiB':>9}{'grads MiB':>10}{'vs ref':>7}{'seconds':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        base = ref.get(tuple(r[k] for k in key))
        ratio = f"{r['peak_mem_bytes'] / base['peak_mem_bytes']:.2f}" if base else "-"
        print(
            f"{r['impl']:<10}{r['mode']:<6}{r['device']:<7}{r['dtype']:<9}{r['vocab']:>7}"
            f"{r['hidden']:>7}{r['tokens']:>7}{r['peak_mem_bytes'] / mib:>9.0f}"
            f"{r['grad_bytes'] / mib:>10.0f}{ratio:>7}{r['seconds']:>8.2f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="VOCABxHIDDEN")
    parser.add_argument("--tokens", nargs="+", type=int, default=DEFAULT_TOKENS)
    parser.add_argument(
        "--impls", nargs="+", default=None, help="default: reference chunked (+fused)"
    )
    parser.add_argument("--modes", nargs="+", default=["train", "infer"], help="train | infer")
    parser.add_argument("--dtype", default=None, help="float32 | bfloat16 (default: float32)")
    parser.add_argument("--repeats", type=int, default=1, help="steps per case: min time, max peak")
    parser.add_argument("--all", action="store_true", help="no case skipped on CPU")
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(*json.loads(args.child))))
        return
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    impls = args.impls or (["reference", "chunked", "fused"] if cuda else ["reference", "chunked"])
    dtypes = [args.dtype] if args.dtype else (["float32", "bfloat16"] if cuda else ["float32"])
    rows: list[dict] = []
    for dtype in dtypes:
        for case in args.cases:
            for tokens in args.tokens:
                if not (cuda or args.all) and (case, tokens) in SKIP_ON_CPU:
                    continue
                for mode in args.modes:
                    for impl in impls:
                        rows.append(
                            run_child(impl, mode, case, tokens, dtype, device, args.repeats)
                        )
                        print(f"done {impl} {mode} {case} {tokens} {dtype}", file=sys.stderr)
    print_table(rows)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
