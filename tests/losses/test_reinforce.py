import math

import torch

from protege.losses.reinforce import reinforce_loss


def naive(logits, choices, returns, baseline, episode, ent_coef):
    total, ent = 0.0, 0.0
    for row, c, e in zip(logits.tolist(), choices.tolist(), episode.tolist()):
        z = sum(math.exp(v) for v in row)
        logp = [v - math.log(z) for v in row]
        total += -(returns[e].item() - baseline) * logp[c]
        ent += -sum(math.exp(lp) * lp for lp in logp)
    return total / len(returns) - ent_coef * ent / len(choices)


def test_matches_naive_reference():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 5, generator=g)
    choices = torch.randint(0, 5, (7,), generator=g)
    episode = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    returns = torch.tensor([1.0, 0.0, 0.7])
    loss, _ = reinforce_loss(logits, choices, returns, 0.4, episode, ent_coef=0.05)
    assert abs(loss.item() - naive(logits, choices, returns, 0.4, episode, 0.05)) < 1e-5


def test_gradient_raises_rewarded_choice():
    logits = torch.zeros(2, 3, requires_grad=True)
    loss, _ = reinforce_loss(logits, torch.tensor([1, 2]), torch.tensor([1.0, 0.0]), 0.5,
                             torch.tensor([0, 1]))
    loss.backward()
    assert logits.grad[0, 1] < 0 < logits.grad[1, 2]  # descent raises 1 in episode 0, lowers 2 in 1
