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

import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from protege.core.config_help import check_fields
from protege.core.precision import announce, resolve_precision
from protege.core.seeds import seed_everything, stream_seed, stream_seeds
from protege.rl.online import LoopConfig, evaluate, train_online
from protege.rl.sac import SAC, SACConfig
from protege.worlds.control.demos import ControlDemos, load_demos, record_demos
from protege.worlds.control.suite import (
    DistractorConfig,
    distractor_features,
    make_control_env,
    task_names,
)


def check_choices(config) -> None:
    """Raise ValueError for a Literal-typed field holding a value outside its choices (a config built in
    Python skips the check that loading a recipe makes)."""
    hints = typing.get_type_hints(type(config))
    for f in fields(config):
        choices = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is Literal else ()
        if choices and getattr(config, f.name) not in choices:
            raise ValueError(f"{f.name} must be one of {', '.join(map(str, choices))}, got {getattr(config, f.name)!r}")


@dataclass
class DistractorsConfig:
    kind: Literal["ou", "sine", "body"] = "ou"
    """dynamics of the distractor units: Ornstein-Uhlenbeck noise, sinusoids, or bouncing balls (4 dims each)"""
    count: int = 0
    """number of distractor units appended to observations (0: none)"""

    def __post_init__(self):
        check_choices(self)
        check_fields(self, count=">=0")


@dataclass
class FORMConfig:
    hidden: int = 256
    """width of the two hidden layers of both transition densities"""
    expert_steps: int = 3000
    """offline maximum-likelihood steps of the expert density p_E before RL starts"""
    lr: float = 3e-4
    """Adam learning rate of the agent density p_A (trained alongside SAC)"""
    log_std_min: float = -1.0
    """floor of both densities' log-std (standardised units): a near-deterministic expert model is
    otherwise so peaked that every off-demonstration transition gets the same clipped penalty"""
    clip: float = 100.0
    """bound on |log p_E - log p_A| before scaling (a guard against a diverging density)"""
    scale: float = 0.1
    """reward = scale * (log p_E - log p_A); log-ratios of many-dimensional densities are large"""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """both densities' hidden layers in bfloat16 (output layers fp32) with bf16; auto: bf16 only where the
    CPU has native bfloat16, else fp32 (as sac.precision, see protege.core.precision)"""
    cache_expert: bool = True
    """compute the frozen log p_E(o'|o) once per stored transition instead of once per update"""
    components: int = 1
    """Gaussian components of both densities: 1 a conditional Gaussian, K > 1 a mixture of K"""

    def __post_init__(self):
        check_fields(self, hidden=">=1", expert_steps=">=0", lr=">0", clip=">0", scale=">0", components=">=1")
        self.precision = resolve_precision(self.precision)
        if self.log_std_min >= 2.0:  # the densities' log_std_max
            raise ValueError(f"log_std_min must be below the densities' log-std ceiling 2.0, got {self.log_std_min}")


@dataclass
class GAILConfig:
    hidden: int = 128
    """width of the discriminator's two hidden layers"""
    gp_coef: float = 10.0
    """weight of the gradient penalty (DAC, arXiv:1809.02925); 0: none"""
    reward_kind: Literal["gail", "airl"] = "gail"
    """the agent's reward from the logit l: gail = -log(1 - D) = softplus(l), airl = l (see losses.adversarial)"""
    lr: float = 3e-4
    """Adam learning rate of the discriminator"""
    gp_batch: int = 64
    """interpolates per step for the gradient penalty (an unbiased estimate of the same expectation
    on fewer samples, see protege.rl.rewards.GAILReward); 0: one per batch pair (the full batch)"""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """the discriminator's hidden layers in bfloat16 (output layer fp32) with bf16; auto: bf16 only where
    the CPU has native bfloat16, else fp32 (as sac.precision, see protege.core.precision)"""
    gp_space: Literal["raw", "standardised"] = "standardised"
    """input space of the gradient penalty: raw observations/actions (DAC) or the standardised inputs
    the discriminator sees (scale-free; see protege.rl.rewards.GAILReward._gradient_penalty)"""
    disc_every: int = 2
    """train the discriminator on every this-many-th SAC update (its reward is read on every one); 2 halves
    its cost per step (DAC-style implementations also update the discriminator less often than SAC)"""

    def __post_init__(self):
        check_choices(self)
        check_fields(self, hidden=">=1", gp_coef=">=0", lr=">0", gp_batch=">=0", disc_every=">=1")
        self.precision = resolve_precision(self.precision)


