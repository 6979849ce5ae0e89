"""Shared by the kernels tests: random problems with a ragged loss mask, the loss, tolerances."""

from __future__ import annotations

import os

import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
INTERPRETER_ON = os.environ.get("TRITON_INTERPRET") == "1"  # set before triton was imported


def make_problem(
    shape: tuple[int, ...], hidden: int, vocab: int, dtype: torch.dtype, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random hidden [*shape, H], weight [V, H] with logits of order 1-3, targets [*shape], a ragged
    loss mask (one row fully masked when there are several rows) and per-token advantages."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(*shape, hidden, generator=g)
    w = torch.randn(vocab, hidden, generator=g) * (1.5 / hidden**0.5)
    targets = torch.randint(0, vocab, shape, generator=g)
    lengths = torch.randint(1, shape[-1] + 1, shape[:-1], generator=g)
    mask = (torch.arange(shape[-1]) < lengths.unsqueeze(-1)).float()
    if mask.dim() > 1 and mask.shape[0] > 1:
        mask[-1] = 0.0
    adv = torch.randn(shape, generator=g)
    return {
        "hidden": h.to(DEVICE, dtype),
        "weight": w.to(DEVICE, dtype),
        "targets": targets.to(DEVICE),
        "mask": mask.to(DEVICE),
        "adv": adv.to(DEVICE),
    }


def pg_loss(
    logprob: torch.Tensor, entropy: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The policy-gradient loss of the tests, with an entropy bonus so that both outputs get a
    gradient: -(adv * logprob * mask).sum() / mask.sum() - 0.1 * (entropy * mask).sum() / mask.sum()."""
    return -((adv * logprob + 0.1 * entropy) * mask).sum() / mask.sum()


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str = "") -> None:
    """Within tol relative to the largest |expected| (bf16 rounding scales with the values)."""
    actual, expected = actual.float().cpu(), expected.float().cpu()
    scale = expected.abs().max().clamp_min(1e-6)
    err = (actual - expected).abs().max()
    assert err <= tol * scale, f"{what}: max |diff| {err:.3g} > {tol} x max |expected| {scale:.3g}"


TOL = {torch.float32: 2e-5, torch.bfloat16: 3e-2}


def run_hidden(fn, p: dict[str, torch.Tensor], temperature: float) -> list[torch.Tensor]:
    """fn(hidden, weight, targets, temperature) -> (lp, ent); returns [lp, ent, grad_h, grad_w] of
    pg_loss. Inputs are fresh leaves in the problem's dtype."""
    h = p["hidden"].detach().clone().requires_grad_()
    w = p["weight"].detach().clone().requires_grad_()
    lp, ent = fn(h, w, p["targets"], temperature)
    pg_loss(lp, ent, p["adv"], p["mask"]).backward()
    return [lp, ent, h.grad, w.grad]


def run_logits(
    fn, p: dict[str, torch.Tensor], temperature: float, upcast: bool = False
) -> list[torch.Tensor]:
    """As run_hidden, from logits = hidden @ weight.T in the problem's dtype (then fp32 if upcast):
    [lp, ent, grad_logits]."""
    logits = p["hidden"] @ p["weight"].T
    logits = (logits.float() if upcast else logits).detach().requires_grad_()
    lp, ent = fn(logits, p["targets"], temperature)
    pg_loss(lp, ent, p["adv"], p["mask"]).backward()
    return [lp, ent, logits.grad]


def fp32_reference(p: dict[str, torch.Tensor], temperature: float, logits: bool = False):
    """The ground truth: the plain reference on the problem's inputs upcast to fp32."""
    from rlcore.kernels import logprob_and_entropy

    if logits:  # the same (rounded) logits as the implementation gets, upcast
        return run_logits(logprob_and_entropy, p, temperature, upcast=True)
    p32 = {k: (v.float() if k in ("hidden", "weight") else v) for k, v in p.items()}
    return run_hidden(lambda h, w, t, temp: logprob_and_entropy(h @ w.T, t, temp), p32, temperature)


def compare(actual: list[torch.Tensor], expected: list[torch.Tensor], tol: float) -> None:
    names = [
        "logprob",
        "entropy",
        "grad_hidden" if len(actual) == 4 else "grad_logits",
        "grad_weight",
    ]
    for a, e, name in zip(actual, expected, names, strict=False):
        assert a.shape == e.shape, name
        assert_close(a, e, tol, name)
