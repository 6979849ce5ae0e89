"""kernels/: the chunked torch path and the dispatch against the fp32 reference (log_softmax over
the full logits), forward and backward, on ragged shapes with a loss mask."""

import pytest
import torch
from kernel_helpers import (
    DEVICE,
    TOL,
    assert_close,
    compare,
    fp32_reference,
    make_problem,
    pg_loss,
    run_hidden,
    run_logits,
)
from rlcore.kernels import logprob_and_entropy, token_logprobs, token_logprobs_from_logits
from rlcore.kernels.chunked import chunked_linear_logprob, default_chunk_size
from rlcore.kernels.logprob import resolve_impl

# (leading shape, hidden, vocab, chunk): vocabularies not a multiple of any chunk; chunk 1 makes
# every column its own online-logsumexp step; None takes the default (one chunk here).
CASES = [
    ((3, 13), 48, 1000, 300),
    ((37,), 24, 257, 1),
    ((2, 5), 16, 4099, None),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", CASES)
def test_chunked_hidden_matches_reference(case, dtype):
    shape, hidden, vocab, chunk = case
    p = make_problem(shape, hidden, vocab, dtype)

    def chunked(h, w, t, temp):
        return token_logprobs(h, w, t, temp, impl="chunked", chunk_size=chunk)

    got = run_hidden(chunked, p, 0.7)
    assert got[0].dtype == torch.float32 and got[0].shape == shape
    assert got[2].dtype == dtype and got[3].dtype == dtype
    compare(got, fp32_reference(p, 0.7), TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", CASES)
def test_chunked_logits_matches_reference(case, dtype):
    shape, hidden, vocab, chunk = case
    p = make_problem(shape, hidden, vocab, dtype, seed=1)

    def chunked(logits, t, temp):
        return token_logprobs_from_logits(logits, t, temp, impl="chunked", chunk_size=chunk)

    got = run_logits(chunked, p, 1.3)
    assert got[2].dtype == dtype
    compare(got, fp32_reference(p, 1.3, logits=True), TOL[dtype])


def test_masked_positions_get_no_gradient():
    p = make_problem((3, 11), 16, 333, torch.float32, seed=3)
    _, _, grad_h, _ = run_hidden(
        lambda h, w, t, temp: token_logprobs(h, w, t, temp, impl="chunked", chunk_size=50), p, 0.8
    )
    masked = p["mask"] == 0
    assert masked.any() and (~masked).any()
    assert grad_h[masked].abs().max() == 0
    assert grad_h[~masked].abs().min() > 0


def test_large_common_logit_offset_keeps_entropy_accurate():
    """logits + 1000: lse - sum(p * z) would lose ~1e-4 to cancellation; the centred sums do not."""
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(64, 3001, generator=g, dtype=torch.float64) * 2
    targets = torch.randint(0, 3001, (64,), generator=g)
    want_lp, want_ent = logprob_and_entropy(logits, targets)  # shift-invariant, in fp64
    shifted = (logits + 1000).float()
    lp, ent = token_logprobs_from_logits(shifted, targets, impl="chunked", chunk_size=256)
    assert_close(ent, want_ent.float(), 1e-5, "entropy")
    assert (lp.double() - want_lp).abs().max() < 2e-4  # fp32 spacing at 1000 is 6e-5


def test_temperature_is_applied_before_softmax():
    p = make_problem((20,), 16, 300, torch.float32, seed=5)
    hot = token_logprobs(p["hidden"], p["weight"], p["targets"], 2.0, impl="chunked")
    scaled = token_logprobs(p["hidden"] / 2.0, p["weight"], p["targets"], 1.0, impl="chunked")
    assert_close(hot[0], scaled[0], 1e-5, "logprob")
    assert_close(hot[1], scaled[1], 1e-5, "entropy")
    assert (
        hot[1] > token_logprobs(p["hidden"], p["weight"], p["targets"], impl="chunked")[1]
    ).all()


def test_only_the_needed_gradients_are_computed():
    p = make_problem((10,), 8, 100, torch.float32)
    w = p["weight"].clone().requires_grad_()
    lp, ent = chunked_linear_logprob(p["hidden"], w, p["targets"], chunk_size=30)
    pg_loss(lp, ent, p["adv"], p["mask"]).backward()
    h = p["hidden"].clone().requires_grad_()
    lp, ent = chunked_linear_logprob(h, p["weight"], p["targets"], chunk_size=30)
    pg_loss(lp, ent, p["adv"], p["mask"]).backward()
    ref = fp32_reference(p, 1.0)
    assert_close(w.grad, ref[3], 2e-5, "grad_weight alone")
    assert_close(h.grad, ref[2], 2e-5, "grad_hidden alone")


def test_reference_impl_and_shapes_and_errors():
    p = make_problem((2, 6), 8, 50, torch.float32)
    lp, ent = token_logprobs(p["hidden"], p["weight"], p["targets"], impl="reference")
    assert lp.shape == ent.shape == (2, 6)
    with pytest.raises(ValueError, match="unknown logprob impl 'fast'"):
        token_logprobs(p["hidden"], p["weight"], p["targets"], impl="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="targets"):
        token_logprobs(p["hidden"], p["weight"], p["targets"][:, :-1])
    with pytest.raises(ValueError, match="hidden size"):
        token_logprobs(p["hidden"][..., :4], p["weight"], p["targets"])


def test_auto_is_chunked_on_every_device_and_chunk_sizes_stay_bounded():
    assert resolve_impl("auto", torch.device("cpu")) == "chunked"
    # the fused kernel has not yet run compiled on a GPU: auto does not pick it there either
    assert resolve_impl("auto", torch.device("cuda")) == "chunked"
    assert resolve_impl("fused", torch.device("cuda")) == "fused"
    assert resolve_impl("reference", torch.device(DEVICE)) == "reference"
    assert default_chunk_size(256, 152064) * 256 == 2**20
    assert default_chunk_size(2048, 152064) == 2048
    assert default_chunk_size(2048, 152064, "cuda") * 2048 == 2**25
    assert default_chunk_size(10, 1000) == 1000
