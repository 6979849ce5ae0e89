"""The algorithm strategy objects: each is its pure functions, chosen by name, and its aggregation
over micro-batches with global denominators equals the whole batch's loss."""

import pytest
import torch

from rlcore.algo import ALGORITHMS, GRPO, GSPO, RLOO, DrGRPO, ReinforcePP, make_algorithm
from rlcore.algo.advantages import (
    drgrpo_advantages,
    grpo_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
)
from rlcore.algo.policy_loss import aggregate, clipped_surrogate, gspo_loss


def _rewards(n: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, generator=g) > 0.5).float() + 0.1 * torch.rand(n, generator=g)


@pytest.mark.parametrize(
    "algo, reference",
    [
        (GRPO(group_size=4), lambda r: grpo_advantages(r, 4, True)),
        (DrGRPO(group_size=4), lambda r: drgrpo_advantages(r, 4)),
        (RLOO(group_size=4), lambda r: rloo_advantages(r, 4)),
        (GSPO(group_size=4), lambda r: grpo_advantages(r, 4, True)),
    ],
)
def test_each_algorithm_uses_its_estimator(algo, reference):
    r = _rewards()
    assert torch.allclose(algo.advantages(r), reference(r))


@pytest.mark.parametrize("baseline", [True, False])
def test_reinforce_pp_whitens_over_tokens(baseline):
    r = _rewards()
    mask = torch.zeros(16, 5)
    for i in range(16):
        mask[i, : 1 + i % 5] = 1  # ragged: a response weighs by its loss tokens
    adv, _ = ReinforcePP(group_size=4, group_baseline=baseline).estimate(r, mask)
    want = reinforce_pp_advantages(r, 4 if baseline else None, mask=mask)
    assert torch.allclose(adv, want)
    assert not torch.allclose(adv, reinforce_pp_advantages(r, 4 if baseline else None))


def test_policy_losses_and_defaults():
    torch.manual_seed(0)
    lp, old = torch.randn(4, 6) * 0.01, torch.randn(4, 6) * 0.01
    adv, mask = torch.randn(4), (torch.rand(4, 6) > 0.3).float()
    loss, _ = GSPO(group_size=2).policy_loss(lp, old, adv, mask)
    assert torch.allclose(loss, gspo_loss(lp, old, adv, mask, 3e-4, 4e-4)[0])
    loss, _ = GRPO(group_size=2, clip_high=0.28, dual_clip=3.0).policy_loss(lp, old, adv, mask)
    assert torch.allclose(loss, clipped_surrogate(lp, old, adv, 0.2, 0.28, 3.0)[0])
    assert DrGRPO(group_size=2).loss_agg == "seq-mean-token-sum"
    assert GSPO(group_size=2).loss_agg == "seq-mean-token-mean"
    assert GRPO(group_size=2).loss_agg == "token-mean"


@pytest.mark.parametrize(
    "lengths", [[8, 3, 5, 1, 7, 2], [8, 0, 5, 1, 0, 2]], ids=["ragged", "empty"]
)
@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_micro_batches_sum_to_the_whole_batch_loss(name, lengths):
    """Rows with no loss token (overlong_filter) count in no denominator: the sequence count the
    driver passes (step._update_minibatch) is that of rows with a loss token."""
    from rlcore.step import loss_rows

    algo = make_algorithm(name, group_size=2, max_tokens=8)  # Dr. GRPO's constant: max_tokens
    torch.manual_seed(1)
    token_loss = torch.randn(6, 8)
    mask = torch.zeros(6, 8)
    for i, n in enumerate(lengths):  # ragged responses, some with no loss token
        mask[i, :n] = 1
    whole = aggregate(token_loss, mask, algo.loss_agg, 8.0)
    tokens, seqs = float(mask.sum()), loss_rows(mask)  # what the driver gives the learners
    parts = sum(
        algo.aggregate(token_loss[s : s + 2], mask[s : s + 2], tokens, seqs) for s in (0, 2, 4)
    )
    assert parts.item() == pytest.approx(whole.item(), rel=1e-5, abs=1e-7)