@dataclass
class BCConfig:
    steps: int = 5000
    """optimiser steps of behavioural cloning"""
    batch_size: int = 256
    """(observation, action) pairs per step"""
    lr: float = 1e-3
    """Adam learning rate (constant)"""
    hidden: int = 256
    """width of the Gaussian policy's two hidden layers"""
    checkpoint_every: int = 1000
    """save the training state (for --resume) every this many steps, and at the last; 0: only at the last"""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """the offline loop's autocast (trainer.precision of protege.rl.fit): auto is bf16 only where the CPU
    has native bfloat16, else fp32"""

    def __post_init__(self):
        check_fields(self, steps=">=1", batch_size=">=1", lr=">0", hidden=">=1", checkpoint_every=">=0")
        self.precision = resolve_precision(self.precision)


@dataclass
class Config:
    name: str = "form-cartpole"
    """run name: the run directory is runs/<name>"""
    seed: int = 0
    """the run's seed; every other seed (environments, evaluation, replay, distractors) derives from it"""
    method: Literal["form", "gail", "gaifo", "bc", "sac"] = "form"
    """gail: state-action discriminator; gaifo: state-only (s, s'); sac: the environment's reward"""
    task: str = "cartpole-swingup"
    """Control Suite task as domain-task (e.g. cartpole-swingup, point_mass-easy, reacher-easy)"""
    action_repeat: int = 1
    """simulator steps per agent decision"""
    time_limit: float = 0.0
    """episode length in simulated seconds; 0: the suite's default (1000 simulator steps)"""
    demos: str = ""
    """folder of a Minari dataset from `protege data control-demos`; empty: record into the run dir"""
    demo_episodes: int = 10
    """expert episodes recorded when `demos` is empty"""
    random_episodes: int = 20
    """episodes of a uniform random policy recorded with the demos (the normalisation's zero)"""
    distractors: DistractorsConfig = field(default_factory=DistractorsConfig)
    """task-irrelevant features appended to observations (FORM's robustness setting)"""
    sac: SACConfig = field(default_factory=SACConfig)
    """the RL learner of every method but bc"""
    loop: LoopConfig = field(default_factory=LoopConfig)
    """environment steps, logging, evaluation and checkpoints of the SAC loop"""
    form: FORMConfig = field(default_factory=FORMConfig)
    """FORM's transition densities (method form)"""
    gail: GAILConfig = field(default_factory=GAILConfig)
    """the discriminator (methods gail and gaifo)"""
    bc: BCConfig = field(default_factory=BCConfig)
    """behavioural cloning (method bc)"""
    eval_episodes: int = 5
    """episodes of the final evaluation that the summary reports"""

    def __post_init__(self):
        check_choices(self)
        check_fields(self, name="nonempty", seed=">=0", action_repeat=">=1", time_limit=">=0",
                     demo_episodes=">=1", random_episodes=">=1", eval_episodes=">=1")
        if self.task not in task_names():
            from protege.core.errors import unknown_name
            raise ValueError(str(unknown_name("control task", self.task, task_names())))


def _demos(cfg: Config, run_dir: Path, base_dim: int) -> ControlDemos:
    folder = Path(cfg.demos) if cfg.demos else run_dir / "demos"
    if not cfg.demos and not folder.exists():
        record_demos(cfg.task, cfg.demo_episodes, folder, seed=stream_seed(cfg.seed, "demos"),
                     action_repeat=cfg.action_repeat, random_episodes=cfg.random_episodes,
                     time_limit=cfg.time_limit or None)
    demos = load_demos(folder, cfg.task, base_dim, action_repeat=cfg.action_repeat)
    return demos


def _with_distractors(demos: ControlDemos, dcfg: DistractorConfig, seed: int) -> ControlDemos:
    """Append distractor features to every demonstration episode (seeded apart from the agent's)."""
    rng = np.random.default_rng(stream_seed(seed, "demo_distractors"))
    obs, nxt = [], []
    for ep in np.unique(demos.episode):
        rows = demos.episode == ep
        feats = distractor_features(dcfg, int(rows.sum()) + 1, rng)
        obs.append(np.concatenate([demos.obs[rows], feats[:-1]], 1))
        nxt.append(np.concatenate([demos.next_obs[rows], feats[1:]], 1))
    return ControlDemos(np.concatenate(obs), np.concatenate(nxt), demos.actions, demos.episode, demos.task,
                        demos.expert_return, demos.random_return)


