"""Experiment `ibt_rl`: PPO from a BC policy against a frozen reward learned from marks (`ibt`),
optionally plus the environment's reward (arXiv:2211.11602's BC+RL).

The reward of a rollout step t (the observation x_t, the one it reached x'_{t+1}) comes from the
utility model of an `ibt` run through the reward-model protocol (`rl/reward_model.py`):
r_t = o(x_{<=t+1}) - o(x_{<=t}) for an ibt model, r_t = o(x_{<=t+1}) for the per-step and
episode-preference baselines, times `reward_scale`, plus `env_reward` times minigrid's reward.
The model's LSTM memory runs along each environment's episode across rollouts (reset where an
episode starts) and is part of the checkpoint, so a killed run resumes exactly.
`reward_from: ""` with `env_reward: 1` is the environment-reward ceiling; `iterations: 0`
evaluates the starting policy alone (the BC row, with the same evaluation).
"""

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from protege.core.config_help import check_fields
from protege.core.errors import UserError
from protege.core.runs import Run, read_metrics
from protege.core.seeds import rng_state, seed_everything, set_rng_state, stream_seed
from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig, tokenize
from protege.nn.utility import UtilityModel
from protege.rl.iterations import run_iterations
from protege.rl.ppo import EnvPool, PPOConfig, collect, pad_cat, ppo_update
from protege.rl.reward_model import train_and_reward

SUMMARY_KEYS = ("charts/success_rate", "charts/learned_reward", "charts/env_reward")


@dataclass
class Config:
    name: str = "ibt_rl"
    """run name: the run directory is runs/<name>"""
    seed: int = 0
    """seeds action sampling, PPO's minibatches and the training episodes"""
    level: str = "BabyAI-PickupLoc-v0"
    """BabyAI level id"""
    init_from: str = "runs/bc-PickupLoc-1k-s0"
    """the BC run directory (or checkpoint) PPO starts from"""
    reward_from: str = ""
    """an ibt run directory whose frozen utility rewards the steps; "" for none"""
    reward_scale: float = 1.0
    """multiplies the learned reward"""
    env_reward: float = 0.0
    """weight of minigrid's own reward (1 - 0.9 t/T at success)"""
    iterations: int = 40
    """collect-reward-update iterations (n_envs x rollout_steps environment steps each); 0 only evaluates"""
    critic_warmup: int = 2
    """first iterations in which PPO fits only the value head (keeps the BC start intact)"""
    policy: PolicyConfig = field(default_factory=lambda: PolicyConfig(dim=64))
    """sizes of the policy (must match init_from's)"""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """the PPO optimiser of the policy"""
    checkpoint_every: int = 10
    """iterations between checkpoints (the last one is always saved)"""
    log_every: int = 1
    """iterations between metric rows"""
    eval_episodes: int = 300
    """held-out episodes (seeds from 10^9, greedy) evaluated at the end; 0 skips"""

    def __post_init__(self):
        check_fields(self, init_from="nonempty", reward_scale=">=0", env_reward=">=0", iterations=">=0",
                     critic_warmup=">=0", checkpoint_every=">=1", log_every=">=1", eval_episodes=">=0")
        if not self.reward_from and self.env_reward == 0 and self.iterations:
            raise ValueError("reward_from is empty and env_reward is 0: PPO would have no reward")


class UtilityReward(torch.nn.Module):
    """A frozen utility model behind the reward-model protocol; call once per rollout (it carries
    its memory from one rollout to the next)."""

    def __init__(self, model: UtilityModel, method: str, scale: float):
        super().__init__()
        self.model, self.method, self.scale = model, method, scale
        self.memory = None  # (h, c) each [1, N, D] after the last rollout's last step

    @torch.no_grad()
    def loss_and_reward(self, batch: dict):
        N, T = batch["directions"].shape
        tokens = batch["flat_tokens"]
        feats = self.model.frames(batch["images"].reshape(N * T, 7, 7, 3), batch["directions"].reshape(-1),
                                  tokens).view(N, T, -1)
        o, (h, c), self.memory = self.model.step_with_memory(feats, self.memory, batch["starts"])
        o_next = torch.cat([o[:, 1:], o[:, -1:]], 1)  # x'_{t+1} is the next step's x unless the episode ended
        need = batch["dones"].clone()
        need[:, -1] = True
        n, t = need.nonzero(as_tuple=True)
        flat = n * T + t
        extra = self.model.frames(batch["next_images"][n, t], batch["next_directions"][n, t], tokens[flat])
        o_next[n, t] = self.model.extend(extra, (h[n, t], c[n, t]))
        reward = (o_next - o) if self.method == "ibt" else o_next
        return torch.zeros(()), self.scale * reward, {}

    def training_state(self) -> dict:
        return {"memory": None if self.memory is None else tuple(m.clone() for m in self.memory)}

    def load_training_state(self, state: dict) -> None:
        self.memory = state["memory"]


