"""Experiment `babyai_gail`: GAIL (arXiv:1606.03476) on BabyAI with recurrent PPO as the policy
optimiser and a (state, instruction, action) discriminator; the policy may start from a BC run.

One iteration: (1) collect n_envs x rollout_steps steps with the sampling policy; (2) disc_steps
discriminator updates on expert steps from the demonstrations vs. the policy's steps; (3) reward
each policy step with `gail_reward(D)` (no environment reward); (4) PPO epochs.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from protege.core.runs import Run, rng_state, seed_everything, set_rng_state
from protege.losses.adversarial import adversarial_reward, discriminator_loss
from protege.nn.babyai_policy import (
    BabyAIDiscriminator,
    BabyAIPolicy,
    PolicyConfig,
    tokenize,
)
from protege.rl.ppo import EnvPool, PPOConfig, collect, pad_cat, ppo_update
from protege.worlds.babyai.demos import load_demos
from protege.worlds.babyai.levels import make_env


@dataclass
class Config:
    name: str = "babyai_gail"
    seed: int = 0
    level: str = "BabyAI-GoToRedBall-v0"
    demos: str = "data/babyai/GoToRedBall"
    n_demos: int = 0
    """use the first n demonstration episodes (0: all)"""
    init_from: str = ""
    """a BC/IQ-Learn run directory (or checkpoint) whose policy GAIL starts from; "" = random"""
    iterations: int = 50
    critic_warmup: int = 0
    """first iterations in which PPO fits only the value head (discriminator trains throughout)"""
    disc_steps: int = 4
    disc_batch: int = 256
    disc_lr: float = 3e-4
    reward: str = "airl"
    """"airl" (log D - log(1-D), the logit) or "gail" (-log(1-D)); see protege.losses.adversarial"""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    checkpoint_every: int = 10
    log_every: int = 1
    eval_episodes: int = 500
    eval_workers: int = 2


def expert_transitions(demos, n: int, rng: np.random.Generator):
    """n random expert steps: images [n, 7, 7, 3], directions [n], tokens [n, L], actions [n]."""
    i = rng.integers(0, len(demos.actions), n)
    episode = np.repeat(np.arange(len(demos)), demos.lengths)[i]
    return (torch.from_numpy(demos.images[i]), torch.from_numpy(demos.directions[i]),
            tokenize([str(m) for m in demos.missions[episode]]), torch.from_numpy(demos.actions[i]))


def policy_transitions(batch: dict, tokens: torch.Tensor):
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731  [N, T, ...] -> [N*T, ...]
    return flat(batch["images"]), flat(batch["directions"]), tokens, flat(batch["actions"])


def discriminator_step(disc, optimizer, demos, batch, tokens, cfg: Config, rng) -> dict:
    images, directions, toks, actions = policy_transitions(batch, tokens)
    pick = torch.from_numpy(rng.integers(0, len(actions), min(cfg.disc_batch, len(actions))))
    expert = expert_transitions(demos, len(pick), rng)
    loss, metrics = discriminator_loss(disc(*expert),
                                       disc(images[pick], directions[pick], toks[pick], actions[pick]))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return metrics


def run(config: Config, run: Run) -> dict:
    torch.set_num_threads(1)
    demos = load_demos(config.demos, level=config.level)
    demos = demos.subset(config.n_demos) if config.n_demos else demos
    seed_everything(config.seed)
    policy, disc = BabyAIPolicy(config.policy), BabyAIDiscriminator(config.policy)
    if config.init_from:
        from protege.systems.agent_imitation.evaluate import load_policy
        init, init_cfg, _ = load_policy(Path(config.init_from))
        if init_cfg != config.policy:
            from protege.core.errors import UserError
            raise UserError(f"init_from {config.init_from}: policy {init_cfg} differs from {config.policy}")
        policy.load_state_dict(init.state_dict())
    p_opt = torch.optim.Adam(policy.parameters(), lr=config.ppo.lr)
    d_opt = torch.optim.Adam(disc.parameters(), lr=config.disc_lr)
    start = _restore(run, policy, disc, p_opt, d_opt)
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng([config.seed, start])
    # training episodes use seeds from 2*10^9 on: disjoint from demonstrations (0..) and evaluation (10^9..)
    pool = EnvPool([make_env(config.level) for _ in range(config.ppo.n_envs)], seed=2 * 10**9 + start * 10**5)
    metrics: dict = {}
    from protege.core.progress import progress_bar
    with progress_bar() as bar:
        task = bar.add_task(f"gail {config.level}", total=config.iterations, completed=start)
        for it in range(start, config.iterations):
            batch = collect(policy, pool, config.ppo.rollout_steps, gen)
            tokens = pad_cat([tokenize(m) for m in batch["missions"]])  # [N*T, L]
            for _ in range(config.disc_steps):
                metrics = discriminator_step(disc, d_opt, demos, batch, tokens, config, rng)
            with torch.no_grad():
                d_logits = disc(*policy_transitions(batch, tokens)).view(batch["actions"].shape)
            rewards = adversarial_reward(d_logits, config.reward)
            metrics.update(ppo_update(policy, p_opt, batch, rewards, config.ppo, gen,
                                      value_only=it < config.critic_warmup))
            metrics.update(_episode_metrics(pool, rewards))
            done = it + 1
            if done % config.log_every == 0:
                run.log(done, metrics)
            if done % config.checkpoint_every == 0 or done == config.iterations:
                state = {"policy_opt": p_opt.state_dict(), "disc_opt": d_opt.state_dict(),
                         "disc": disc.state_dict(), "rng": rng_state()}
                run.save_checkpoint(done, policy.state_dict(), state)
            bar.update(task, completed=done)
    summary = {k: float(metrics[k]) for k in ("adversarial/disc_loss", "adversarial/expert_acc",
                                              "adversarial/agent_acc", "charts/success_rate") if k in metrics}
    if config.eval_episodes:
        from protege.systems.agent_imitation.evaluate import evaluate_policy
        result = evaluate_policy(policy, config.policy, config.level, config.eval_episodes,
                                 config.eval_workers)
        summary.update({f"eval/{k}": v for k, v in result.items()})
    run.finish(summary)
    return summary


def _episode_metrics(pool: EnvPool, rewards) -> dict:
    done, pool.finished = pool.finished, []
    out = {"charts/gail_reward": float(rewards.mean())}
    if done:
        out.update({"charts/success_rate": float(np.mean([d[0] for d in done])),
                    "charts/episodic_return": float(np.mean([d[1] for d in done])),
                    "charts/episodic_length": float(np.mean([d[2] for d in done])),
                    "charts/episodes": len(done)})
    return out


def _restore(run: Run, policy, disc, p_opt, d_opt) -> int:
    """Resume from the latest checkpoint: weights, optimisers and RNG (environments restart)."""
    if run.latest_checkpoint() is None:
        return 0
    weights, state = run.load_checkpoint()
    policy.load_state_dict(weights)
    disc.load_state_dict(state["disc"])
    p_opt.load_state_dict(state["policy_opt"])
    d_opt.load_state_dict(state["disc_opt"])
    set_rng_state(state["rng"])
    run.truncate_metrics(int(state["step"]))
    return int(state["step"])