def _reward_model(cfg: Config, demos: ControlDemos, fit_expert: bool = True):
    """FORM's densities or the GAIL/GAIfO discriminator (None for sac). `fit_expert=False` skips FORM's
    offline fit of p_E (a resumed run loads its fitted weights from the checkpoint)."""
    from protege.nn.density import ConditionalGaussian, ConditionalMixture
    from protege.rl.rewards import FORMReward, GAILReward, fit_density
    if cfg.method == "form":
        stats = ConditionalGaussian.stats(demos.obs, demos.next_obs)
        dim = demos.obs.shape[1]
        extra = {"components": cfg.form.components} if cfg.form.components > 1 else {}
        model = ConditionalMixture if cfg.form.components > 1 else ConditionalGaussian
        expert = model(dim, cfg.form.hidden, cfg.form.log_std_min, name="p_E", bf16=cfg.form.precision == "bf16", **stats, **extra)
        if fit_expert:
            fit_density(expert, demos.obs, demos.next_obs, cfg.form.expert_steps,
                        seed=stream_seed(cfg.seed, "expert_density"))
        agent = model(dim, cfg.form.hidden, cfg.form.log_std_min, name="p_A", bf16=cfg.form.precision == "bf16", **stats, **extra)
        return FORMReward(expert, agent, cfg.form.clip, cfg.form.scale, cfg.form.lr, cfg.form.cache_expert)
    if cfg.method in ("gail", "gaifo"):
        second = demos.actions if cfg.method == "gail" else demos.next_obs
        variant = "state_action" if cfg.method == "gail" else "state_only"
        return GAILReward(demos.obs, second, variant, cfg.gail.hidden, cfg.gail.gp_coef,
                          cfg.gail.reward_kind, cfg.gail.lr, seed=stream_seed(cfg.seed, "discriminator"),
                          gp_batch=cfg.gail.gp_batch, precision=cfg.gail.precision, gp_space=cfg.gail.gp_space,
                          disc_every=cfg.gail.disc_every)
    return None


def _precisions(cfg: Config) -> dict[str, str]:
    """The resolved precision of every network a SAC-based method trains."""
    models = {"form": {"form.precision": cfg.form.precision}, "sac": {}}
    return {"sac.precision": cfg.sac.precision, **models.get(cfg.method, {"gail.precision": cfg.gail.precision})}


def normalised(ret: float, demos: ControlDemos) -> float:
    return (ret - demos.random_return) / (demos.expert_return - demos.random_return)


def run(cfg: Config, run) -> dict:
    # seeded before anything random is built: environments, demonstrations, networks
    seed_everything(cfg.seed)
    torch.set_num_threads(1)
    if cfg.method != "bc":  # BC's offline loop announces its own
        announce(_precisions(cfg))
    dcfg = DistractorConfig(cfg.distractors.kind, cfg.distractors.count)
    limit = cfg.time_limit or None
    env = make_control_env(cfg.task, stream_seed(cfg.seed, "env"), dcfg, cfg.action_repeat, limit)
    eval_env = make_control_env(cfg.task, stream_seed(cfg.seed, "eval_env"), dcfg, cfg.action_repeat, limit)
    base_dim = env.observation_space.shape[0] - dcfg.dims
    demos = _demos(cfg, Path(run.dir), base_dim)
    if dcfg.dims:
        demos = _with_distractors(demos, dcfg, cfg.seed)
    final_seeds = stream_seeds(cfg.seed, "final_eval", cfg.eval_episodes)
    if cfg.method == "bc":
        from protege.systems.form.bc import train_bc
        policy, bc_metrics = train_bc(demos, cfg.bc, cfg.seed, run)  # resumes inside the offline loop
        returns = evaluate(eval_env, policy, final_seeds)
        extra = {"env_steps": 0} | bc_metrics
    else:
        restored = run.restore()
        reward_model = _reward_model(cfg, demos, fit_expert=restored is None)
        agent = SAC(env.observation_space.shape[0], env.action_space.shape[0], cfg.sac, reward_model)
        out = train_online(env, eval_env, agent, cfg.loop, cfg.seed, run=run, restored=restored)
        returns = evaluate(eval_env, agent, final_seeds)
        extra = {"env_steps": cfg.loop.steps, "steps_per_s": round(out["steps_per_s"], 1)}
    ret = float(np.mean(returns))
    summary = {"method": cfg.method, "task": cfg.task, "distractors": dcfg.dims, "seed": cfg.seed,
               "return": round(ret, 1), "normalised_return": round(normalised(ret, demos), 4),
               "expert_return": round(demos.expert_return, 1), "random_return": round(demos.random_return, 1)}
    run.log(cfg.loop.steps if cfg.method != "bc" else cfg.bc.steps,
            {"eval/final_return": ret, "eval/normalised_return": summary["normalised_return"]})
    return summary | extra
