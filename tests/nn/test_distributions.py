"""protege.nn.distributions against plain-Python references (math module, one number at a time)."""

import math

import numpy as np
import pytest
import torch

from protege.nn.distributions import (
    bounded_log_std,
    diag_gaussian_log_prob,
    gaussian_mixture_log_prob,
    standard_stats,
    standardise,
    stats_buffer,
    tanh_gaussian_sample,
)


def normal_logpdf(x: float, mean: float, std: float) -> float:
    return -((x - mean) ** 2) / (2 * std**2) - math.log(std) - 0.5 * math.log(2 * math.pi)


def test_diag_gaussian_log_prob_matches_a_loop_over_dimensions():
    g = torch.Generator().manual_seed(0)
    x, mean, log_std = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g), 0.5 * torch.randn(5, 3, generator=g)
    out = diag_gaussian_log_prob(x, mean, log_std)
    assert out.shape == (5,)
    for b in range(5):
        naive = sum(normal_logpdf(x[b, d].item(), mean[b, d].item(), math.exp(log_std[b, d].item())) for d in range(3))
        assert out[b].item() == pytest.approx(naive, rel=1e-5, abs=1e-5)


def test_mixture_log_prob_matches_a_loop_over_components():
    g = torch.Generator().manual_seed(1)
    logits, mean = torch.randn(4, 3, generator=g), torch.randn(4, 3, 2, generator=g)
    log_std, x = 0.3 * torch.randn(4, 3, 2, generator=g), torch.randn(4, 2, generator=g)
    out = gaussian_mixture_log_prob(logits, mean, log_std, x)
    for b in range(4):
        weights = [math.exp(v) for v in logits[b].tolist()]
        total = 0.0
        for k in range(3):
            log_n = sum(normal_logpdf(x[b, d].item(), mean[b, k, d].item(), math.exp(log_std[b, k, d].item()))
                        for d in range(2))
            total += weights[k] / sum(weights) * math.exp(log_n)
        assert out[b].item() == pytest.approx(math.log(total), rel=1e-5, abs=1e-5)
    # one component is the plain diagonal Gaussian
    single = gaussian_mixture_log_prob(torch.zeros(4, 1), mean[:, :1], log_std[:, :1], x)
    assert torch.allclose(single, diag_gaussian_log_prob(x, mean[:, 0], log_std[:, 0]), atol=1e-6)


def test_tanh_gaussian_log_prob_is_the_change_of_variables_formula():
    """log pi(a) = log N(u; mean, std) - sum_d log(1 - tanh(u_d)^2) with u = mean + std * eps, per element."""
    g = torch.Generator().manual_seed(2)
    mean, log_std, eps = torch.randn(6, 2, generator=g), 0.5 * torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
    action, log_prob = tanh_gaussian_sample(mean.double(), log_std.double(), eps.double())
    for b in range(6):
        naive = 0.0
        for d in range(2):
            m, s, e = mean[b, d].item(), math.exp(log_std[b, d].item()), eps[b, d].item()
            u = m + s * e
            assert action[b, d].item() == pytest.approx(math.tanh(u), abs=1e-12)
            naive += normal_logpdf(u, m, s) - math.log(1 - math.tanh(u) ** 2)
        assert log_prob[b].item() == pytest.approx(naive, rel=1e-9, abs=1e-9)


def test_tanh_gaussian_log_prob_is_the_density_of_its_own_samples():
    """Monte Carlo: the fraction of 400k draws falling in each bin of [-1, 1] equals the integral of
    exp(log pi) over that bin (log pi evaluated at a fine grid of actions through the same function)."""
    mean, log_std = torch.tensor([[0.4]], dtype=torch.float64), torch.tensor([[-0.3]], dtype=torch.float64)
    torch.manual_seed(0)
    draws, _ = tanh_gaussian_sample(mean.expand(400_000, 1), log_std.expand(400_000, 1))
    edges = np.linspace(-0.98, 0.98, 15)
    counts, _ = np.histogram(draws.numpy()[:, 0], bins=edges)
    grid = torch.linspace(-0.98, 0.98, 14 * 400 + 1, dtype=torch.float64)
    eps = (torch.atanh(grid) - mean[0, 0]) / log_std.exp()[0, 0]  # the draw that lands on each grid action
    _, log_pdf = tanh_gaussian_sample(mean.expand(len(grid), 1), log_std.expand(len(grid), 1), eps[:, None])
    pdf = log_pdf.exp().numpy()
    for i in range(14):
        seg = slice(i * 400, (i + 1) * 400 + 1)
        mass = np.trapezoid(pdf[seg], grid.numpy()[seg])
        assert abs(counts[i] / 400_000 - mass) < 4 * math.sqrt(mass / 400_000) + 1e-4, (i, counts[i] / 400_000, mass)


def test_bounded_log_std_smooth_and_clipped():
    raw = torch.tensor([-100.0, -1.0, 0.0, 0.7, 100.0])
    smooth = bounded_log_std(raw, -5.0, 2.0)
    for r, s in zip(raw.tolist(), smooth.tolist()):
        assert s == pytest.approx(-5.0 + 3.5 * (math.tanh(r) + 1), abs=1e-6)
    assert smooth.min() >= -5.0 and smooth.max() <= 2.0
    clipped = bounded_log_std(raw, -5.0, 2.0, smooth=False)
    assert clipped.tolist() == [-5.0, -1.0, 0.0, pytest.approx(0.7), 2.0]


def test_standardiser_uses_floored_statistics():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]], np.float32)
    mean, std = standard_stats(x, floor=1e-3)
    assert mean.tolist() == [3.0, 5.0] and std[0] == pytest.approx(math.sqrt(8 / 3)) and std[1] == 1e-3
    z = standardise(torch.from_numpy(x), stats_buffer(mean, 2, 0.0), stats_buffer(std, 2, 1.0))
    assert z[:, 0].tolist() == pytest.approx([(v - 3) / math.sqrt(8 / 3) for v in (1, 3, 5)])
    assert z[:, 1].tolist() == [0.0, 0.0, 0.0]
    assert stats_buffer(None, 3, 1.0).tolist() == [1.0, 1.0, 1.0]
