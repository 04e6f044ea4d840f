import math

import numpy as np
import torch

from protege.rl.sac import SAC, Actor, Replay, SACConfig, TwinQ


def test_actor_log_prob_matches_tanh_transformed_normal():
    """The actor's (action, log pi) is a draw of torch's TanhTransform(Normal(mean, std)) and that
    distribution's log-density of it: the same draw (same random state, reparameterised sample), and
    log pi equal to the change-of-variables density that torch computes from the pre-tanh value u."""
    torch.manual_seed(0)
    actor = Actor(3, 2, 16)
    obs = torch.randn(64, 3)
    torch.manual_seed(1)
    action, log_prob = actor(obs)
    raw_mean, raw_log_std = actor.net(obs).chunk(2, -1)
    log_std = actor.LOG_STD_MIN + 0.5 * (actor.LOG_STD_MAX - actor.LOG_STD_MIN) * (torch.tanh(raw_log_std) + 1)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(raw_mean, log_std.exp()), [torch.distributions.TanhTransform(cache_size=1)])
    torch.manual_seed(1)
    reference_action = dist.rsample()  # same eps: the cached transform maps it back to u exactly
    assert torch.allclose(action, reference_action, atol=1e-6) and action.abs().max() <= 1
    reference = dist.log_prob(reference_action).sum(-1)  # log N(u) - log|d tanh/du|, per dimension
    assert torch.allclose(log_prob, reference, atol=1e-4), (log_prob - reference).abs().max()
    # and the deterministic action is tanh(mean)
    assert torch.allclose(actor(obs, deterministic=True)[0], torch.tanh(raw_mean), atol=1e-6)


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
    agent = SAC(4, 2, SACConfig(hidden=32, batch_size=16, precision="fp32"))
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

    agent = SAC(2, 1, SACConfig(hidden=8, batch_size=4, precision="fp32"), NaNReward())
    replay = Replay(10, 2, 1)
    for _ in range(5):
        replay.add([0, 0], [0], 0.0, [0, 0], 0.0)
    with pytest.raises(FloatingPointError, match="non-finite reward"):
        agent.update(replay.sample(np.random.default_rng(0), 4))


def _reference_grads(agent: SAC, batch, seed: int) -> dict:
    """The update's loss written plainly (the pre-fusion code): the actor called separately on s' under
    no_grad and on s, the critic on (s, a) and on (s, pi) with detached weights, per-member matmuls."""
    def q_of(obs, act, detach):
        out = []
        for i in range(agent.critic.n):
            h = torch.cat([obs, act], -1)
            for j, (w, b) in enumerate(zip(agent.critic.weights, agent.critic.biases)):
                w, b = (w.detach(), b.detach()) if detach else (w, b)
                h = h @ w[i] + b[i, 0]
                h = torch.relu(h) if j < len(agent.critic.weights) - 1 else h
            out.append(h.squeeze(-1))
        return torch.stack(out)

    agent.zero_grad(set_to_none=True)
    alpha = agent.log_alpha.exp().detach()
    torch.manual_seed(seed)
    with torch.no_grad():
        next_act, next_logp = agent.actor(batch.next_obs)
        next_q = agent.critic_target(batch.next_obs, next_act).min(0).values - alpha * next_logp
        target = batch.reward + agent.cfg.gamma * (1.0 - batch.done) * next_q
    critic_loss = 0.5 * (q_of(batch.obs, batch.act, False) - target).pow(2).mean(1).sum()
    pi, logp = agent.actor(batch.obs)
    actor_loss = (alpha * logp - q_of(batch.obs, pi, True).min(0).values).mean()
    alpha_loss = -(agent.log_alpha * (logp.detach() + agent.target_entropy)).mean()
    (critic_loss + actor_loss + alpha_loss).backward()
    return {k: p.grad.clone() for k, p in agent.named_parameters() if p.grad is not None}


def test_fused_update_has_the_gradients_of_the_plain_update():
    """The fused update (actor on s' and s in one pass, critic weights cast once, row-restricted backward)
    produces the same gradient for every parameter as the plain per-call code, in fp32."""
    torch.manual_seed(0)
    agent = SAC(4, 2, SACConfig(hidden=32, batch_size=16, precision="fp32"))
    rng = np.random.default_rng(0)
    replay = Replay(100, 4, 2)
    for _ in range(50):
        replay.add(rng.normal(size=4), rng.uniform(-1, 1, 2), rng.normal(), rng.normal(size=4), float(rng.random() < 0.1))
    batch = replay.sample(rng, 16)
    reference = _reference_grads(agent, batch, seed=3)
    agent.opt.step = lambda: None  # keep the fused update's gradients for inspection
    torch.manual_seed(3)
    agent.update(batch)
    fused = {k: p.grad for k, p in agent.named_parameters() if p.grad is not None}
    assert fused.keys() == reference.keys() and len(fused) == sum(p.requires_grad for p in agent.parameters())
    for name in reference:
        assert torch.allclose(fused[name], reference[name], atol=1e-6, rtol=1e-5), name


def _agent_and_batches(precision: str, n: int):
    """The same agent (same initial weights) and the same n batches, whatever the precision."""
    torch.manual_seed(0)
    agent = SAC(4, 2, SACConfig(hidden=64, batch_size=64, precision=precision))
    rng = np.random.default_rng(1)
    replay = Replay(200, 4, 2)
    for _ in range(200):
        replay.add(rng.normal(size=4), rng.uniform(-1, 1, 2), rng.normal(), rng.normal(size=4), 0.0)
    return agent, [replay.sample(rng, 64) for _ in range(n)]


def test_bf16_and_fp32_sac_updates_agree():
    """One fused update in bf16 and in fp32 from the same weights, batch and random draws: every gradient
    within 5% (relative norm) and the losses within 1%; after 5 full updates (Adam steps) the weights stay
    within a fraction of what they moved. The bf16 agent really computes in bf16 (its gradients differ)."""
    grads, losses, moved = {}, {}, {}
    for precision in ("fp32", "bf16"):
        agent, batches = _agent_and_batches(precision, 5)
        assert agent.cfg.precision == precision and agent.bf16 == (precision == "bf16")
        start = {k: p.detach().clone() for k, p in agent.named_parameters()}
        step = agent.opt.step
        agent.opt.step = lambda: None  # the first update: keep its gradients for inspection
        torch.manual_seed(3)
        losses[precision] = agent.update(batches[0])
        grads[precision] = {k: p.grad.clone() for k, p in agent.named_parameters() if p.requires_grad}
        agent.opt.step = step
        torch.manual_seed(4)
        for batch in batches:
            agent.update(batch)
        moved[precision] = {k: p.detach() - start[k] for k, p in agent.named_parameters() if p.requires_grad}
    assert any(not torch.equal(grads["bf16"][k], grads["fp32"][k]) for k in grads["fp32"])
    for name, reference in grads["fp32"].items():
        rel = (grads["bf16"][name] - reference).norm() / reference.norm().clamp_min(1e-8)
        assert rel < 0.05, (name, float(rel))
    for key in ("sac/critic_loss", "sac/actor_loss"):
        assert abs(float(losses["bf16"][key]) - float(losses["fp32"][key])) <= 0.01 * abs(float(losses["fp32"][key]))
    for name, reference in moved["fp32"].items():
        rel = (moved["bf16"][name] - reference).norm() / reference.norm().clamp_min(1e-8)
        assert rel < 0.2, (name, float(rel))
