"""Dual-clip PPO, GSPO and loss aggregation against naive per-sample loops (random, ragged)."""

import math
import random

import pytest
import torch

from rlcore.algo.policy_loss import aggregate, clipped_surrogate, gspo_loss, token_mean


def ragged_mask(rng, B, T):
    lengths = [0 if b == 2 else rng.randint(1, T) for b in range(B)]
    return torch.tensor([[1.0] * n + [0.0] * (T - n) for n in lengths]), lengths


def naive_dual_clip(lp, old, adv, lo, hi, c):
    ratio = math.exp(lp - old)
    loss = -min(ratio * adv, min(max(ratio, 1 - lo), 1 + hi) * adv)
    return min(loss, -c * adv) if adv < 0 else loss


@pytest.mark.parametrize("per_token_adv", [False, True])
def test_dual_clip_matches_naive_loop(per_token_adv):
    torch.manual_seed(0)
    B, T, c = 8, 10, 3.0
    lp, old = torch.randn(B, T), torch.randn(B, T)  # wide ratios so the dual bound is hit
    adv = torch.randn(B, T) if per_token_adv else torch.randn(B)
    loss, clipped = clipped_surrogate(lp, old, adv, 0.2, 0.28, dual_clip=c)
    hits = 0
    for b in range(B):
        for t in range(T):
            a = adv[b, t].item() if per_token_adv else adv[b].item()
            want = naive_dual_clip(lp[b, t].item(), old[b, t].item(), a, 0.2, 0.28, c)
            assert loss[b, t].item() == pytest.approx(want, rel=1e-5, abs=1e-5)
            hits += a < 0 and math.exp(lp[b, t].item() - old[b, t].item()) > c
    assert hits > 0 and clipped.max() == 1


def test_dual_clip_off_by_default_and_only_touches_negative_advantages():
    lp, old = torch.tensor([[2.0, 2.0]]), torch.tensor([[0.0, 0.0]])  # ratio ~7.39
    adv = torch.tensor([[-1.0, 1.0]])
    plain, _ = clipped_surrogate(lp, old, adv)
    dual, clipped = clipped_surrogate(lp, old, adv, dual_clip=3.0)
    assert plain[0, 0].item() == pytest.approx(math.exp(2.0))  # unbounded without dual clip
    assert dual[0, 0].item() == pytest.approx(3.0) and clipped[0, 0] == 1
    assert dual[0, 1] == plain[0, 1]
    with pytest.raises(ValueError, match="> 1"):
        clipped_surrogate(lp, old, adv, dual_clip=1.0)


def naive_gspo_objective(lp, old, adv, lengths, lo, hi):
    """GSPO as written in the paper, one sequence at a time; returns the scalar loss."""
    seq_losses = []
    for b, n in enumerate(lengths):
        if n == 0:
            continue
        s = torch.exp(sum(lp[b, t] - old[b, t] for t in range(n)) / n)
        a = adv[b]
        seq_losses.append(-torch.minimum(s * a, s.clamp(1 - lo, 1 + hi) * a))
    return sum(seq_losses) / len(seq_losses)


def test_gspo_matches_the_paper_in_value_and_gradient():
    rng = random.Random(1)
    torch.manual_seed(1)
    B, T, lo, hi = 7, 9, 3e-4, 4e-4
    mask, lengths = ragged_mask(rng, B, T)
    old = torch.randn(B, T)
    lp = (old + torch.randn(B, T) * 1e-3).requires_grad_(True)
    adv = torch.randn(B)
    loss, clipped = gspo_loss(lp, old, adv, mask, lo, hi)
    # every token carries its sequence's loss; padding carries nothing
    ref_lp = lp.detach().clone().requires_grad_(True)
    for b, n in enumerate(lengths):
        s = math.exp(sum(lp[b, t].item() - old[b, t].item() for t in range(n)) / max(n, 1))
        a = adv[b].item()
        want = -min(s * a, min(max(s, 1 - lo), 1 + hi) * a)
        for t in range(T):
            assert loss[b, t].item() == pytest.approx(want if t < n else 0.0, abs=1e-6)
            assert clipped[b, t].item() == (t < n and min(max(s, 1 - lo), 1 + hi) * a < s * a)
    assert 0 < clipped.sum() < mask.sum()  # some sequences clipped, not all
    aggregate(loss, mask, "seq-mean-token-mean").backward()
    naive_gspo_objective(ref_lp, old, adv, lengths, lo, hi).backward()
    assert torch.allclose(lp.grad, ref_lp.grad, atol=1e-6)