@dataclass
class Learner:
    policy: BabyAIPolicy
    reward: UtilityReward | None
    opt: torch.optim.Optimizer
    gen: torch.Generator
    pool: EnvPool
    reference: BabyAIPolicy | None = None  # the frozen start, for ppo.kl_coef

    def training_state(self) -> dict:
        return {"opt": self.opt.state_dict(), "rng": rng_state(), "gen": self.gen.get_state(),
                "pool": self.pool.state_dict(),
                "reward": self.reward.training_state() if self.reward is not None else {}}

    def load(self, weights: dict, state: dict) -> int:
        self.policy.load_state_dict(weights)
        self.opt.load_state_dict(state["opt"])
        set_rng_state(state["rng"])
        self.gen.set_state(state["gen"])
        self.pool.load_state_dict(state["pool"])
        if self.reward is not None:
            self.reward.load_training_state(state["reward"])
        return int(state["step"])


def build(config: Config) -> Learner:
    from protege.rl.babyai_rollout import load_policy
    from protege.systems.feedback.ibt import load_utility
    from protege.worlds.babyai.levels import TRAIN_SEED_START, episode_success, make_env
    init, init_cfg, _ = load_policy(Path(config.init_from))
    if init_cfg != config.policy:
        raise UserError(f"init_from {config.init_from}: policy {init_cfg} differs from the config's {config.policy}")
    policy = BabyAIPolicy(config.policy)
    policy.load_state_dict(init.state_dict())
    reference = None
    if config.ppo.kl_coef > 0:
        reference = init.eval().requires_grad_(False)
    reward = None
    if config.reward_from and config.iterations:  # iterations=0 only evaluates: no reward needed
        model, method = load_utility(Path(config.reward_from))
        reward = UtilityReward(model, method, config.reward_scale)
    envs = [make_env(config.level) for _ in range(config.ppo.n_envs)]
    return Learner(policy=policy, reward=reward, opt=torch.optim.Adam(policy.parameters(), lr=config.ppo.lr),
                   gen=torch.Generator().manual_seed(stream_seed(config.seed, "ibt_rl/sampling")),
                   pool=EnvPool(envs, TRAIN_SEED_START + stream_seed(config.seed, "ibt_rl/episodes"),
                                success=episode_success), reference=reference)


def iteration(learner: Learner, config: Config, it: int) -> dict:
    """Collect a rollout, reward it (learned and/or environment reward), one PPO update."""
    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints each rejected layout at reset
        batch = collect(learner.policy, learner.pool, config.ppo.rollout_steps, learner.gen,
                        reference=learner.reference)
    rewards = config.env_reward * batch["env_rewards"]
    metrics = {"charts/env_reward": float(batch["env_rewards"].sum(1).mean())}
    if learner.reward is not None:
        batch["flat_tokens"] = pad_cat([tokenize(m) for m in batch["missions"]])
        learned, _ = train_and_reward(learner.reward, None, batch, updates=0)
        rewards = rewards + learned
        metrics["charts/learned_reward"] = float(learned.mean())
    metrics.update(ppo_update(learner.policy, learner.opt, batch, rewards, config.ppo, learner.gen,
                              value_only=it < config.critic_warmup))
    done, learner.pool.finished = learner.pool.finished, []
    if done:
        metrics.update({"charts/success_rate": float(np.mean([d[0] for d in done])),
                        "charts/episodic_length": float(np.mean([d[2] for d in done])),
                        "charts/episodes": len(done)})
    return metrics


def evaluate(policy: BabyAIPolicy, level: str, episodes: int) -> dict:
    """Success on held-out seeds (from 10^9) with Wilson 95% intervals, acting greedily (the BabyAI
    protocol) and sampling from the policy (what PPO optimises)."""
    from protege.eval.stats import mean_interval, wilson_interval
    from protege.rl.babyai_rollout import play_episodes
    from protege.worlds.babyai.levels import EVAL_SEED_START, episode_success, make_env
    policy.eval()
    seeds = list(range(EVAL_SEED_START, EVAL_SEED_START + episodes))
    out = {}
    for greedy, tag in ((True, ""), (False, "_sampled")):  # PPO trains the sampling policy
        with contextlib.redirect_stdout(io.StringIO()):
            played = play_episodes(policy, lambda: make_env(level), seeds, greedy=greedy, sample_seed=0)
        wins = sum(episode_success(p["terminated"], p["rewards"][-1]) for p in played)
        lo, hi = wilson_interval(wins, len(played))
        out.update({f"eval/success{tag}": wins / len(played), f"eval/success{tag}_lo": lo,
                    f"eval/success{tag}_hi": hi,
                    f"eval/length{tag}": mean_interval([p["length"] for p in played])[0]})
    return {**out, "eval/episodes": len(seeds)}


def run(config: Config, run: Run) -> dict:
    seed_everything(config.seed)
    torch.set_num_threads(1)
    learner = build(config)
    restored = run.restore()
    start = 0 if restored is None else learner.load(*restored)
    run_iterations(run, f"ppo {config.level}", start, config.iterations,
                   lambda it: iteration(learner, config, it),
                   lambda: (learner.policy.state_dict(), learner.training_state()),
                   config.log_every, config.checkpoint_every)
    rows = [r for r in read_metrics(run.dir) if "ppo/policy_loss" in r]
    summary = {"env_steps": config.iterations * config.ppo.n_envs * config.ppo.rollout_steps}
    if rows:
        recent = rows[-max(1, len(rows) // 4):]  # the last quarter of training
        summary.update({k: float(np.mean([r[k] for r in recent if k in r])) for k in SUMMARY_KEYS
                        if any(k in r for r in recent)})
    if config.eval_episodes:
        summary.update(evaluate(learner.policy, config.level, config.eval_episodes))
    return summary
