"""Per-token logprob and entropy in plain torch, chunked over the vocabulary: never [N, V] in fp32.

The CPU path and the fallback of the fused Triton kernel (kernels/triton_logprob.py), with the same
maths. Logits are produced one vocabulary chunk at a time, [N, C] with C = `chunk_size` columns, and
folded into per-token running statistics (an online logsumexp):

    m = running max of z,   s = sum exp(z - m),   t = sum exp(z - m) * (z - m)
    logsumexp = m + log s,  entropy = log s - t / s,  logprob = z[target] - logsumexp

where z = logits / temperature. Keeping t relative to m (not sum p*z) avoids the cancellation of
`lse - sum p*z` when logits carry a large common offset. Backward recomputes each chunk's logits from
the saved inputs and the saved per-token (logsumexp, entropy):

    dL/dz = g_lp * (onehot(target) - p) - g_ent * p * (log p + entropy),   dL/dlogits = dL/dz / T

which costs three passes over a chunk: exp, a per-token scale and shift of log p, the product.
For the hidden-state variant the chunk's gradient goes straight into two matmuls, so grad_weight is
written one [C, H] slice at a time in the weight's dtype (no fp32 [V, H] accumulator) and grad_hidden
accumulates in fp32 [N, H]. Extra memory: two fp32 [N, C] scratch buffers reused by every chunk
(plus one in the inputs' dtype when that is not fp32); C defaults to 2048 columns or 1M elements'
worth, whichever is wider, on CPU (`default_chunk_size`).

Matmuls run in the inputs' dtype and are upcast afterwards, as `lm_head(h).float()` would do, so the
fp32 results agree with the reference path to rounding. Imports only torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

# Default chunk: CHUNK_ELEMENTS // N columns, i.e. one [N, chunk] fp32 buffer of 4 MiB on CPU and
# 128 MiB on a GPU (small there, and wide chunks keep the matmuls efficient); but at least 2048
# columns: narrower chunks mean many small ops, which a busy CPU runs far slower.
CHUNK_ELEMENTS = {"cpu": 2**20, "cuda": 2**25}
_MIN_CHUNK = 2048


def default_chunk_size(num_tokens: int, vocab: int, device_type: str = "cpu") -> int:
    """Vocabulary columns per chunk: CHUNK_ELEMENTS // num_tokens, at least 2048, at most vocab."""
    budget = CHUNK_ELEMENTS.get(device_type, CHUNK_ELEMENTS["cpu"])
    return min(vocab, max(_MIN_CHUNK, budget // max(num_tokens, 1)))


def _chunks(vocab: int, chunk: int) -> list[tuple[int, int]]:
    return [(a, min(a + chunk, vocab)) for a in range(0, vocab, chunk)]


class _Scratch:
    """[N, C] buffers reused by every chunk. Fresh tensors per chunk cost more than the arithmetic
    on CPU: the allocator maps and unmaps them, and every page faults in again."""

    def __init__(self, n: int, chunk: int, device: torch.device) -> None:
        self.n, self.chunk, self.device = n, chunk, device
        self._flat: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    def get(self, name: str, cols: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A contiguous [N, cols] view of the buffer `name` (cols <= chunk)."""
        key = (name, dtype)
        if key not in self._flat:
            self._flat[key] = torch.empty(self.n * self.chunk, dtype=dtype, device=self.device)
        return self._flat[key][: self.n * cols].view(self.n, cols)


FillFn = Callable[[int, int, torch.Tensor], None]  # (a, b, out fp32 [N, b-a]): out = logits / T


def _linear_fill(
    hidden: torch.Tensor, weight: torch.Tensor, temperature: float, scratch: _Scratch
) -> FillFn:
    def fill(a: int, b: int, out: torch.Tensor) -> None:
        if hidden.dtype == torch.float32:
            torch.matmul(hidden, weight[a:b].T, out=out)
        else:  # the matmul in the inputs' dtype, then upcast, as lm_head(h).float() does
            low = scratch.get("low", b - a, hidden.dtype)
            out.copy_(torch.matmul(hidden, weight[a:b].T, out=low))
        out.div_(temperature)

    return fill


def _logits_fill(logits: torch.Tensor, temperature: float) -> FillFn:
    def fill(a: int, b: int, out: torch.Tensor) -> None:
        out.copy_(logits[:, a:b]).div_(temperature)

    return fill


def _forward_stats(
    fill: FillFn, vocab: int, targets: torch.Tensor, scratch: _Scratch
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Online logsumexp over chunks -> (logprob [N], entropy [N], logsumexp [N]), fp32."""
    n, device = scratch.n, scratch.device
    m = torch.full((n,), float("-inf"), device=device)
    s = torch.zeros(n, device=device)
    t = torch.zeros(n, device=device)
    z_target = torch.zeros(n, device=device)
    for a, b in _chunks(vocab, scratch.chunk):
        z = scratch.get("z", b - a)
        fill(a, b, z)
        hit = (targets >= a) & (targets < b)
        idx = (targets - a).clamp(0, b - a - 1).unsqueeze(1)
        z_target += torch.where(hit, z.gather(1, idx).squeeze(1), 0.0)
        m_new = torch.maximum(m, z.amax(dim=1))
        scale = torch.exp(m - m_new)
        # re-centre t on the new max; s == 0 on the first chunk, where m - m_new is -inf
        t = scale * (t + torch.where(s > 0, s * (m - m_new), 0.0))
        z.sub_(m_new.unsqueeze(1))
        e = torch.exp(z, out=scratch.get("e", b - a))
        s = s * scale + e.sum(dim=1)
        t += e.mul_(z).sum(dim=1)
        m = m_new
    log_s = torch.log(s)
    lse = m + log_s
    return z_target - lse, log_s - t / s, lse


def _coefficients(
    lse: torch.Tensor, entropy: torch.Tensor, g_lp: torch.Tensor, g_ent: torch.Tensor, temp: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dL/dlogits = (p * (-g_lp - g_ent * (log p + entropy)) + g_lp * onehot) / T, written as
    p * (log p * scale + shift) + onehot * g_lp / T with per-token scale and shift."""
    return lse, -g_ent / temp, -(g_lp + g_ent * entropy) / temp


def _grad_chunks(
    fill: FillFn,
    vocab: int,
    targets: torch.Tensor,
    coef: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    g_lp: torch.Tensor,
    temperature: float,
    scratch: _Scratch,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yields (a, b, dL/dlogits fp32 [N, b-a]) for each chunk, recomputed in a reused buffer."""
    lse, scale, shift = coef
    for a, b in _chunks(vocab, scratch.chunk):
        z = scratch.get("z", b - a)
        fill(a, b, z)
        z.sub_(lse.unsqueeze(1))  # log p
        p = torch.exp(z, out=scratch.get("e", b - a))
        z.mul_(scale.unsqueeze(1)).add_(shift.unsqueeze(1)).mul_(p)
        rows = ((targets >= a) & (targets < b)).nonzero().squeeze(1)
        z[rows, targets[rows] - a] += g_lp[rows] / temperature
        yield a, b, z


class ChunkedLinearLogprob(torch.autograd.Function):
    """(hidden [N, H], weight [V, H], targets [N]) -> (logprob [N], entropy [N]) fp32."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        temperature: float,
        chunk: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scratch = _Scratch(hidden.shape[0], chunk, hidden.device)
        fill = _linear_fill(hidden, weight, temperature, scratch)
        logprob, entropy, lse = _forward_stats(fill, weight.shape[0], targets, scratch)
        ctx.save_for_backward(hidden, weight, targets, lse, entropy)
        ctx.temperature, ctx.chunk = temperature, chunk
        return logprob, entropy

    @staticmethod
    def backward(ctx: Any, g_lp: torch.Tensor, g_ent: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        hidden, weight, targets, lse, entropy = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        temp, dtype = ctx.temperature, hidden.dtype
        g_lp = g_lp.float()
        coef = _coefficients(lse, entropy, g_lp, g_ent.float(), temp)
        scratch = _Scratch(hidden.shape[0], ctx.chunk, hidden.device)
        fill = _linear_fill(hidden, weight, temp, scratch)
        grad_h = torch.zeros(hidden.shape, dtype=torch.float32, device=hidden.device)
        grad_w = torch.empty(weight.shape, dtype=dtype, device=weight.device) if need_w else None
        for a, b, g in _grad_chunks(fill, weight.shape[0], targets, coef, g_lp, temp, scratch):
            if dtype != torch.float32:  # as autograd would cast the grad of `.float()`
                g = scratch.get("low", b - a, dtype).copy_(g)
            if need_h and dtype == torch.float32:
                grad_h.addmm_(g, weight[a:b])
            elif need_h:
                grad_h += (g @ weight[a:b]).float()
            if grad_w is not None:
                torch.matmul(g.T, hidden, out=grad_w[a:b])
        return (grad_h.to(dtype) if need_h else None), grad_w, None, None, None


class ChunkedLogitsLogprob(torch.autograd.Function):
    """(logits [N, V], targets [N]) -> (logprob [N], entropy [N]) fp32; grad in the logits' dtype."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, logits: torch.Tensor, targets: torch.Tensor, temperature: float, chunk: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scratch = _Scratch(logits.shape[0], chunk, logits.device)
        fill = _logits_fill(logits, temperature)
        logprob, entropy, lse = _forward_stats(fill, logits.shape[1], targets, scratch)
        ctx.save_for_backward(logits, targets, lse, entropy)
        ctx.temperature, ctx.chunk = temperature, chunk
        return logprob, entropy

    @staticmethod
    def backward(ctx: Any, g_lp: torch.Tensor, g_ent: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        logits, targets, lse, entropy = ctx.saved_tensors
        g_lp = g_lp.float()
        coef = _coefficients(lse, entropy, g_lp, g_ent.float(), ctx.temperature)
        scratch = _Scratch(logits.shape[0], ctx.chunk, logits.device)
        fill = _logits_fill(logits, ctx.temperature)
        grad = torch.empty_like(logits)
        chunks = _grad_chunks(fill, logits.shape[1], targets, coef, g_lp, ctx.temperature, scratch)
        for a, b, g in chunks:
            grad[:, a:b] = g
        return grad, None, None, None


def chunked_linear_logprob(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden [N, H], weight [V, H] (same dtype), targets [N] int in [0, V)
    -> (logprob [N], entropy [N]) fp32 of softmax(hidden @ weight.T / temperature)."""
    chunk = chunk_size or default_chunk_size(hidden.shape[0], weight.shape[0], hidden.device.type)
    out = ChunkedLinearLogprob.apply(hidden, weight, targets, float(temperature), chunk)
    return out[0], out[1]


def chunked_logits_logprob(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [N, V], targets [N] int in [0, V) -> (logprob [N], entropy [N]) fp32."""
    chunk = chunk_size or default_chunk_size(logits.shape[0], logits.shape[1], logits.device.type)
    out = ChunkedLogitsLogprob.apply(logits, targets, float(temperature), chunk)
    return out[0], out[1]
