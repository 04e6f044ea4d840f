"""PPO's KL to a reference policy (PPOConfig.kl_coef): the reference's logits follow its own
memory along each episode, the term pulls the policy toward the reference, and the pool's
state (with the reference's memory) survives a save and load."""

import contextlib
import io

import pytest
import torch
import torch.nn.functional as F

from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig, tokenize
from protege.rl.ppo import EnvPool, PPOConfig, collect, ppo_update
from protege.worlds.babyai.levels import episode_success, make_env

LEVEL = "BabyAI-GoToRedBallNoDists-v0"
CFG = PolicyConfig(dim=16, n_film=1)


def make_pool(n: int = 2) -> EnvPool:
    with contextlib.redirect_stdout(io.StringIO()):
        return EnvPool([make_env(LEVEL) for _ in range(n)], 123, success=episode_success)


def rollout(policy, reference, steps: int = 40, pool: EnvPool | None = None):
    pool = pool or make_pool()
    with contextlib.redirect_stdout(io.StringIO()):
        return pool, collect(policy, pool, steps, torch.Generator().manual_seed(0), reference=reference)


def policies():
    torch.manual_seed(0)
    policy, reference = BabyAIPolicy(CFG), BabyAIPolicy(CFG)
    with torch.no_grad():  # a reference that clearly differs from the policy
        reference.actor[-1].weight.mul_(8.0)
        policy.critic[-1].weight.zero_()  # values 0: with equal rewards every advantage is 0
        policy.critic[-1].bias.zero_()
    return policy, reference


def test_reference_logits_follow_the_references_own_memory_across_episode_starts():
    policy, reference = policies()
    _, batch = rollout(policy, reference, steps=70)  # GoToRedBallNoDists ends within 64 steps
    assert batch["starts"][:, 1:].any(), "the segment should hold an episode start"
    tokens = torch.cat([tokenize(m) for m in batch["missions"]])
    with torch.no_grad():
        expected, _ = reference.forward_with_resets(batch["images"], batch["directions"], tokens,
                                                    batch["starts"], None)
    assert torch.allclose(batch["ref_logits"], expected, atol=1e-4)
    assert "ref_logits" not in rollout(policy, None, steps=4)[1]


def mean_kl(policy, reference, batch) -> float:
    tokens = torch.cat([tokenize(m) for m in batch["missions"]])
    with torch.no_grad():
        logits, _ = policy.forward_with_resets(batch["images"], batch["directions"], tokens,
                                               batch["starts"], batch["state0"])
    logp, ref = F.log_softmax(logits, -1), F.log_softmax(batch["ref_logits"], -1)
    return float((logp.exp() * (logp - ref)).sum(-1).mean())


@pytest.mark.parametrize("kl_coef", [0.0, 1.0])
def test_kl_coef_pulls_the_policy_toward_the_reference(kl_coef):
    policy, reference = policies()
    _, batch = rollout(policy, reference)
    # zero rewards and values: the advantages are 0, so only the KL term can move the actor
    cfg = PPOConfig(n_envs=2, epochs=10, minibatches=1, lr=3e-3, ent_coef=0.0, vf_coef=0.0, kl_coef=kl_coef)
    before = mean_kl(policy, reference, batch)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    metrics = ppo_update(policy, opt, batch, torch.zeros_like(batch["env_rewards"]), cfg, torch.Generator())
    after = mean_kl(policy, reference, batch)
    if kl_coef:
        assert after < 0.5 * before, (before, after)
        assert metrics["ppo/kl_to_reference"] == pytest.approx(after, rel=0.5)
    else:
        assert after == pytest.approx(before, rel=1e-3) and "ppo/kl_to_reference" not in metrics


def test_kl_coef_without_reference_logits_is_refused():
    policy, _ = policies()
    _, batch = rollout(policy, None, steps=4)
    with pytest.raises(ValueError, match="ref_logits"):
        ppo_update(policy, torch.optim.Adam(policy.parameters()), batch, batch["env_rewards"],
                   PPOConfig(n_envs=2, kl_coef=0.1), torch.Generator())
    with pytest.raises(ValueError, match="kl_coef"):
        PPOConfig(kl_coef=-1.0)


def test_pool_state_keeps_the_reference_memory():
    policy, reference = policies()
    pool, _ = rollout(policy, reference, steps=10)
    state = pool.state_dict()
    fresh = make_pool()
    with contextlib.redirect_stdout(io.StringIO()):
        fresh.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(fresh.ref_state, pool.ref_state))
    _, cont = rollout(policy, reference, steps=5, pool=pool)
    _, again = rollout(policy, reference, steps=5, pool=fresh)
    assert torch.allclose(cont["ref_logits"], again["ref_logits"])
    del state["ref_memory"]  # a pool saved before the option existed
    with contextlib.redirect_stdout(io.StringIO()):
        fresh.load_state_dict(state)
    assert fresh.ref_state is None
