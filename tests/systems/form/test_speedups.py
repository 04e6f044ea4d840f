"""The throughput measures of issue 6 item 7 must not change what is computed: the FORM expert cache,
the gradient penalty on a subset of the batch and the bfloat16 hidden layers."""

import numpy as np
import pytest
import torch

from protege.nn.density import ConditionalGaussian
from protege.nn.precision import bf16_hidden
from protege.rl.rewards import FORMReward, GAILReward
from protege.rl.sac import Replay


def filled_replay(capacity: int, n: int, dim: int = 3, seed: int = 0) -> Replay:
    rng = np.random.default_rng(seed)
    replay = Replay(capacity, dim, 1)
    for _ in range(n):
        replay.add(rng.normal(size=dim), rng.uniform(-1, 1, 1), 0.0, rng.normal(size=dim), 0.0)
    return replay


def form_reward(cache: bool) -> FORMReward:
    torch.manual_seed(0)
    return FORMReward(ConditionalGaussian(3, 16), ConditionalGaussian(3, 16), clip=None, cache_expert=cache)


def test_cached_expert_log_prob_equals_fresh_one_also_after_the_ring_buffer_wraps():
    cached, fresh = form_reward(True), form_reward(False)
    replay, rng = filled_replay(50, 50), np.random.default_rng(1)
    for step in range(30):
        batch = replay.sample(rng, 32)
        assert torch.allclose(cached.expert_log_prob(batch), fresh.expert_log_prob(batch), atol=1e-5)
        obs = rng.normal(size=3) * 5  # overwrite a slot with a new transition: it needs a new key
        replay.add(obs, np.zeros(1), 0.0, obs + 1, 0.0)
    assert replay.added == 80 and replay.key.max() == 79
    assert int((~torch.isnan(cached._cache)).sum()) <= 80


def test_gradient_penalty_on_a_subset_estimates_the_same_expectation():
    """A linear discriminator has the same input-gradient norm everywhere, so the penalty is exact on
    any subset; on a random network the subset estimate is close to the full-batch one on average."""
    rng = np.random.default_rng(0)
    expert_obs, expert_next = rng.normal(size=(500, 3)).astype(np.float32), rng.normal(size=(500, 3)).astype(np.float32)
    replay = filled_replay(200, 200)
    penalties = {}
    for gp_batch in (0, 16):
        torch.manual_seed(0)
        model = GAILReward(expert_obs, expert_next, "state_only", hidden=8, gp_batch=gp_batch, seed=0)
        model.disc.net = torch.nn.Linear(6, 1)  # linear: ||grad logit|| is the same at every input
        _, _, metrics = model.loss_and_reward(replay.sample(np.random.default_rng(2), 64))
        penalties[gp_batch] = float(metrics["adversarial/grad_penalty"])
    assert abs(penalties[0] - penalties[16]) < 1e-5
    torch.manual_seed(0)
    full = GAILReward(expert_obs, expert_next, "state_only", hidden=32, gp_batch=0, seed=0)
    sub = GAILReward(expert_obs, expert_next, "state_only", hidden=32, gp_batch=16, seed=0)
    sub.load_state_dict(full.state_dict())
    batches = [replay.sample(np.random.default_rng(k), 64) for k in range(40)]
    estimate = [np.mean([float(m.loss_and_reward(b)[2]["adversarial/grad_penalty"]) for b in batches]) for m in (full, sub)]
    assert abs(estimate[0] - estimate[1]) < 0.1 * estimate[0], estimate


def test_bf16_hidden_layers_keep_an_fp32_output_close_to_fp32():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 2))
    x = torch.randn(128, 4)
    ref = net(x)
    for outer in (False, True):  # also inside an enclosing autocast region, the output layer stays fp32
        with torch.autocast("cpu", torch.bfloat16, enabled=outer):
            out = bf16_hidden(net, x, True)
        assert out.dtype == torch.float32
        assert torch.allclose(out, ref, atol=0.05, rtol=0.05)
    model = ConditionalGaussian(3, 32, bf16=True)
    obs = torch.randn(64, 3)
    grad_ok = model.log_prob(obs, obs + 0.1).sum()
    grad_ok.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_actor_sample_is_forwards_action_without_the_log_prob():
    from protege.rl.sac import Actor
    actor = Actor(3, 2, 16, bf16=True)
    obs = torch.randn(5, 3)
    torch.manual_seed(7)
    action, _ = actor(obs)
    torch.manual_seed(7)
    assert torch.equal(actor.sample(obs), action)
    assert torch.allclose(actor.sample(obs, deterministic=True, bf16=False), actor(obs, True)[0], atol=0.05)


def test_gradient_penalty_in_standardised_space_divides_out_the_expert_scale():
    """With a linear discriminator w.z on standardised inputs z = (x - m) / s, the raw-space gradient
    is w / s and the standardised-space one is w: the two penalties are (||.|| - 1)^2 of exactly those."""
    rng = np.random.default_rng(0)
    scale = np.array([0.01, 0.02, 0.05, 1.0, 2.0, 0.1], dtype=np.float32)
    expert = (rng.normal(size=(400, 6)) * scale).astype(np.float32)
    weight = torch.tensor([[0.3, -0.2, 0.1, 0.5, -0.4, 0.2]])
    penalties = {}
    for space in ("raw", "standardised"):
        model = GAILReward(expert[:, :3], expert[:, 3:], "state_only", hidden=8, gp_batch=0, seed=0, gp_space=space)
        model.disc.net = torch.nn.Linear(6, 1, bias=False)
        model.disc.net.weight.data.copy_(weight)
        penalties[space] = float(model._gradient_penalty(torch.zeros(5, 6))[0].detach())
    std = np.maximum(expert.std(0), 1e-3)
    assert abs(penalties["standardised"] - (float(weight.norm()) - 1) ** 2) < 1e-5
    raw = (float(np.linalg.norm(weight.numpy()[0] / std)) - 1) ** 2
    assert abs(penalties["raw"] - raw) < 1e-3 * raw
    with pytest.raises(ValueError, match="gp_space"):
        GAILReward(expert[:, :3], expert[:, 3:], "state_only", gp_space="whitened")


def test_disc_every_trains_the_discriminator_on_every_kth_call_and_reads_the_reward_on_all():
    from protege.rl.sac import SAC, SACConfig
    rng = np.random.default_rng(0)
    expert_obs, expert_next = rng.normal(size=(200, 3)).astype(np.float32), rng.normal(size=(200, 3)).astype(np.float32)
    torch.manual_seed(0)
    model = GAILReward(expert_obs, expert_next, "state_only", hidden=16, disc_every=3, seed=0)
    agent = SAC(3, 1, SACConfig(hidden=16, batch_size=32, precision="fp32"), model)
    replay = filled_replay(100, 100)
    trained = []
    for call in range(7):
        batch = replay.sample(rng, 32)
        before = [p.detach().clone() for p in model.disc.parameters()]
        with torch.no_grad():
            fresh = torch.nn.functional.softplus(model.disc(model._agent_x(batch)))  # the reward before this call
        _, reward, metrics = model.loss_and_reward(batch)
        if call % 3:
            assert torch.allclose(reward, fresh, atol=1e-6)  # read from the current discriminator
            assert "adversarial/disc_loss" in metrics  # the last training step's metrics are carried along
        model._calls -= 1  # replay this call through SAC's fused update
        agent.update(batch)
        trained.append(any(not torch.equal(a, b) for a, b in zip(before, model.disc.parameters())))
    assert trained == [True, False, False, True, False, False, True]