def test_make_algorithm_errors_name_the_option():
    with pytest.raises(ValueError, match="unknown algo.type 'trpo'"):
        make_algorithm("trpo", group_size=2)
    with pytest.raises(ValueError, match="algo.type=grpo has no option gamma"):
        make_algorithm("grpo", group_size=2, gamma=0.9)
    with pytest.raises(ValueError, match="algo.type=grpo has no option group_baseline"):
        make_algorithm("grpo", group_size=2, group_baseline=True)
    # None means "the algorithm's default"
    assert make_algorithm("gspo", group_size=2, clip_low=None).clip_low == 3e-4


@pytest.mark.parametrize(
    "name, option, value, message",
    [
        ("drgrpo", "std_normalize", True, "algo.type=drgrpo does not use std_normalize"),
        ("rloo", "std_normalize", False, "algo.type=rloo does not use std_normalize"),
        ("reinforce_pp", "std_normalize", True, "does not use std_normalize"),
        ("ppo", "std_normalize", True, "algo.type=ppo does not use std_normalize"),
        ("gspo", "dual_clip", 3.0, "algo.type=gspo does not use dual_clip"),
        ("grpo", "loss_agg", "seq-sum", "loss_agg 'seq-sum' is not one of token-mean"),
        ("grpo", "loss_agg_constant", 512.0, "algo.type=grpo aggregates by token-mean"),
        ("grpo", "max_sample_rounds", 3, "max_sample_rounds limits dynamic sampling"),
        ("grpo", "dual_clip", 0.5, "dual_clip must be > 1"),
        ("grpo", "kl_placement", "both", "kl_placement 'both' is not loss or reward"),
    ],
)
def test_an_option_the_algorithm_would_ignore_is_an_error(name, option, value, message):
    with pytest.raises(ValueError, match=message):
        make_algorithm(name, group_size=2, **{option: value})


def test_options_that_are_used_are_accepted():
    assert make_algorithm("grpo", group_size=2, std_normalize=False).std_normalize is False
    assert make_algorithm("drgrpo", group_size=2, loss_agg_constant=512.0).loss_agg_constant == 512
    assert make_algorithm("dapo", group_size=2, max_sample_rounds=2).max_sample_rounds == 2
    assert make_algorithm("ppo", group_size=2, dual_clip=3.0).dual_clip == 3.0


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_zero_advantage_rows_give_no_gradient_exactly_where_they_are_called_inert(name):
    """Where an algorithm says a row with zero advantage is inert, its loss has exactly zero
    gradient on that row; a KL or entropy term in the loss makes such rows matter."""
    algo = make_algorithm(name, group_size=4)
    torch.manual_seed(0)
    logprob = (torch.randn(4, 6) * 0.1 - 1.0).requires_grad_()
    old = logprob.detach() + torch.randn(4, 6) * 0.05
    mask = torch.ones(4, 6)
    adv = torch.zeros(4)
    ref = logprob.detach() + 0.3
    token_loss, _ = algo.token_loss(logprob, old, adv, -logprob.detach(), ref, mask, None)
    algo.aggregate(token_loss, mask, float(mask.sum()), 4.0).backward()
    assert logprob.grad is not None
    if algo.zero_advantage_rows_are_inert:
        assert torch.equal(logprob.grad, torch.zeros_like(logprob.grad))
    assert not make_algorithm(name, group_size=4, kl_coef=0.1).zero_advantage_rows_are_inert
    assert not make_algorithm(name, group_size=4, entropy_coef=0.01).zero_advantage_rows_are_inert


def test_every_algo_key_reaches_an_algorithm_or_the_loop():
    """build_algorithm passes the `algo` section whole, less LOOP_KEYS: each other key must be an
    option of some algorithm (else setting it would be refused for all of them)."""
    import dataclasses

    from rlcore.algo import LOOP_KEYS, build_algorithm
    from rlcore.config import AlgoConfig, load_config

    keys = {f.name for f in dataclasses.fields(AlgoConfig)}
    options = {f.name for cls in ALGORITHMS.values() for f in dataclasses.fields(cls)}
    assert LOOP_KEYS <= keys and keys - LOOP_KEYS <= options
    for name in ALGORITHMS:  # every algorithm builds from the defaults
        cfg = load_config(None, [f"algo.type={name}", "rollout.max_turns=2"])
        algo = build_algorithm(cfg)
        assert type(algo) is ALGORITHMS[name] and algo.group_size == cfg.rollout.n
        assert algo.max_tokens == 2 * cfg.rollout.max_tokens
