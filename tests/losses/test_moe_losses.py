"""Router losses against naive per-token Python references, and the three transformers bugs."""

import math

import pytest
import torch

from protege.losses.moe import (expert_load, load_balancing_loss, loss_free_bias_update, max_violation,
                                router_z_loss)


def naive_balancing(logits, picks, mask):
    """Switch eqs. 4-6, one token at a time in plain Python, skipping masked tokens."""
    rows = [t for t in range(len(mask)) if mask[t]]
    experts, k = len(logits[0]), len(picks[0])
    total = 0.0
    for i in range(experts):
        f = sum(1 for t in rows for e in picks[t] if e == i) / (k * len(rows))
        p = sum(math.exp(logits[t][i]) / sum(math.exp(x) for x in logits[t]) for t in rows) / len(rows)
        total += f * p
    return experts * total


def routed(n=12, experts=4, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, experts, generator=g)
    picks = logits.topk(k, dim=-1).indices
    return logits, picks


def test_balancing_loss_equals_the_naive_reference_with_padding_excluded():
    logits, picks = routed()
    mask = torch.tensor([True] * 9 + [False] * 3)
    got = load_balancing_loss(logits, picks, mask)
    assert got.item() == pytest.approx(naive_balancing(logits.tolist(), picks.tolist(), mask.tolist()), rel=1e-6)


def test_padding_rows_do_not_change_the_loss_whatever_they_hold():
    """transformers #28505: padding tokens were counted in the balancing loss."""
    logits, picks = routed(n=8)
    real = torch.ones(8, dtype=torch.bool)
    alone = load_balancing_loss(logits, picks, real)
    for seed in range(3):
        pad_logits, pad_picks = routed(n=5, seed=10 + seed)
        pad_logits = pad_logits * 10  # padding routed anywhere, confidently
        both = load_balancing_loss(torch.cat([logits, pad_logits]), torch.cat([picks, pad_picks]),
                                   torch.cat([real, torch.zeros(5, dtype=torch.bool)]))
        assert both.item() == pytest.approx(alone.item(), rel=1e-6)
        assert router_z_loss(torch.cat([logits, pad_logits]), torch.cat([real, torch.zeros(5, dtype=torch.bool)])
                             ).item() == pytest.approx(router_z_loss(logits, real).item(), rel=1e-6)
    # and counting padding (what the bug did) would have changed it
    counted = load_balancing_loss(torch.cat([logits, pad_logits]), torch.cat([picks, pad_picks]),
                                  torch.ones(13, dtype=torch.bool))
    assert abs(counted.item() - alone.item()) > 1e-3


def test_formula_scale_uniform_is_one_collapse_is_num_experts_and_it_is_not_constant():
    """transformers #28255 / #28093: a wrong reduction made the loss constant in the routing."""
    experts, n = 4, 8  # two experts picked per token
    uniform_logits = torch.zeros(n, experts)
    uniform_picks = torch.tensor([[(2 * t) % 4, (2 * t + 1) % 4] for t in range(n)])
    mask = torch.ones(n, dtype=torch.bool)
    assert load_balancing_loss(uniform_logits, uniform_picks, mask).item() == pytest.approx(1.0)
    collapsed_logits = torch.tensor([[50.0, 40.0, 0.0, 0.0]]).repeat(n, 1)
    collapsed_picks = torch.tensor([[0, 1]]).repeat(n, 1)
    # half of the assignments to each of experts 0 and 1; all probability on expert 0
    assert load_balancing_loss(collapsed_logits, collapsed_picks, mask).item() == pytest.approx(experts * 0.5, rel=1e-3)
    single = load_balancing_loss(collapsed_logits, torch.tensor([[0]]).repeat(n, 1), mask)
    assert single.item() == pytest.approx(experts, rel=1e-3)
    # the gradient pushes probability away from the overloaded expert
    logits = torch.randn(n, experts, requires_grad=True)
    load_balancing_loss(logits, torch.tensor([[0, 1]]).repeat(n, 1), mask).backward()
    assert (logits.grad[:, 0] > 0).all() and (logits.grad[:, 2] < 0).all()


def test_per_layer_losses_do_not_cancel_across_layers():
    """transformers #28255 (comments): concatenating layers lets opposite imbalances cancel."""
    n, mask = 8, torch.ones(8, dtype=torch.bool)
    layer_a = (torch.tensor([[5.0, 5.0, 0.0, 0.0]]).repeat(n, 1), torch.tensor([[0, 1]]).repeat(n, 1))
    layer_b = (torch.tensor([[0.0, 0.0, 5.0, 5.0]]).repeat(n, 1), torch.tensor([[2, 3]]).repeat(n, 1))
    per_layer = (load_balancing_loss(*layer_a, mask) + load_balancing_loss(*layer_b, mask)) / 2
    concatenated = load_balancing_loss(torch.cat([layer_a[0], layer_b[0]]), torch.cat([layer_a[1], layer_b[1]]),
                                       torch.ones(2 * n, dtype=torch.bool))
    assert per_layer.item() > 1.9 and concatenated.item() < 1.01


def test_z_loss_equals_the_naive_reference():
    logits, _ = routed()
    mask = torch.tensor([True, False] * 6)
    naive = [math.log(sum(math.exp(x) for x in row)) ** 2 for row, keep in zip(logits.tolist(), mask) if keep]
    assert router_z_loss(logits, mask).item() == pytest.approx(sum(naive) / len(naive), rel=1e-6)


def test_expert_load_counts_assignments_of_real_tokens_only():
    picks = torch.tensor([[0, 1], [1, 2], [3, 1]])
    load = expert_load(picks, torch.tensor([True, True, False]), 4)
    assert load.tolist() == [1.0, 2.0, 1.0, 0.0]
    assert max_violation(load).item() == pytest.approx((2 - 1) / 1)


def test_bias_update_moves_each_expert_by_rate_toward_the_mean_load():
    bias = torch.tensor([0.0, 0.1, -0.2, 0.0])
    load = torch.tensor([10.0, 2.0, 4.0, 4.0])  # mean 5
    new = loss_free_bias_update(bias, load, rate=0.01)
    assert new.tolist() == pytest.approx([-0.01, 0.11, -0.19, 0.01])
    equal = loss_free_bias_update(bias, torch.full((4,), 3.0), rate=0.01)
    assert torch.equal(equal, bias)  # balanced: sign(0) = 0, no change
