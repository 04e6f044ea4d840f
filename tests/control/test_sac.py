import math

import numpy as np
import torch

from protege.learners.sac import SAC, Actor, Replay, SACConfig, TwinQ


def test_actor_log_prob_matches_tanh_transformed_normal():
    torch.manual_seed(0)
    actor = Actor(3, 2, 16)
    obs = torch.randn(64, 3)
    torch.manual_seed(1)
    action, log_prob = actor(obs)
    mean, log_std = actor.net(obs).chunk(2, -1)
    log_std = actor.LOG_STD_MIN + 0.5 * (actor.LOG_STD_MAX - actor.LOG_STD_MIN) * (torch.tanh(log_std) + 1)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform(cache_size=1)])
    u = torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6))
    ref = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1) - \
        torch.log(1 - action.pow(2) + 1e-12).sum(-1)
    keep = action.abs().max(-1).values < 0.999  # atanh is ill-conditioned at the edges
    assert torch.allclose(log_prob[keep], ref[keep], atol=2e-3)
    assert dist is not None and action.abs().max() <= 1


def test_twin_q_equals_two_separate_mlps():
    torch.manual_seed(0)
    q = TwinQ(5, 8)
    obs, act = torch.randn(10, 3), torch.randn(10, 2)
    x = torch.cat([obs, act], -1)
    out = q(obs, act)
    for i in range(2):
        h = x
        for j, (w, b) in enumerate(zip(q.weights, q.biases)):
            h = h @ w[i] + b[i, 0]
            if j < 2:
                h = torch.relu(h)
        assert torch.allclose(out[i], h.squeeze(-1), atol=1e-5)


def test_fused_update_changes_every_trainable_parameter_and_keeps_targets_slow():
    torch.manual_seed(0)
    agent = SAC(4, 2, SACConfig(hidden=32, batch_size=16, bf16=False))
    replay = Replay(100, 4, 2)
    rng = np.random.default_rng(0)
    for _ in range(50):
        replay.add(rng.normal(size=4), rng.uniform(-1, 1, 2), rng.normal(), rng.normal(size=4), 0.0)
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    metrics = agent.update(replay.sample(rng, 16))
    after = agent.state_dict()
    for name, p in agent.named_parameters():
        if p.requires_grad:
            assert not torch.equal(before[name], after[name]), name
    for name in before:
        if name.startswith("critic_target"):
            online = name.replace("critic_target", "critic")
            expected = before[name] + 0.005 * (after[online] - before[name])
            assert torch.allclose(after[name], expected, atol=1e-6), name
    assert all(math.isfinite(float(v)) for v in metrics.values())


def test_replay_ring_buffer_wraps():
    replay = Replay(3, 1, 1)
    for i in range(5):
        replay.add([i], [0], i, [i + 1], 0)
    assert replay.size == 3 and sorted(replay.obs[:, 0].tolist()) == [2, 3, 4]


def test_non_finite_learned_reward_raises():
    import pytest

    class NaNReward(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def loss_and_reward(self, batch):
            return self.w.sum(), torch.full((len(batch.obs),), float("nan")), {}

    agent = SAC(2, 1, SACConfig(hidden=8, batch_size=4, bf16=False), NaNReward())
    replay = Replay(10, 2, 1)
    for _ in range(5):
        replay.add([0, 0], [0], 0.0, [0, 0], 0.0)
    with pytest.raises(FloatingPointError, match="non-finite reward"):
        agent.update(replay.sample(np.random.default_rng(0), 4))