def test_gspo_ratio_is_sequence_level_not_token_level():
    # two tokens whose log-ratios cancel: token ratios are far from 1, the sequence ratio is 1
    lp, old = torch.tensor([[0.5, -0.5]]), torch.zeros(1, 2)
    loss, clipped = gspo_loss(lp, old, torch.tensor([1.0]), torch.ones(1, 2))
    assert torch.allclose(loss, torch.tensor([[-1.0, -1.0]])) and clipped.sum() == 0


def naive_aggregate(vals, lengths, mode, constant=None):
    seqs = [[vals[b][t] for t in range(n)] for b, n in enumerate(lengths) if n > 0]
    if mode == "token-mean":
        return sum(sum(s) for s in seqs) / sum(len(s) for s in seqs)
    if mode == "seq-mean-token-mean":
        return sum(sum(s) / len(s) for s in seqs) / len(seqs)
    return sum(sum(s) / (constant or 1.0) for s in seqs) / len(seqs)


@pytest.mark.parametrize(
    "mode,constant",
    [
        ("token-mean", None),
        ("seq-mean-token-mean", None),
        ("seq-mean-token-sum", None),
        ("seq-mean-token-sum", 16.0),
    ],
)
def test_aggregate_matches_naive_on_ragged_masks(mode, constant):
    rng = random.Random(2)
    torch.manual_seed(2)
    B, T = 9, 12
    mask, lengths = ragged_mask(rng, B, T)
    vals = torch.randn(B, T)
    garbage = torch.where(mask > 0, vals, torch.full_like(vals, float("nan")))
    got = aggregate(garbage, mask, mode, constant)
    assert got.item() == pytest.approx(
        naive_aggregate(vals.tolist(), lengths, mode, constant), abs=1e-5
    )
    # micro-batches with global denominators sum to the whole-batch loss
    n_tok, n_seq = mask.sum().item(), sum(n > 0 for n in lengths)
    parts = sum(
        aggregate(
            garbage[i : i + 3], mask[i : i + 3], mode, constant, num_tokens=n_tok, num_seqs=n_seq
        )
        for i in range(0, B, 3)
    )
    assert parts.item() == pytest.approx(got.item(), abs=1e-5)


def test_aggregation_modes_differ_exactly_as_defined():
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    vals = torch.tensor([[1.0, 1.0, 1.0, 1.0], [5.0, 7.0, 7.0, 7.0], [9.0, 9.0, 9.0, 9.0]])
    tok = aggregate(vals, mask, "token-mean")
    smtm = aggregate(vals, mask, "seq-mean-token-mean")
    smts = aggregate(vals, mask, "seq-mean-token-sum")
    assert tok.item() == pytest.approx(9 / 5)  # (4 * 1 + 5) / 5 tokens
    assert smtm.item() == pytest.approx(3.0)  # (1 + 5) / 2 sequences
    assert smts.item() == pytest.approx(4.5)  # (4 + 5) / 2 sequences
    assert aggregate(vals, mask, "seq-mean-token-sum", 4.0).item() == pytest.approx(4.5 / 4)
    # token-mean * tokens == seq-mean-token-sum * sequences (both are the masked total)
    assert (tok * 5).item() == pytest.approx((smts * 2).item())
    assert tok.item() == pytest.approx(token_mean(vals, mask).item())
    # equal lengths L: all three agree up to the factor L
    full = torch.ones(3, 4)
    a, b, c = (
        aggregate(vals, full, m)
        for m in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")
    )
    assert a.item() == pytest.approx(b.item()) and c.item() == pytest.approx(4 * a.item())
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        aggregate(vals, mask, "sum")
