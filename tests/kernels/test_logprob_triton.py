"""kernels/triton_logprob.py against the fp32 reference, forward and backward, fp32 and bf16, on
ragged shapes (tokens and vocabulary not multiples of the blocks). On CPU through the Triton
interpreter (small shapes: it is ~1000x slower than torch); the same tests run compiled on CUDA."""

import pytest
import torch
from kernel_helpers import (
    DEVICE,
    TOL,
    compare,
    fp32_reference,
    make_problem,
    run_hidden,
    run_logits,
)
from rlcore.kernels import token_logprobs, token_logprobs_from_logits

pytestmark = pytest.mark.triton

# (leading shape, hidden, vocab, backward chunk, forward vocabulary splits)
CASES = [
    ((37,), 48, 1000, 300, 1),
    ((2, 9), 40, 515, None, 3),
    ((5,), 16, 97, 50, None),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", CASES)
def test_fused_hidden_matches_reference(triton_kernels, case, dtype):
    shape, hidden, vocab, chunk, splits = case
    p = make_problem(shape, hidden, vocab, dtype, seed=10)

    def fused(h, w, t, temp):
        lp, ent = triton_kernels.fused_linear_logprob(
            h.reshape(-1, hidden), w, t.reshape(-1), temp, chunk, splits
        )
        return lp.view(shape), ent.view(shape)

    got = run_hidden(fused, p, 0.7)
    assert got[2].dtype == dtype and got[3].dtype == dtype
    compare(got, fp32_reference(p, 0.7), TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", CASES[:2])
def test_fused_logits_matches_reference(triton_kernels, case, dtype):
    shape, hidden, vocab, _, splits = case
    p = make_problem(shape, hidden, vocab, dtype, seed=11)

    def fused(logits, t, temp):
        lp, ent = triton_kernels.fused_logits_logprob(
            logits.reshape(-1, vocab), t.reshape(-1), temp, splits
        )
        return lp.view(shape), ent.view(shape)

    got = run_logits(fused, p, 1.3)
    assert got[2].dtype == dtype
    compare(got, fp32_reference(p, 1.3, logits=True), TOL[dtype])


def test_dispatch_reaches_the_fused_kernels(triton_kernels):
    p = make_problem((3, 7), 16, 130, torch.float32, seed=12)
    ref = fp32_reference(p, 0.9)
    got = run_hidden(lambda h, w, t, temp: token_logprobs(h, w, t, temp, impl="fused"), p, 0.9)
    compare(got, ref, TOL[torch.float32])
    ref = fp32_reference(p, 0.9, logits=True)
    got = run_logits(
        lambda x, t, temp: token_logprobs_from_logits(x, t, temp, impl="fused"), p, 0.9
    )
    compare(got, ref, TOL[torch.float32])


def test_fused_refuses_cpu_tensors_without_the_interpreter(triton_kernels, monkeypatch):
    monkeypatch.setattr(triton_kernels, "INTERPRETED", False)
    x = torch.zeros(2, 4)
    if DEVICE == "cpu":
        with pytest.raises(RuntimeError, match="impl='chunked' on CPU"):
            triton_kernels.fused_logits_logprob(x, torch.zeros(2, dtype=torch.long))


@pytest.mark.gpu
@pytest.mark.parametrize("vocab", [49152, 152064])
def test_fused_matches_chunked_at_full_size_on_gpu(triton_kernels, vocab):
    if DEVICE != "cuda":
        pytest.skip("needs CUDA")
    p = make_problem((4, 1024), 896, vocab, torch.bfloat16, seed=13)

    def impl(name):
        return lambda h, w, t, temp: token_logprobs(h, w, t, temp, impl=name)

    compare(run_hidden(impl("fused"), p, 0.8), fp32_reference(p, 0.8), TOL[torch.bfloat16])
    compare(run_hidden(impl("chunked"), p, 0.8), fp32_reference(p, 0.8), TOL[torch.bfloat16])
