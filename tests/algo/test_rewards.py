"""DAPO's soft overlong penalty and overlong filter against a naive per-sample loop."""

import pytest
import torch

from rlcore.algo.rewards import overlong_filter_mask, overlong_penalty


def naive_penalty(n, max_len, cache):
    if n <= max_len - cache:
        return 0.0
    if n <= max_len:
        return (max_len - cache - n) / cache
    return -1.0


@pytest.mark.parametrize("max_len,cache", [(20, 4), (16, 16), (10, 1)])
def test_overlong_penalty_matches_the_dapo_formula(max_len, cache):
    lengths = list(range(0, max_len + 4))
    got = overlong_penalty(torch.tensor(lengths), max_len, cache)
    for n, p in zip(lengths, got.tolist(), strict=True):
        assert p == pytest.approx(naive_penalty(n, max_len, cache))
    assert got.min() == -1 and got.max() == 0
    assert torch.all(got[1:] <= got[:-1])  # never rewards length


def test_overlong_penalty_zero_cache_is_a_hard_cliff_and_bad_args_raise():
    got = overlong_penalty(torch.tensor([5, 10, 11]), 10, 0)
    assert got.tolist() == [0.0, 0.0, -1.0]
    with pytest.raises(ValueError, match="cache_len"):
        overlong_penalty(torch.tensor([1]), 4, 5)


def test_overlong_filter_drops_truncated_rows_from_the_loss():
    truncated = torch.tensor([False, True, False])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert overlong_filter_mask(truncated).tolist() == [1.0, 0.0, 1.0]
    got = overlong_filter_mask(truncated, mask)
    for b in range(3):
        for t in range(3):
            assert got[b, t].item() == (0.0 if truncated[b] else mask[b, t].item())
