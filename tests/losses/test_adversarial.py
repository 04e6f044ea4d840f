"""protege.losses.adversarial against plain-Python references (one number at a time, math module)."""

import math

import pytest
import torch

from protege.losses.adversarial import (
    REWARDS,
    adversarial_reward,
    discriminator_loss,
    gradient_penalty,
    interpolate,
)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def naive_bce(expert: list[float], agent: list[float]) -> float:
    return (-sum(math.log(sigmoid(x)) for x in expert) / len(expert)
            - sum(math.log(1 - sigmoid(x)) for x in agent) / len(agent))


def test_discriminator_loss_and_metrics_match_naive_loops():
    g = torch.Generator().manual_seed(0)
    e, a = torch.randn(32, generator=g) * 3, torch.randn(48, generator=g) * 3
    loss, m = discriminator_loss(e, a)
    assert loss.item() == pytest.approx(naive_bce(e.tolist(), a.tolist()), rel=1e-5)
    expert_acc = sum(x > 0 for x in e.tolist()) / 32
    agent_acc = sum(x < 0 for x in a.tolist()) / 48
    assert m["adversarial/expert_acc"].item() == pytest.approx(expert_acc)
    assert m["adversarial/agent_acc"].item() == pytest.approx(agent_acc)
    assert m["adversarial/accuracy"].item() == pytest.approx((expert_acc + agent_acc) / 2)
    assert m["adversarial/expert_d"].item() == pytest.approx(sum(map(sigmoid, e.tolist())) / 32, rel=1e-5)
    assert m["adversarial/agent_d"].item() == pytest.approx(sum(map(sigmoid, a.tolist())) / 48, rel=1e-5)
    assert m["adversarial/disc_loss"].item() == loss.item()


def test_masked_discriminator_loss_counts_only_masked_steps():
    g = torch.Generator().manual_seed(1)
    e, a = torch.randn(20, generator=g), torch.randn(30, generator=g)
    em, am = torch.rand(20, generator=g) > 0.4, torch.rand(30, generator=g) > 0.4
    loss, _ = discriminator_loss(e, a, em, am)
    kept_e = [x for x, k in zip(e.tolist(), em.tolist()) if k]
    kept_a = [x for x, k in zip(a.tolist(), am.tolist()) if k]
    assert loss.item() == pytest.approx(naive_bce(kept_e, kept_a), rel=1e-5)
    # an all-true mask is the unmasked loss, to the bit (both are sum / N)
    full, _ = discriminator_loss(e, a, torch.ones(20, dtype=torch.bool), torch.ones(30, dtype=torch.bool))
    assert torch.equal(full, discriminator_loss(e, a)[0])


def test_loss_gradient_pushes_expert_logits_up_and_agent_logits_down():
    e, a = torch.zeros(4, requires_grad=True), torch.zeros(4, requires_grad=True)
    discriminator_loss(e, a)[0].backward()
    assert (e.grad < 0).all() and (a.grad > 0).all()  # d/dl softplus(-l) = -sigmoid(-l)


def test_rewards_match_their_definitions():
    logits = torch.randn(64, generator=torch.Generator().manual_seed(2)) * 4
    gail = adversarial_reward(logits, "gail").tolist()
    airl = adversarial_reward(logits, "airl").tolist()
    for x, r_gail, r_airl in zip(logits.tolist(), gail, airl):
        d = sigmoid(x)
        assert r_gail == pytest.approx(-math.log(1 - d), rel=1e-4, abs=1e-6)
        assert r_airl == pytest.approx(math.log(d) - math.log(1 - d), rel=1e-4, abs=1e-4)
        assert r_gail > 0
    assert set(REWARDS) == {"gail", "airl"}
    with pytest.raises(ValueError, match="valid: gail, airl"):
        adversarial_reward(logits, "logit")


def test_reward_carries_no_gradient():
    logits = torch.randn(5, requires_grad=True)
    assert not adversarial_reward(logits, "gail").requires_grad


def test_gradient_penalty_matches_finite_differences():
    """For l(x) = sum_j w_j x_j^2 the input gradient is 2 w x; the penalty is the mean of (||.|| - 1)^2."""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(3, generator=g)
    expert, agent, eps = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g), torch.rand(6, 1, generator=g)
    x = interpolate(expert, agent, eps)
    for i in range(6):
        for j in range(3):
            e_ij, a_ij, t = expert[i, j].item(), agent[i, j].item(), eps[i, 0].item()
            assert x[i, j].item() == pytest.approx(t * e_ij + (1 - t) * a_ij, rel=1e-6, abs=1e-6)
    fn = lambda z: (w * z * z).sum(-1)  # noqa: E731
    penalty, m = gradient_penalty(fn, x)
    naive, h = 0.0, 1e-3
    for row in x.double().tolist():
        grad = []
        for j in range(3):  # central differences of the logit
            up, down = list(row), list(row)
            up[j] += h
            down[j] -= h
            f = lambda r: sum(wk * rk * rk for wk, rk in zip(w.tolist(), r))  # noqa: E731
            grad.append((f(up) - f(down)) / (2 * h))
        naive += (math.sqrt(sum(v * v for v in grad)) - 1) ** 2 / len(x)
    assert penalty.item() == pytest.approx(naive, rel=1e-4)
    assert m["adversarial/grad_penalty"].item() == penalty.item()


def test_gradient_penalty_trains_the_discriminator():
    lin = torch.nn.Linear(2, 1)
    penalty, _ = gradient_penalty(lambda z: lin(z).squeeze(-1), torch.randn(5, 2))
    penalty.backward()  # the double backward reaches the weights: ||grad|| = ||w||
    w = lin.weight.detach()[0]
    expected = 2 * (w.norm() - 1) * w / w.norm()
    assert torch.allclose(lin.weight.grad[0], expected, atol=1e-6)
