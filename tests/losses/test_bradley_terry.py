"""protege.losses.bradley_terry against plain-Python references (one pair at a time, math module)."""

import math

import pytest
import torch

from protege.losses.bradley_terry import bradley_terry_loss, prefix_pair_scores, step_rewards


def naive_nll(pairs: list[tuple[float, float]], weights: list[float]) -> float:
    total = sum(w * -math.log(1 / (1 + math.exp(-(b - s)))) for (b, s), w in zip(pairs, weights))
    return total / sum(weights)


def test_loss_and_gradients_match_a_per_pair_reference():
    g = torch.Generator().manual_seed(0)
    better = (torch.randn(40, generator=g) * 2).requires_grad_()
    worse = (torch.randn(40, generator=g) * 2).requires_grad_()
    weight = torch.rand(40, generator=g) + 0.1
    loss, m = bradley_terry_loss(better, worse, weight)
    loss.backward()
    pairs, w = list(zip(better.tolist(), worse.tolist())), weight.tolist()
    assert loss.item() == pytest.approx(naive_nll(pairs, w), rel=1e-5)
    # d/db of -w log sigma(b - s) / W = -w (1 - sigma(b - s)) / W; d/ds is its negative
    W = sum(w)
    for i, (b, s) in enumerate(pairs):
        expected = -w[i] * (1 - 1 / (1 + math.exp(-(b - s)))) / W
        assert better.grad[i].item() == pytest.approx(expected, rel=1e-4, abs=1e-7)
        assert worse.grad[i].item() == pytest.approx(-expected, rel=1e-4, abs=1e-7)
    right = sum(wi * ((b > s) + 0.5 * (b == s)) for (b, s), wi in zip(pairs, w)) / W
    assert m["bt/accuracy"].item() == pytest.approx(right, rel=1e-5)


def test_unweighted_loss_is_the_plain_mean():
    better, worse = torch.tensor([1.0, -2.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    loss, m = bradley_terry_loss(better, worse)
    assert loss.item() == pytest.approx(naive_nll([(1, 0), (-2, 1), (0, 0)], [1, 1, 1]), rel=1e-6)
    assert m["bt/accuracy"].item() == pytest.approx((1 + 0 + 0.5) / 3)


def test_prefix_pairs_order_by_mark_kind():
    u = torch.tensor([[0.0, 1.0, 2.0, 3.0], [5.0, 4.0, 3.0, 2.0]])
    episode, earlier, later = torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), torch.tensor([3, 2, 3])
    progress = torch.tensor([True, False, True])
    better, worse = prefix_pair_scores(u, episode, earlier, later, progress)
    assert better.tolist() == [3.0, 5.0, 2.0]
    assert worse.tolist() == [0.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="earlier < later"):
        prefix_pair_scores(u, episode, later, earlier, progress)


def test_step_rewards_telescope():
    u = torch.randn(3, 9, generator=torch.Generator().manual_seed(1))
    r = step_rewards(u)
    assert r.shape == (3, 8)
    assert torch.allclose(r.sum(-1), u[:, -1] - u[:, 0], atol=1e-6)


def test_learned_utility_is_monotone_in_progress_on_a_toy_chain():
    # A chain of 8 states; true progress is the index. Marks: progress between random i < j.
    g = torch.Generator().manual_seed(2)
    utility = torch.zeros(1, 8, requires_grad=True)
    opt = torch.optim.Adam([utility], lr=0.1)
    for _ in range(300):
        earlier = torch.randint(0, 7, (32,), generator=g)
        later = earlier + 1 + (torch.rand(32, generator=g) * (7 - earlier)).long()
        better, worse = prefix_pair_scores(utility, torch.zeros(32, dtype=torch.long), earlier,
                                           later.clamp(max=7), torch.ones(32, dtype=torch.bool))
        loss, _ = bradley_terry_loss(better, worse)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert bool((step_rewards(utility.detach()) > 0).all())
