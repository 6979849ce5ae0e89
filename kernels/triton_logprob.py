"""Fused Triton kernels: per-token logprob and entropy from hidden states and the output projection
(or from logits), without writing [N, V] logits to memory.

Forward: one program per (block of BLOCK_N tokens, slice of the vocabulary). It computes logit tiles
[BLOCK_N, BLOCK_V] with tl.dot over the hidden size (or loads them from the logits), divides by the
temperature and folds them into running (max m, sum s = sum exp(z - m), t = sum exp(z - m)(z - m),
target logit), the online logsumexp of kernels/chunked.py. Splitting the vocabulary over programs
keeps a GPU busy when there are few tokens; a few [S, N] partial results are merged in torch.

Backward: the vocabulary is walked in chunks of `chunk_size` columns. One kernel recomputes each tile
of the chunk's logits and writes dL/dlogits for it ([N, C] in the inputs' dtype); two matmuls
(cuBLAS) then give grad_hidden += G @ W[c] and grad_weight[c] = G.T @ hidden. Writing G costs N x C,
not N x V; keeping the two GEMMs in cuBLAS avoids atomics, and the result is deterministic. For the
logits variant the kernel writes dL/dlogits straight into the [N, V] gradient.

fp32 inputs use IEEE fp32 dots (not TF32) so that fp32 results match the torch reference; bf16/fp16
inputs use tensor-core dots with fp32 accumulation (logits are kept in fp32, not rounded to bf16).

Runs on CUDA tensors; on CPU only under the Triton interpreter, which Triton chooses when a kernel is
*defined*: set TRITON_INTERPRET=1 before this module is first imported (tests/kernels/conftest.py).
Block sizes are fixed, not autotuned. Imports only torch and triton.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from .chunked import default_chunk_size

INTERPRETED = bool(triton.knobs.runtime.interpret)  # decided when the kernels below were defined


@triton.jit
def _logits_tile(
    x_ptr,
    w_ptr,
    rows,
    cols,
    row_ok,
    col_ok,
    D,
    stride_xn,
    stride_xd,
    stride_wv,
    stride_wd,
    temperature,
    FROM_LOGITS: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """fp32 [BLOCK_N, BLOCK_V] of logits / temperature (x: logits [N, V] when FROM_LOGITS, else
    hidden [N, D] with w: weight [V, D]). Out-of-range entries are 0."""
    rows = rows.to(tl.int64)  # offsets past 2**31 elements: [N, V] logits, a [V, D] weight
    cols = cols.to(tl.int64)
    if FROM_LOGITS:
        ptrs = x_ptr + rows[:, None] * stride_xn + cols[None, :] * stride_xd
        acc = tl.load(ptrs, mask=row_ok[:, None] & col_ok[None, :], other=0.0).to(tl.float32)
    else:
        acc = tl.zeros((BLOCK_N, BLOCK_V), dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            dd = d0 + tl.arange(0, BLOCK_D)
            d_ok = dd < D
            x = tl.load(
                x_ptr + rows[:, None] * stride_xn + dd[None, :] * stride_xd,
                mask=row_ok[:, None] & d_ok[None, :],
                other=0.0,
            )
            w = tl.load(
                w_ptr + cols[None, :] * stride_wv + dd[:, None] * stride_wd,
                mask=col_ok[None, :] & d_ok[:, None],
                other=0.0,
            )
            if UPCAST:  # the interpreter's dot multiplies bf16 bit patterns as integers
                x = x.to(tl.float32)
                w = w.to(tl.float32)
            acc = tl.dot(x, w, acc, input_precision=PRECISION)
    return acc / temperature


@triton.jit
def _forward_kernel(
    x_ptr,
    w_ptr,
    tgt_ptr,
    part_ptr,  # fp32 [4, S, N]: m, s, t, target logit per vocabulary slice
    N,
    V,
    D,
    stride_xn,
    stride_xd,
    stride_wv,
    stride_wd,
    temperature,
    cols_per_split,
    FROM_LOGITS: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    splits = tl.num_programs(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    tgt = tl.load(tgt_ptr + rows, mask=row_ok, other=-1)
    m = tl.full((BLOCK_N,), -1e30, dtype=tl.float32)  # finite: no 0 * inf on the first tile
    s = tl.zeros((BLOCK_N,), dtype=tl.float32)
    t = tl.zeros((BLOCK_N,), dtype=tl.float32)
    z_tgt = tl.zeros((BLOCK_N,), dtype=tl.float32)
    v_start = pid_s * cols_per_split
    v_end = tl.minimum(v_start + cols_per_split, V)
    for v0 in range(v_start, v_end, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        col_ok = cols < v_end
        z = _logits_tile(
            x_ptr, w_ptr, rows, cols, row_ok, col_ok, D, stride_xn, stride_xd, stride_wv,
            stride_wd, temperature, FROM_LOGITS, PRECISION, UPCAST, BLOCK_N, BLOCK_V, BLOCK_D,
        )  # fmt: skip
        hit = (cols[None, :] == tgt[:, None]) & col_ok[None, :]
        z_tgt += tl.sum(tl.where(hit, z, 0.0), axis=1)
        m_new = tl.maximum(m, tl.max(tl.where(col_ok[None, :], z, -1e30), axis=1))
        scale = tl.exp(m - m_new)
        t = scale * (t + s * (m - m_new))
        zc = tl.where(col_ok[None, :], z - m_new[:, None], 0.0)
        e = tl.where(col_ok[None, :], tl.exp(zc), 0.0)
        s = s * scale + tl.sum(e, axis=1)
        t += tl.sum(e * zc, axis=1)
        m = m_new
    out = part_ptr + pid_s * N + rows
    stride_part = splits * N
    tl.store(out, m, mask=row_ok)
    tl.store(out + stride_part, s, mask=row_ok)
    tl.store(out + 2 * stride_part, t, mask=row_ok)
    tl.store(out + 3 * stride_part, z_tgt, mask=row_ok)


@triton.jit
def _grad_logits_kernel(
    x_ptr,
    w_ptr,
    tgt_ptr,
    lse_ptr,
    ent_ptr,
    glp_ptr,
    gent_ptr,
    out_ptr,  # [N, >= v_count]: dL/dlogits of columns [v_offset, v_offset + v_count)
    N,
    D,
    v_offset,
    v_count,
    stride_xn,
    stride_xd,
    stride_wv,
    stride_wd,
    stride_on,
    temperature,
    FROM_LOGITS: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    local = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
    cols = v_offset + local
    row_ok = rows < N
    col_ok = local < v_count
    z = _logits_tile(
        x_ptr, w_ptr, rows, cols, row_ok, col_ok, D, stride_xn, stride_xd, stride_wv, stride_wd,
        temperature, FROM_LOGITS, PRECISION, UPCAST, BLOCK_N, BLOCK_V, BLOCK_D,
    )  # fmt: skip
    lse = tl.load(lse_ptr + rows, mask=row_ok, other=0.0)
    ent = tl.load(ent_ptr + rows, mask=row_ok, other=0.0)
    g_lp = tl.load(glp_ptr + rows, mask=row_ok, other=0.0)
    g_ent = tl.load(gent_ptr + rows, mask=row_ok, other=0.0)
    tgt = tl.load(tgt_ptr + rows, mask=row_ok, other=-1)
    logp = z - lse[:, None]
    p = tl.exp(logp)
    g = -p * (g_lp[:, None] + g_ent[:, None] * (logp + ent[:, None]))
    g += tl.where(cols[None, :] == tgt[:, None], g_lp[:, None], 0.0)
    g = g / temperature
    ptrs = out_ptr + rows.to(tl.int64)[:, None] * stride_on + local[None, :]
    tl.store(ptrs, g.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


# Block sizes: tensor-core friendly on GPU; small under the interpreter (numpy per tile).
_BLOCKS = (16, 32, 32) if INTERPRETED else (64, 128, 64)
_NUM_WARPS = 8


def _dot_options(dtype: torch.dtype) -> dict[str, Any]:
    """fp32: IEEE dots (not TF32), to match the fp32 reference; 16-bit: tensor cores (PRECISION is
    ignored for them), except under the interpreter, which needs them upcast first."""
    upcast = INTERPRETED and dtype != torch.float32
    ieee = dtype == torch.float32 or upcast
    return {"PRECISION": "ieee" if ieee else "tf32", "UPCAST": upcast}


def _check(t: torch.Tensor) -> None:
    if not (t.is_cuda or INTERPRETED):
        raise RuntimeError(
            "impl='fused' needs CUDA tensors (on CPU, set TRITON_INTERPRET=1 before importing "
            "rlcore.kernels.triton_logprob, for tests only); use impl='chunked' on CPU"
        )


def _num_splits(n: int, vocab: int, device: torch.device, splits: int | None) -> int:
    block_n, block_v, _ = _BLOCKS
    if splits is None:  # about 4 programs per SM, each at least one BLOCK_V wide
        sms = (
            torch.cuda.get_device_properties(device).multi_processor_count
            if device.type == "cuda"
            else 1
        )
        splits = -(-4 * sms // triton.cdiv(n, block_n))
    return max(1, min(splits, triton.cdiv(vocab, block_v)))


def _forward(
    x: torch.Tensor,
    w: torch.Tensor,
    targets: torch.Tensor,
    vocab: int,
    temperature: float,
    from_logits: bool,
    splits: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (logprob [N], entropy [N], logsumexp [N]) fp32."""
    n, d = x.shape[0], (0 if from_logits else x.shape[1])
    block_n, block_v, block_d = _BLOCKS
    splits = _num_splits(n, vocab, x.device, splits)
    cols_per_split = triton.cdiv(triton.cdiv(vocab, splits), block_v) * block_v
    splits = triton.cdiv(vocab, cols_per_split)  # every slice non-empty
    part = torch.empty((4, splits, n), dtype=torch.float32, device=x.device)
    grid = (triton.cdiv(n, block_n), splits)
    _forward_kernel[grid](
        x, w, targets, part, n, vocab, d, x.stride(0), x.stride(1), w.stride(0), w.stride(1),
        temperature, cols_per_split, FROM_LOGITS=from_logits, **_dot_options(x.dtype),
        BLOCK_N=block_n, BLOCK_V=block_v, BLOCK_D=block_d, num_warps=_NUM_WARPS,
    )  # fmt: skip
    m, s, t, z_tgt = part.unbind(0)
    m_all = m.amax(dim=0)
    scale = torch.exp(m - m_all)
    s_all = (s * scale).sum(dim=0)
    t_all = (scale * (t + s * (m - m_all))).sum(dim=0)
    log_s = torch.log(s_all)
    lse = m_all + log_s
    return z_tgt.sum(dim=0) - lse, log_s - t_all / s_all, lse


