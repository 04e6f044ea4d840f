"""`protege run` experiment `control_imitation`: FORM, GAIL (state-action), GAIfO (state-only), BC or
plain SAC on a Control Suite task, optionally with distractor features.

    protege run form_cartpole seed=1 distractors.count=8

Demonstrations come from `demos` (a folder written by `protege data control-demos`) or, when it is
empty, are recorded by the scripted expert into the run directory first. With distractors on, the
demonstrations get features from the same distractor process with a different seed (the process never
reads actions, so this is what a recording with distractors would have held).
The summary reports the expert-normalised return (R - R_random) / (R_expert - R_random).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from protege.core.errors import UserError
from protege.rl.online import LoopConfig, evaluate, train_online
from protege.rl.sac import SAC, SACConfig
from protege.worlds.control.demos import ControlDemos, load_demos, record_demos
from protege.worlds.control.suite import (
    DistractorConfig,
    distractor_features,
    make_control_env,
)


@dataclass
class DistractorsConfig:
    kind: Literal["ou", "sine", "body"] = "ou"
    count: int = 0
    """number of distractor units appended to observations (0: none)"""


@dataclass
class FORMConfig:
    hidden: int = 256
    expert_steps: int = 3000
    """offline maximum-likelihood steps of the expert density p_E before RL starts"""
    lr: float = 3e-4
    log_std_min: float = -1.0
    """floor of both densities' log-std (standardised units): a near-deterministic expert model is
    otherwise so peaked that every off-demonstration transition gets the same clipped penalty"""
    clip: float = 100.0
    scale: float = 0.1
    """reward = scale * (log p_E - log p_A); log-ratios of many-dimensional densities are large"""
    bf16: bool = True
    """both densities' hidden layers in bfloat16 (output layers fp32), as SAC's networks"""
    cache_expert: bool = True
    """compute the frozen log p_E(o'|o) once per stored transition instead of once per update"""
    components: int = 1
    """Gaussian components of both densities: 1 a conditional Gaussian, K > 1 a mixture of K"""


@dataclass
class GAILConfig:
    hidden: int = 128
    gp_coef: float = 10.0
    reward_kind: Literal["gail", "airl"] = "gail"
    lr: float = 3e-4
    gp_batch: int = 64
    """interpolates per step for the gradient penalty (an unbiased estimate of the same expectation
    on fewer samples, see imitation_rewards.GAILReward); 0: one per batch pair (the full batch)"""
    bf16: bool = True
    """the discriminator's hidden layers in bfloat16 (output layer fp32), as SAC's networks"""
    gp_space: Literal["raw", "standardised"] = "standardised"
    """input space of the gradient penalty: raw observations/actions (DAC) or the standardised inputs
    the discriminator sees (scale-free; see protege.rl.rewards.GAILReward._gradient_penalty)"""
    disc_every: int = 2
    """train the discriminator on every this-many-th SAC update (its reward is read on every one); 2 halves
    its cost per step (DAC-style implementations also update the discriminator less often than SAC)"""


@dataclass
class BCConfig:
    steps: int = 5000
    batch_size: int = 256
    lr: float = 1e-3
    hidden: int = 256


@dataclass
class Config:
    name: str = "form-cartpole"
    seed: int = 0
    method: Literal["form", "gail", "gaifo", "bc", "sac"] = "form"
    """gail: state-action discriminator; gaifo: state-only (s, s'); sac: the environment's reward"""
    task: str = "cartpole-swingup"
    action_repeat: int = 1
    time_limit: float = 0.0
    """episode length in simulated seconds; 0: the suite's default (1000 simulator steps)"""
    demos: str = ""
    """folder of a Minari dataset from `protege data control-demos`; empty: record into the run dir"""
    demo_episodes: int = 10
    random_episodes: int = 20
    """episodes of a uniform random policy recorded with the demos (the normalisation's zero)"""
    distractors: DistractorsConfig = field(default_factory=DistractorsConfig)
    sac: SACConfig = field(default_factory=SACConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    form: FORMConfig = field(default_factory=FORMConfig)
    gail: GAILConfig = field(default_factory=GAILConfig)
    bc: BCConfig = field(default_factory=BCConfig)
    eval_episodes: int = 5
    """episodes of the final evaluation that the summary reports"""


def _demos(cfg: Config, run_dir: Path, base_dim: int) -> ControlDemos:
    folder = Path(cfg.demos) if cfg.demos else run_dir / "demos"
    if not cfg.demos and not folder.exists():
        record_demos(cfg.task, cfg.demo_episodes, folder, seed=100_000 + cfg.seed, action_repeat=cfg.action_repeat,
                     random_episodes=cfg.random_episodes, time_limit=cfg.time_limit or None)
    demos = load_demos(folder, cfg.task, base_dim, action_repeat=cfg.action_repeat)
    return demos


def _with_distractors(demos: ControlDemos, dcfg: DistractorConfig, seed: int) -> ControlDemos:
    """Append distractor features to every demonstration episode (seeded apart from the agent's)."""
    rng = np.random.default_rng([seed, 0xDE40])
    obs, nxt = [], []
    for ep in np.unique(demos.episode):
        rows = demos.episode == ep
        feats = distractor_features(dcfg, int(rows.sum()) + 1, rng)
        obs.append(np.concatenate([demos.obs[rows], feats[:-1]], 1))
        nxt.append(np.concatenate([demos.next_obs[rows], feats[1:]], 1))
    return ControlDemos(np.concatenate(obs), np.concatenate(nxt), demos.actions, demos.episode, demos.task,
                        demos.expert_return, demos.random_return)


def _reward_model(cfg: Config, demos: ControlDemos):
    from protege.nn.density import ConditionalGaussian, ConditionalMixture
    from protege.rl.rewards import FORMReward, GAILReward, fit_density
    if cfg.method == "form":
        stats = ConditionalGaussian.stats(demos.obs, demos.next_obs)
        dim = demos.obs.shape[1]
        if cfg.form.components < 1:
            raise UserError(f"form.components must be >= 1, got {cfg.form.components}")
        extra = {"components": cfg.form.components} if cfg.form.components > 1 else {}
        model = ConditionalMixture if cfg.form.components > 1 else ConditionalGaussian
        expert = model(dim, cfg.form.hidden, cfg.form.log_std_min, name="p_E", bf16=cfg.form.bf16, **stats, **extra)
        fit_density(expert, demos.obs, demos.next_obs, cfg.form.expert_steps, seed=cfg.seed)
        agent = model(dim, cfg.form.hidden, cfg.form.log_std_min, name="p_A", bf16=cfg.form.bf16, **stats, **extra)
        return FORMReward(expert, agent, cfg.form.clip, cfg.form.scale, cfg.form.lr, cfg.form.cache_expert)
    if cfg.method in ("gail", "gaifo"):
        second = demos.actions if cfg.method == "gail" else demos.next_obs
        variant = "state_action" if cfg.method == "gail" else "state_only"
        return GAILReward(demos.obs, second, variant, cfg.gail.hidden, cfg.gail.gp_coef,
                          cfg.gail.reward_kind, cfg.gail.lr, seed=cfg.seed, gp_batch=cfg.gail.gp_batch,
                          bf16=cfg.gail.bf16, gp_space=cfg.gail.gp_space, disc_every=cfg.gail.disc_every)
    return None


def normalised(ret: float, demos: ControlDemos) -> float:
    return (ret - demos.random_return) / (demos.expert_return - demos.random_return)


def run(cfg: Config, run) -> dict:
    from protege.core.runs import seed_everything
    torch.set_num_threads(1)
    seed_everything(cfg.seed)
    dcfg = DistractorConfig(cfg.distractors.kind, cfg.distractors.count)
    limit = cfg.time_limit or None
    env = make_control_env(cfg.task, cfg.seed, dcfg, cfg.action_repeat, limit)
    eval_env = make_control_env(cfg.task, cfg.seed + 1, dcfg, cfg.action_repeat, limit)
    base_dim = env.observation_space.shape[0] - dcfg.dims
    demos = _demos(cfg, Path(run.dir), base_dim)
    if dcfg.dims:
        demos = _with_distractors(demos, dcfg, cfg.seed)
    if cfg.method == "bc":
        from protege.systems.form.bc import train_bc
        policy, bc_metrics = train_bc(demos, cfg.bc, cfg.seed, run)
        returns = evaluate(eval_env, policy, cfg.eval_episodes, seed=20_000)
        extra = {"env_steps": 0} | bc_metrics
    else:
        reward_model = _reward_model(cfg, demos)
        agent = SAC(env.observation_space.shape[0], env.action_space.shape[0], cfg.sac, reward_model)
        out = train_online(env, eval_env, agent, cfg.loop, cfg.seed, run=run)
        returns = evaluate(eval_env, agent, cfg.eval_episodes, seed=20_000)
        extra = {"env_steps": cfg.loop.steps, "steps_per_s": round(out["steps_per_s"], 1)}
        run.save_checkpoint(cfg.loop.steps, {f"agent.{k}": v for k, v in agent.state_dict().items()}, {})
    ret = float(np.mean(returns))
    summary = {"method": cfg.method, "task": cfg.task, "distractors": dcfg.dims, "seed": cfg.seed,
               "return": round(ret, 1), "normalised_return": round(normalised(ret, demos), 4),
               "expert_return": round(demos.expert_return, 1), "random_return": round(demos.random_return, 1)}
    run.log(cfg.loop.steps if cfg.method != "bc" else cfg.bc.steps,
            {"eval/final_return": ret, "eval/normalised_return": summary["normalised_return"]})
    return summary | extra
