"""GPU check, kernel part: the fused Triton logprob/entropy kernel (rlcore.kernels) compiled on the
GPU, against the fp32 reference (correctness) and against the chunked and reference paths (time and
peak memory). Run by benchmarks/gpu_check.py; on CPU (the smoke run) under TRITON_INTERPRET=1 at toy
sizes.

Sizes on the GPU: vocabulary 152,064 (Qwen2.5), hidden 1,536; correctness at 4,093 tokens (not a
multiple of any block) in bf16 and fp32; speed in bf16 at 4k, 16k and 32k tokens.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from gpu_check_common import Ctx, verdict

# relative to max |expected|, as tests/kernels: bf16 rounding scales with the values
TOL = {torch.float32: 2e-5, torch.bfloat16: 3e-2}
TEMPERATURE = 0.8
OUTPUTS = ("logprob", "entropy", "grad_hidden", "grad_weight")


def _problem(n: int, vocab: int, hidden: int, device: str, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    return {
        "hidden": torch.randn(n, hidden, generator=g).to(device),
        "weight": (torch.randn(vocab, hidden, generator=g) * (1.5 / hidden**0.5)).to(device),
        "targets": torch.randint(0, vocab, (n,), generator=g).to(device),
        "adv": torch.randn(n, generator=g).to(device),
    }


def _run(impl: str, p: dict[str, Any], dtype: torch.dtype) -> list[torch.Tensor]:
    """[logprob, entropy, grad_hidden, grad_weight] of a policy-gradient loss with an entropy term
    (both outputs get a gradient), inputs cast to `dtype`."""
    from rlcore.kernels import token_logprobs

    h = p["hidden"].to(dtype, copy=True).requires_grad_()  # fresh leaves: no grad carried over
    w = p["weight"].to(dtype, copy=True).requires_grad_()
    lp, ent = token_logprobs(h, w, p["targets"], TEMPERATURE, impl=impl)  # type: ignore[arg-type]
    (-(p["adv"] * lp + 0.1 * ent).mean()).backward()
    return [lp.detach(), ent.detach(), h.grad, w.grad]


def _rel_errors(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> dict[str, float]:
    out = {}
    for name, a, e in zip(OUTPUTS, actual, expected, strict=True):
        scale = e.float().abs().max().clamp_min(1e-6)
        out[name] = float((a.float() - e.float()).abs().max() / scale)
    return out


def correctness(ctx: Ctx) -> dict[str, Any]:
    """Fused (and chunked) forward + backward vs the reference on fp32 copies of the same inputs."""
    n, vocab, hidden = (67, 1000, 64) if ctx.smoke else (4093, 152064, 1536)
    p = _problem(n, vocab, hidden, ctx.device)
    rows: list[dict[str, Any]] = []
    ok = True
    for dtype in (torch.bfloat16, torch.float32):
        rounded = {
            **p,
            "hidden": p["hidden"].to(dtype).float(),
            "weight": p["weight"].to(dtype).float(),
        }
        expected = _run("reference", rounded, torch.float32)
        for impl in ("fused", "chunked"):
            errs = _rel_errors(_run(impl, p, dtype), expected)
            passed = all(e <= TOL[dtype] for e in errs.values())
            ok = ok and passed
            rows.append({"impl": impl, "dtype": str(dtype)[6:], "passed": passed, **errs})
        del expected
        _free(ctx.device)
    worst = {r["dtype"]: max(r[k] for k in OUTPUTS) for r in rows if r["impl"] == "fused"}
    summary = ", ".join(f"{d} {e:.1e} (tol {TOL[getattr(torch, d)]:g})" for d, e in worst.items())
    return verdict(
        ok, f"fused vs fp32 reference, V={vocab} N={n}, max rel err: {summary}", rows=rows
    )


def _step(impl: str, h: torch.Tensor, w: torch.Tensor, targets, adv, train: bool) -> None:
    from rlcore.kernels import token_logprobs

    with torch.set_grad_enabled(train):
        lp, ent = token_logprobs(h, w, targets, 1.0, impl=impl)  # type: ignore[arg-type]
        if train:
            (-(adv * lp).mean() - 0.01 * ent.mean()).backward()


def _measure(impl: str, n: int, shape: tuple[int, int], device: str, mode: str, steps: int) -> dict:
    """Median seconds of steps - 1 steps after a warm-up, and the peak memory a step adds (CUDA)."""
    (vocab, hidden), train = shape, mode == "train"
    g = torch.Generator(device=device).manual_seed(0)
    dt = torch.bfloat16
    w = (torch.randn(vocab, hidden, device=device, generator=g) / hidden**0.5).to(dt)
    h = torch.randn(n, hidden, device=device, generator=g).to(dt)
    targets = torch.randint(0, vocab, (n,), device=device, generator=g)
    adv = torch.randn(n, device=device, generator=g)
    w.requires_grad_(train), h.requires_grad_(train)
    cuda = device == "cuda"
    times, peak = [], 0
    for i in range(steps):
        w.grad = h.grad = None
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        start = time.perf_counter()
        _step(impl, h, w, targets, adv, train)
        if cuda:
            torch.cuda.synchronize()
            peak = max(peak, torch.cuda.max_memory_allocated() - before)
        if i:  # the first is the warm-up (compilation, autotuning of cuBLAS)
            times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "peak_mib": peak / 2**20 if cuda else None}


def speed(ctx: Ctx) -> dict[str, Any]:
    """bf16 forward+backward ("train") and forward ("infer") of fused, chunked and reference."""
    vocab, hidden = (512, 32) if ctx.smoke else (152064, 1536)
    tokens = (16, 32) if ctx.smoke else (4096, 16384, 32768)
    steps = 2 if ctx.smoke else 4  # the interpreter is ~1000x slower
    rows = []
    for mode in ("train", "infer"):
        for n in tokens:
            for impl in ("fused", "chunked", "reference"):
                row: dict[str, Any] = {"mode": mode, "tokens": n, "impl": impl}
                try:
                    row.update(_measure(impl, n, (vocab, hidden), ctx.device, mode, steps))
                except torch.cuda.OutOfMemoryError:
                    row["oom"] = True  # the reference's fp32 [N, V] copies at 32k tokens
                _free(ctx.device)
                rows.append(row)
    ratios = _ratios(rows)
    top = next(r for r in ratios if r["mode"] == "train" and r["tokens"] == tokens[-1])
    summary = (
        f"train, {tokens[-1]} tokens, fused / chunked: time {top['time_vs_chunked']}, memory "
        f"{top['mem_vs_chunked']}; fused / reference: {top['time_vs_reference']}, "
        f"{top['mem_vs_reference']} (table below)"
    )
    return verdict(True, summary, vocab=vocab, hidden=hidden, rows=rows, ratios=ratios)


def _free(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()


def _ratios(rows: list[dict]) -> list[dict]:
    """fused / other, per (mode, tokens): time and peak memory; "oom" where the other ran out."""
    by = {(r["mode"], r["tokens"], r["impl"]): r for r in rows}
    out = []
    for mode, n, impl in by:
        if impl != "fused":
            continue
        fused, ratio = by[(mode, n, impl)], {"mode": mode, "tokens": n}
        for other in ("chunked", "reference"):
            o = by[(mode, n, other)]
            for key, field in (("time", "seconds"), ("mem", "peak_mib")):
                a, b = fused.get(field), o.get(field)
                value = "oom" if o.get("oom") else (f"{a / b:.2f}" if a and b else "-")
                ratio[f"{key}_vs_{other}"] = value
        out.append(ratio)
    return out
