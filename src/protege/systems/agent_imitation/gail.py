"""Experiment `babyai_gail`: GAIL (arXiv:1606.03476) on BabyAI with recurrent PPO as the policy
optimiser and a (state, instruction, action) discriminator; the policy may start from a BC run.

One iteration: (1) collect n_envs x rollout_steps steps with the sampling policy; (2) disc_steps
discriminator updates on expert steps from the demonstrations vs. the policy's steps; (3) reward
each policy step with `adversarial_reward(D)` (no environment reward); (4) PPO epochs. Steps (2)
and (3) go through the reward-model protocol SAC's learned rewards use (`protege.rl.reward_model`),
so any learned reward (e.g. a Bradley-Terry utility) plugs into PPO the same way.

The training state (`training_state`) is explicit: both networks and optimisers, the global RNGs,
the sampling generator, the discriminator's batch generator and every environment of the pool
(replayed from its episode seed, see `EnvPool`). A run killed at any iteration and resumed ends
with the same weights and metrics as one never interrupted.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from protege.core.config_help import check_fields
from protege.core.runs import Run, read_metrics
from protege.core.seeds import rng_state, seed_everything, set_rng_state, stream_seed
from protege.losses.adversarial import (
    RewardKind,
    adversarial_reward,
    discriminator_loss,
)
from protege.nn.babyai_policy import (
    BabyAIDiscriminator,
    BabyAIPolicy,
    PolicyConfig,
    tokenize,
)
from protege.rl.iterations import run_iterations
from protege.rl.ppo import EnvPool, PPOConfig, collect, pad_cat, ppo_update
from protege.rl.reward_model import train_and_reward
from protege.systems.agent_imitation.experiment import check_level_field
from protege.worlds.babyai.demos import load_demos
from protege.worlds.babyai.levels import TRAIN_SEED_START, episode_success, make_env

SUMMARY_KEYS = ("adversarial/disc_loss", "adversarial/expert_acc", "adversarial/agent_acc",
                "charts/success_rate")


@dataclass
class Config:
    name: str = "babyai_gail"
    """run name: the run directory is runs/<name>"""
    seed: int = 0
    """seeds initialisation, action sampling, discriminator batches and training episodes"""
    level: str = "BabyAI-GoToRedBall-v0"
    """BabyAI level id; the demonstrations must be of this level"""
    demos: str = "data/babyai/GoToRedBall"
    """folder written by `protege data demos`"""
    n_demos: int = 0
    """use the first n demonstration episodes (0: all)"""
    init_from: str = ""
    """a BC/IQ-Learn run directory (or checkpoint) whose policy GAIL starts from; "" = random"""
    iterations: int = 50
    """collect-discriminate-update iterations"""
    critic_warmup: int = 0
    """first iterations in which PPO fits only the value head (discriminator trains throughout)"""
    disc_steps: int = 4
    """discriminator updates per iteration"""
    disc_batch: int = 256
    """expert and policy steps per discriminator update (each)"""
    disc_lr: float = 3e-4
    """Adam learning rate of the discriminator"""
    reward: RewardKind = "airl"
    """"airl" (log D - log(1-D), the logit) or "gail" (-log(1-D)); see protege.losses.adversarial"""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """sizes of the policy and of the discriminator's encoder"""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """the PPO optimiser of the policy"""
    checkpoint_every: int = 10
    """iterations between checkpoints (the last one is always saved)"""
    log_every: int = 1
    """iterations between metric rows (the last iteration is always logged)"""
    eval_episodes: int = 500
    """held-out episodes (seeds from 10^9) evaluated at the end; 0 skips"""
    eval_workers: int = 2
    """evaluation processes"""

    def __post_init__(self):
        check_fields(self, demos="nonempty", n_demos=">=0", iterations=">=1", critic_warmup=">=0",
                     disc_steps=">=1", disc_batch=">=1", disc_lr=">0", checkpoint_every=">=1",
                     log_every=">=1", eval_episodes=">=0", eval_workers=">=1")
        check_level_field(self.level)


def expert_transitions(demos, n: int, rng: np.random.Generator):
    """n random expert steps: images [n, 7, 7, 3], directions [n], tokens [n, L], actions [n]."""
    i = rng.integers(0, len(demos.actions), n)
    episode = np.repeat(np.arange(len(demos)), demos.lengths)[i]
    return (torch.from_numpy(demos.images[i]), torch.from_numpy(demos.directions[i]),
            tokenize([str(m) for m in demos.missions[episode]]), torch.from_numpy(demos.actions[i]))


def policy_transitions(batch: dict, tokens: torch.Tensor):
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731  [N, T, ...] -> [N*T, ...]
    return flat(batch["images"]), flat(batch["directions"]), tokens, flat(batch["actions"])


