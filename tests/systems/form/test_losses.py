import math

import torch

from protege.losses.bc_gaussian import gaussian_nll_loss
from protege.losses.form import density_nll_loss, form_reward


def normal_logp(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def test_form_reward_sign_on_a_1d_system_with_known_densities():
    """Expert: o' = o + 1 + N(0, .1). Agent: half its transitions do the same, half go o' = o - 1.
    log p_E - log p_A is log 2 > 0 on expert-like transitions and very negative on the others."""
    torch.manual_seed(0)
    o = torch.rand(2000) * 4 - 2
    step = torch.where(torch.arange(2000) % 2 == 0, 1.0, -1.0)
    o_next = o + step + 0.1 * torch.randn(2000)
    log_p_e = normal_logp(o_next, o + 1, 0.1)
    log_p_a = torch.logsumexp(torch.stack([normal_logp(o_next, o + 1, 0.1), normal_logp(o_next, o - 1, 0.1)]), 0) \
        - math.log(2)
    reward, metrics = form_reward(log_p_e, log_p_a)
    matches = step > 0
    assert (reward[matches] > 0).all() and torch.allclose(reward[matches], torch.tensor(math.log(2)), atol=1e-3)
    assert (reward[~matches] < -50).all()
    clipped, m = form_reward(log_p_e, log_p_a, clip=10.0)
    assert clipped.min() == -10.0 and abs(m["form/reward_clipped_frac"].item() - 0.5) < 1e-6


def test_form_reward_refuses_nan():
    import pytest
    with pytest.raises(FloatingPointError, match="non-finite"):
        form_reward(torch.tensor([0.0, float("nan")]), torch.zeros(2))


def test_density_nll_matches_naive_mean():
    log_p = torch.randn(17)
    loss, _ = density_nll_loss(log_p)
    assert torch.isclose(loss, -sum(log_p.tolist()) / 17 * torch.ones(()), atol=1e-6)


def test_gaussian_nll_matches_torch_distributions():
    mean, log_std, act = torch.randn(10, 3), torch.randn(10, 3) * 0.5, torch.randn(10, 3)
    loss, _ = gaussian_nll_loss(mean, log_std, act)
    ref = -torch.distributions.Normal(mean, log_std.exp()).log_prob(act).sum(-1).mean()
    assert torch.isclose(loss, ref, atol=1e-5)


def test_gaussian_mixture_log_prob_matches_torch_distributions():
    from protege.losses.form import mixture_nll_loss
    from protege.nn.distributions import gaussian_mixture_log_prob
    torch.manual_seed(0)
    logits, mean, log_std, x = torch.randn(7, 3), torch.randn(7, 3, 2), 0.3 * torch.randn(7, 3, 2), torch.randn(7, 2)
    dist = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=logits),
        torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1))
    assert torch.allclose(gaussian_mixture_log_prob(logits, mean, log_std, x), dist.log_prob(x), atol=1e-5)
    loss, metrics = mixture_nll_loss(logits, mean, log_std, x)
    assert torch.allclose(loss, -dist.log_prob(x).mean(), atol=1e-5) and "form/nll" in metrics
