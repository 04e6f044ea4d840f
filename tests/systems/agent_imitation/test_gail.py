import numpy as np
import torch
import torch.nn.functional as F

from protege.losses.adversarial import adversarial_reward, discriminator_loss
from protege.nn.babyai_policy import (
    BabyAIDiscriminator,
    BabyAIPolicy,
    PolicyConfig,
    tokenize,
)
from protege.rl.ppo import EnvPool, PPOConfig, collect, gae, ppo_update
from protege.systems.agent_imitation.gail import expert_transitions
from protege.worlds.babyai.demos import load_demos
from protege.worlds.babyai.levels import episode_success, make_env

SMALL = PolicyConfig(dim=32, n_film=1)


def test_discriminator_loss_matches_naive_bce():
    torch.manual_seed(0)
    e, p = torch.randn(10), torch.randn(7)
    loss, m = discriminator_loss(e, p)
    naive = (F.binary_cross_entropy(torch.sigmoid(e), torch.ones(10))
             + F.binary_cross_entropy(torch.sigmoid(p), torch.zeros(7)))
    assert torch.allclose(loss, naive, atol=1e-5)
    assert m["adversarial/expert_acc"] == (e > 0).float().mean()
    d = torch.sigmoid(p)
    assert torch.allclose(adversarial_reward(p, "gail"), -torch.log(1 - d), atol=1e-5)
    assert torch.allclose(adversarial_reward(p, "airl"), torch.log(d) - torch.log(1 - d), atol=1e-4)


def random_transitions(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    env = make_env("BabyAI-GoToRedBall-v0", max_steps=16)  # short episodes: many layouts
    obs, _ = env.reset(seed=10**9 + seed)
    images, directions, missions, actions = [], [], [], []
    for _ in range(n):
        a = int(rng.integers(7))
        images.append(obs["image"]); directions.append(obs["direction"]); missions.append(obs["mission"])
        actions.append(a)
        obs, _, term, trunc, _ = env.step(a)
        if term or trunc:
            obs, _ = env.reset(seed=int(rng.integers(10**9, 2 * 10**9)))
    return (torch.from_numpy(np.stack(images)), torch.tensor(directions), tokenize(missions),
            torch.tensor(actions))


def test_discriminator_separates_expert_from_random(redball_demos):
    torch.manual_seed(0)
    demos = load_demos(redball_demos)
    rng = np.random.default_rng(0)
    disc = BabyAIDiscriminator(SMALL)
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    policy = random_transitions(600)
    for step in range(150):
        pick = torch.from_numpy(rng.integers(0, 500, 64))
        loss, _ = discriminator_loss(disc(*expert_transitions(demos, 64, rng)),
                                     disc(*(x[pick] for x in policy)))
        opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():  # held out: random steps 500..600 and fresh expert samples
        _, m = discriminator_loss(disc(*expert_transitions(demos, 200, rng)),
                                  disc(*(x[500:] for x in policy)))
    # random actions often coincide with the bot's, so perfect separation is impossible
    assert (m["adversarial/expert_acc"] + m["adversarial/agent_acc"]) / 2 > 0.75, m
    assert m["adversarial/expert_d"] - m["adversarial/agent_d"] > 0.4, m


def test_gae_matches_naive_returns():
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    values = torch.zeros(1, 3)
    dones = torch.tensor([[False, True, False]])
    adv, ret = gae(rewards, values, dones, torch.tensor([5.0]), gamma=0.5, lam=1.0)
    assert torch.allclose(ret, torch.tensor([[1.0, 0.0, 2.0 + 0.5 * 5.0]]))


def test_ppo_iteration_changes_parameters_and_memory_replay_matches():
    torch.manual_seed(0)
    policy = BabyAIPolicy(SMALL)
    pool = EnvPool([make_env("BabyAI-GoToRedBall-v0", 8) for _ in range(3)], seed=0,
                   success=episode_success)
    gen = torch.Generator().manual_seed(0)
    collect(policy, pool, 5, gen)  # so that the next segment starts mid-episode with memory
    batch = collect(policy, pool, 20, gen)
    assert batch["starts"].any()  # some episode ended and a new one began inside the segment
    from protege.rl.ppo import pad_cat
    tokens = pad_cat([tokenize(m) for m in batch["missions"]])
    with torch.no_grad():  # recomputing the segment with resets gives the values seen when acting
        _, values = policy.forward_with_resets(batch["images"], batch["directions"], tokens,
                                               batch["starts"], batch["state0"])
    assert torch.allclose(values, batch["values"], atol=1e-5)
    before = [p.detach().clone() for p in policy.parameters()]
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    m = ppo_update(policy, opt, batch, torch.randn(3, 20), PPOConfig(epochs=1, minibatches=1), gen)
    assert set(m) >= {"ppo/policy_loss", "ppo/value_loss", "ppo/entropy", "ppo/approx_kl"}
    assert all(not torch.equal(a, b) for a, b in zip(before, policy.parameters()) if b.grad is not None)


def test_value_only_update_leaves_the_policy_unchanged():
    torch.manual_seed(0)
    policy = BabyAIPolicy(SMALL)
    pool = EnvPool([make_env("BabyAI-GoToRedBall-v0", 8) for _ in range(2)], seed=0,
                   success=episode_success)
    gen = torch.Generator().manual_seed(0)
    batch = collect(policy, pool, 10, gen)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    ppo_update(policy, opt, batch, torch.randn(2, 10), PPOConfig(epochs=1, minibatches=1), gen,
               value_only=True)
    changed = {n for n, p in policy.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("critic.") for n in changed)