class DiscriminatorReward(torch.nn.Module):
    """GAIL's discriminator behind the reward-model protocol (`protege.rl.reward_model`): its loss
    tells `disc_batch` expert steps from as many of the rollout's steps; its reward scores every step
    of the rollout [N, T]. `batch["flat_tokens"]` holds the rollout's instruction tokens [N*T, L]."""

    def __init__(self, disc: BabyAIDiscriminator, demos, kind: str, batch_size: int,
                 rng: np.random.Generator):
        super().__init__()
        self.disc, self.demos, self.kind, self.batch_size, self.rng = disc, demos, kind, batch_size, rng

    def loss_and_reward(self, batch: dict):
        images, directions, tokens, actions = policy_transitions(batch, batch["flat_tokens"])
        pick = torch.from_numpy(self.rng.integers(0, len(actions), min(self.batch_size, len(actions))))
        expert = expert_transitions(self.demos, len(pick), self.rng)
        loss, metrics = discriminator_loss(
            self.disc(*expert), self.disc(images[pick], directions[pick], tokens[pick], actions[pick]))
        with torch.no_grad():
            logits = self.disc(images, directions, tokens, actions).view(batch["actions"].shape)
        return loss, adversarial_reward(logits, self.kind), metrics

    def training_state(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_training_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


@dataclass
class Learner:
    """Everything GAIL's training continues from (Acme's TrainingState, plus the environments)."""
    policy: BabyAIPolicy
    reward: DiscriminatorReward
    policy_opt: torch.optim.Optimizer
    disc_opt: torch.optim.Optimizer
    gen: torch.Generator
    """action sampling and PPO's minibatch order"""
    pool: EnvPool

    def training_state(self) -> dict:
        """`Run.save_checkpoint`'s state (the policy's weights go in model.safetensors)."""
        return {"disc": self.reward.disc.state_dict(), "policy_opt": self.policy_opt.state_dict(),
                "disc_opt": self.disc_opt.state_dict(), "rng": rng_state(),
                "gen": self.gen.get_state(), "reward": self.reward.training_state(),
                "pool": self.pool.state_dict()}

    def load(self, weights: dict, state: dict) -> int:
        """Restore a checkpoint; returns the iteration it was taken after."""
        self.policy.load_state_dict(weights)
        self.reward.disc.load_state_dict(state["disc"])
        self.policy_opt.load_state_dict(state["policy_opt"])
        self.disc_opt.load_state_dict(state["disc_opt"])
        set_rng_state(state["rng"])
        self.gen.set_state(state["gen"])
        self.reward.load_training_state(state["reward"])
        self.pool.load_state_dict(state["pool"])
        return int(state["step"])


def build(config: Config, demos) -> Learner:
    policy, disc = BabyAIPolicy(config.policy), BabyAIDiscriminator(config.policy)
    if config.init_from:
        from protege.systems.agent_imitation.evaluate import load_policy
        init, init_cfg, _ = load_policy(Path(config.init_from))
        if init_cfg != config.policy:
            from protege.core.errors import UserError
            raise UserError(f"init_from {config.init_from}: policy {init_cfg} differs from {config.policy}")
        policy.load_state_dict(init.state_dict())
    envs = [make_env(config.level) for _ in range(config.ppo.n_envs)]
    reward = DiscriminatorReward(disc, demos, config.reward, config.disc_batch,
                                 np.random.default_rng(stream_seed(config.seed, "gail/discriminator")))
    return Learner(policy=policy, reward=reward,
                   policy_opt=torch.optim.Adam(policy.parameters(), lr=config.ppo.lr),
                   disc_opt=torch.optim.Adam(disc.parameters(), lr=config.disc_lr),
                   gen=torch.Generator().manual_seed(stream_seed(config.seed, "gail/sampling")),
                   pool=EnvPool(envs, TRAIN_SEED_START + stream_seed(config.seed, "gail/episodes"),
                                success=episode_success))


def iteration(learner: Learner, config: Config, it: int) -> dict:
    """One GAIL iteration: collect, train the discriminator and reward, PPO; returns its metrics."""
    batch = collect(learner.policy, learner.pool, config.ppo.rollout_steps, learner.gen)
    batch["flat_tokens"] = pad_cat([tokenize(m) for m in batch["missions"]])  # [N*T, L]
    rewards, metrics = train_and_reward(learner.reward, learner.disc_opt, batch, config.disc_steps)
    metrics.update(ppo_update(learner.policy, learner.policy_opt, batch, rewards, config.ppo,
                              learner.gen, value_only=it < config.critic_warmup))
    metrics.update(_episode_metrics(learner.pool, rewards))
    return {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in metrics.items()}


def run(config: Config, run: Run) -> dict:
    seed_everything(config.seed)
    torch.set_num_threads(1)
    demos = load_demos(config.demos, level=config.level)
    demos = demos.subset(config.n_demos) if config.n_demos else demos
    learner = build(config, demos)
    restored = run.restore()
    start = 0 if restored is None else learner.load(*restored)
    run_iterations(run, f"gail {config.level}", start, config.iterations,
                   lambda it: iteration(learner, config, it),
                   lambda: (learner.policy.state_dict(), learner.training_state()),
                   config.log_every, config.checkpoint_every)
    # from the metrics file, not the loop: a run resumed after its last checkpoint reports the same
    logged = [row for row in read_metrics(run.dir) if "adversarial/disc_loss" in row]
    summary = {k: float(logged[-1][k]) for k in SUMMARY_KEYS if logged and k in logged[-1]}
    if config.eval_episodes:
        from protege.systems.agent_imitation.evaluate import evaluate_policy
        result = evaluate_policy(learner.policy, config.policy, config.level, config.eval_episodes,
                                 config.eval_workers)
        summary.update({f"eval/{k}": v for k, v in result.items()})
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