def _grad_logits(
    x: torch.Tensor,
    w: torch.Tensor,
    saved: tuple[torch.Tensor, ...],
    grads: tuple[torch.Tensor, torch.Tensor],
    out: torch.Tensor,
    cols: tuple[int, int],
    temperature: float,
    from_logits: bool,
) -> None:
    """Writes dL/dlogits of columns [a, b) into out [N, >= b - a]."""
    targets, lse, entropy = saved
    (a, b), n = cols, x.shape[0]
    block_n, block_v, block_d = _BLOCKS
    grid = (triton.cdiv(n, block_n), triton.cdiv(b - a, block_v))
    _grad_logits_kernel[grid](
        x, w, targets, lse, entropy, grads[0], grads[1], out, n,
        0 if from_logits else x.shape[1], a, b - a, x.stride(0), x.stride(1), w.stride(0),
        w.stride(1), out.stride(0), temperature, FROM_LOGITS=from_logits,
        **_dot_options(x.dtype), BLOCK_N=block_n, BLOCK_V=block_v, BLOCK_D=block_d,
        num_warps=_NUM_WARPS,
    )  # fmt: skip


class FusedLinearLogprob(torch.autograd.Function):
    """(hidden [N, H], weight [V, H], targets [N]) -> (logprob [N], entropy [N]) fp32."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        temperature: float,
        chunk: int,
        splits: int | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        vocab = weight.shape[0]
        logprob, entropy, lse = _forward(hidden, weight, targets, vocab, temperature, False, splits)
        ctx.save_for_backward(hidden, weight, targets, lse, entropy)
        ctx.temperature, ctx.chunk = temperature, chunk
        return logprob, entropy

    @staticmethod
    def backward(ctx: Any, g_lp: torch.Tensor, g_ent: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        hidden, weight, targets, lse, entropy = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grads = (g_lp.float().contiguous(), g_ent.float().contiguous())
        n, vocab = hidden.shape[0], weight.shape[0]
        grad_h = torch.zeros(hidden.shape, dtype=torch.float32, device=hidden.device)
        grad_w = (
            torch.empty(weight.shape, dtype=weight.dtype, device=weight.device) if need_w else None
        )
        buf = torch.empty((n, min(ctx.chunk, vocab)), dtype=hidden.dtype, device=hidden.device)
        for a in range(0, vocab, ctx.chunk):
            b = min(a + ctx.chunk, vocab)
            g = buf[:, : b - a]
            saved = (targets, lse, entropy)
            _grad_logits(hidden, weight, saved, grads, g, (a, b), ctx.temperature, False)
            if need_h:
                grad_h += (g @ weight[a:b]).float()
            if grad_w is not None:
                torch.matmul(g.T, hidden, out=grad_w[a:b])
        return (grad_h.to(hidden.dtype) if need_h else None), grad_w, None, None, None, None


class FusedLogitsLogprob(torch.autograd.Function):
    """(logits [N, V], targets [N]) -> (logprob [N], entropy [N]) fp32; grad in the logits' dtype."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        logits: torch.Tensor,
        targets: torch.Tensor,
        temperature: float,
        splits: int | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        vocab = logits.shape[1]
        logprob, entropy, lse = _forward(logits, logits, targets, vocab, temperature, True, splits)
        ctx.save_for_backward(logits, targets, lse, entropy)
        ctx.temperature = temperature
        return logprob, entropy

    @staticmethod
    def backward(ctx: Any, g_lp: torch.Tensor, g_ent: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        logits, targets, lse, entropy = ctx.saved_tensors
        grads = (g_lp.float().contiguous(), g_ent.float().contiguous())
        grad = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
        cols = (0, logits.shape[1])
        _grad_logits(
            logits, logits, (targets, lse, entropy), grads, grad, cols, ctx.temperature, True
        )
        return grad, None, None, None


def fused_linear_logprob(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    chunk_size: int | None = None,
    splits: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden [N, H], weight [V, H] (same dtype), targets [N] int64 in [0, V)
    -> (logprob [N], entropy [N]) fp32. chunk_size: vocabulary columns per backward chunk;
    splits: vocabulary slices per token block in forward (None: from the GPU's SM count)."""
    _check(hidden)
    chunk = chunk_size or default_chunk_size(hidden.shape[0], weight.shape[0], hidden.device.type)
    args = (hidden, weight, targets.contiguous(), float(temperature), chunk, splits)
    out = FusedLinearLogprob.apply(*args)
    return out[0], out[1]


def fused_logits_logprob(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    splits: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [N, V], targets [N] int64 in [0, V) -> (logprob [N], entropy [N]) fp32."""
    _check(logits)
    out = FusedLogitsLogprob.apply(logits, targets.contiguous(), float(temperature), splits)
    return out[0], out[1]
