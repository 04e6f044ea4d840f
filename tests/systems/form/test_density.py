import numpy as np
import pytest
import torch

from protege.nn.density import ConditionalGaussian, DensityDivergence
from protege.rl.rewards import fit_density


def test_recovers_a_known_gaussian_transition():
    """o' = o + (0.3 - 0.5 o) + N(0, diag(0.2, 0.05)^2): the fitted mean and std must match."""
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (4000, 2)).astype(np.float32)
    std = np.array([0.2, 0.05], np.float32)
    nxt = (obs + 0.3 - 0.5 * obs + rng.normal(0, 1, obs.shape) * std).astype(np.float32)
    torch.manual_seed(0)
    model = ConditionalGaussian(2, hidden=64, **ConditionalGaussian.stats(obs, nxt))
    fit_density(model, obs, nxt, steps=1500, lr=3e-3)
    probe = torch.tensor([[-0.8, 0.5], [0.0, 0.0], [0.6, -0.4]])
    with torch.no_grad():
        mean, log_std = model(probe)
    pred_delta = mean * model.delta_std
    pred_std = log_std.exp() * model.delta_std
    true_delta = 0.3 - 0.5 * probe
    assert torch.allclose(pred_delta, true_delta, atol=0.05)
    assert torch.allclose(pred_std, torch.tensor(std).expand(3, 2), rtol=0.25)
    # and its average log-likelihood is close to the true conditional entropy's negative
    true_ll = float(-(np.log(std) + 0.5 * np.log(2 * np.pi) + 0.5).sum())
    ll = model.log_prob(torch.from_numpy(obs), torch.from_numpy(nxt)).mean().item()
    assert abs(ll - true_ll) < 0.15


def test_learned_form_reward_has_the_right_sign():
    """Fit p_E on expert steps (+1) and p_A on a half-expert agent; reward > 0 only on expert-like steps."""
    from protege.losses.form import form_reward
    rng = np.random.default_rng(1)
    o = rng.uniform(-2, 2, (3000, 1)).astype(np.float32)
    expert_next = (o + 1 + 0.1 * rng.normal(size=o.shape)).astype(np.float32)
    step = np.where(rng.random((3000, 1)) < 0.5, 1.0, -1.0)
    agent_next = (o + step + 0.1 * rng.normal(size=o.shape)).astype(np.float32)
    stats = ConditionalGaussian.stats(o, expert_next)
    torch.manual_seed(0)
    p_e, p_a = ConditionalGaussian(1, 64, **stats), ConditionalGaussian(1, 64, **stats)
    fit_density(p_e, o, expert_next, 800, lr=3e-3)
    fit_density(p_a, o, agent_next, 800, lr=3e-3)
    ot, nt = torch.from_numpy(o), torch.from_numpy(agent_next)
    with torch.no_grad():
        reward, _ = form_reward(p_e.log_prob(ot, nt), p_a.log_prob(ot, nt))
    good = torch.from_numpy(step[:, 0] > 0)
    assert reward[good].median() > 0 and reward[~good].median() < 0


def test_log_std_is_bounded_and_nan_is_refused():
    model = ConditionalGaussian(3, 16, log_std_min=-4, log_std_max=1)
    with torch.no_grad():
        model.net[-1].bias.fill_(1e6)
        _, log_std = model(torch.zeros(2, 3))
    assert log_std.max() <= 1.0 + 1e-6
    with pytest.raises(DensityDivergence, match="non-finite"):
        model.log_prob(torch.full((2, 3), float("nan")), torch.zeros(2, 3))


def test_mixture_recovers_a_known_bimodal_transition():
    """o' = o + s * 0.5 + N(0, 0.05^2) with s = +-1 at random: a 2-component mixture finds both modes
    (means near +-0.5, weights near 1/2, std near 0.05) and beats the single Gaussian's likelihood."""
    from protege.nn.density import ConditionalMixture
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (4000, 1)).astype(np.float32)
    sign = rng.choice([-1.0, 1.0], size=(4000, 1))
    nxt = (obs + 0.5 * sign + rng.normal(0, 0.05, obs.shape)).astype(np.float32)
    stats = ConditionalGaussian.stats(obs, nxt)
    torch.manual_seed(0)
    mixture = ConditionalMixture(1, hidden=32, components=2, **stats)
    gaussian = ConditionalGaussian(1, hidden=32, **stats)
    for model in (mixture, gaussian):
        fit_density(model, obs, nxt, steps=800, lr=3e-3)
    probe = torch.tensor([[-0.5], [0.0], [0.7]])
    with torch.no_grad():
        logits, mean, log_std = mixture(probe)
    means = (mean[..., 0] * mixture.delta_std).sort(-1).values
    assert torch.allclose(means, torch.tensor([-0.5, 0.5]).expand(3, 2), atol=0.05)
    assert torch.allclose(logits.softmax(-1), torch.full((3, 2), 0.5), atol=0.1)
    assert torch.allclose(log_std.exp() * mixture.delta_std, torch.full((3, 2, 1), 0.05), rtol=0.3)
    o, n = torch.from_numpy(obs), torch.from_numpy(nxt)
    with torch.no_grad():
        ll_mixture, ll_gaussian = mixture.log_prob(o, n).mean().item(), gaussian.log_prob(o, n).mean().item()
    true_ll = float(np.log(0.5) - np.log(0.05) - 0.5 * np.log(2 * np.pi) - 0.5)  # modes ~20 std apart
    assert abs(ll_mixture - true_ll) < 0.15 and ll_mixture > ll_gaussian + 1.0
    assert mixture.sample(probe).shape == (3, 1)
