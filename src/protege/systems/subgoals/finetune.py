"""Experiment `subgoals_rl`: improve a BC-trained hierarchical agent's chooser by PPO on the
environment reward, with a KL term to the BC chooser (the human-language prior, arXiv:2309.11564).

The chooser decides only at new subgoals, so this is PPO on a semi-MDP: one iteration plays
`episodes` whole episodes (chooser sampled, low level and done head greedy and frozen), then runs
`epochs` passes of `protege.losses.kl_ppo.kl_regularised_ppo_loss` over the decisions, the chooser
re-reading each episode's views (its LSTM) to score them. A decision at step t of an episode that
ends at step T with reward r (BabyAI pays only at success) has return G = gamma^(T-1-t) r; the
advantage is G - V(t), normalised over the iteration's decisions.

Episode seeds are TRAIN_SEED_START + stream_seed(seed, "subgoals/rl") + i, consecutive across
iterations; the checkpoint holds the optimiser, the prior chooser, the RNGs and the next episode
index, so a killed run resumes to the same weights and metrics.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from protege.core.config_help import check_fields
from protege.core.errors import UserError
from protege.core.runs import Run, read_metrics
from protege.core.seeds import rng_state, seed_everything, set_rng_state, stream_seed
from protege.losses.kl_ppo import kl_regularised_ppo_loss
from protege.nn.babyai_policy import tokenize
from protege.nn.subgoal_agent import bar_phrases
from protege.rl.iterations import run_iterations
from protege.systems.subgoals.evaluate import load_agent, play
from protege.systems.subgoals.experiment import save_agent_spec
from protege.worlds.babyai.levels import TRAIN_SEED_START, check_level


@dataclass
class Config:
    name: str = "subgoals_rl"
    """run name: the run directory is runs/<name>"""
    seed: int = 0
    """seeds sampling and the episode seeds"""
    level: str = "BabyAI-PutNextLocal-v0"
    """BabyAI level to improve on (the environment reward)"""
    init_from: str = "runs/subgoals_bc"
    """a subgoals_bc run: its agent is the start, and its chooser the fixed prior"""
    iterations: int = 30
    """collect-then-update iterations"""
    episodes: int = 16
    """episodes played per iteration (in lockstep)"""
    epochs: int = 4
    """passes over each iteration's decisions"""
    lr: float = 1e-4
    """Adam learning rate of the chooser"""
    gamma: float = 0.99
    """discount per environment step"""
    clip: float = 0.2
    """PPO's ratio clipping range"""
    kl_coef: float = 0.1
    """weight of KL(chooser || BC chooser)"""
    vf_coef: float = 0.5
    """weight of the value loss"""
    ent_coef: float = 0.0
    """weight of the entropy bonus"""
    checkpoint_every: int = 5
    """iterations between checkpoints (and the last)"""
    eval_episodes: int = 200
    """held-out episodes (seeds from 10^9) at the end, on level and transfer_levels; 0 skips"""
    transfer_levels: list[str] = field(default_factory=list)
    """levels not used in training, evaluated too"""
    agreement_episodes: int = 100
    """held-out bot episodes for phrase agreement with the bot; 0 skips"""
    replan: Literal["done", "done_other", "done_keep"] = "done"
    """when the agent takes a new phrase, in training and evaluation (nn/subgoal_agent.py); not
    every_step, whose every step is a choice the update here does not count"""

    def __post_init__(self):
        check_fields(self, init_from="nonempty", iterations=">=1", episodes=">=1", epochs=">=1",
                     lr=">0", gamma="[0,1]", clip=">0", kl_coef=">=0", vf_coef=">=0",
                     ent_coef=">=0", checkpoint_every=">=1", eval_episodes=">=0",
                     agreement_episodes=">=0")
        for key, level in [("level", self.level)] + [("transfer_levels", t) for t in self.transfer_levels]:
            try:
                check_level(level)
            except UserError as e:
                raise ValueError(f"{key}: {e}") from None


def decision_batch(played: list[dict], gamma: float) -> dict:
    """The iteration's episodes padded to [B, T] with the decisions marked and their returns."""
    B, T = len(played), max(p["length"] for p in played)
    images = np.zeros((B, T, 7, 7, 3), np.uint8)
    directions = np.zeros((B, T), np.int64)
    choices = np.full((B, T), -1, np.int64)
    barred = np.full((B, T), -1, np.int64)
    returns = np.zeros((B, T), np.float32)
    for b, p in enumerate(played):
        n = p["length"]
        images[b, :n] = np.stack(p["images"]); directions[b, :n] = p["directions"]
        for (step, _), choice, bar in zip(p["subgoals"], p["choices"], p["barred"]):
            choices[b, step], barred[b, step] = choice, bar
            returns[b, step] = gamma ** (n - 1 - step) * p["rewards"][-1]
    t = torch.from_numpy
    return {"images": t(images), "directions": t(directions), "choices": t(choices), "barred": t(barred),
            "returns": t(returns), "mask": t(choices >= 0), "steps": t(np.arange(T)[None] < np.asarray(
                [p["length"] for p in played])[:, None]),
            "missions": tokenize([p["mission"] for p in played])}


def decision_logits(chooser, batch: dict) -> tuple:
    """The chooser's phrase logits [B, T, K] and values [B, T] along the batch's episodes, with each
    decision's barred phrase (replan "done_other") removed: the distribution the choice was drawn
    from, so PPO's ratio, the KL and the entropy are all taken over it."""
    logits, values, _ = chooser(batch["images"], batch["directions"], batch["missions"], mask=batch["steps"])
    return bar_phrases(logits, batch["barred"]), values


def update(agent, prior, optimizer, batch: dict, cfg: Config) -> dict:
    chooser, mask = agent.chooser, batch["mask"]
    with torch.no_grad():
        old_logits, old_values = decision_logits(chooser, batch)
        prior_logits, _ = decision_logits(prior, batch)
        old = torch.log_softmax(old_logits, -1).gather(-1, batch["choices"].clamp_min(0).unsqueeze(-1)).squeeze(-1)
        adv = batch["returns"] - old_values
        sel = adv[mask]
        adv = (adv - sel.mean()) / (sel.std() + 1e-8) if sel.numel() > 1 else adv
    metrics = {}
    for _ in range(cfg.epochs):
        logits, values = decision_logits(chooser, batch)
        loss, metrics = kl_regularised_ppo_loss(logits, prior_logits, batch["choices"], old, adv, values,
                                                batch["returns"], mask, cfg.clip, cfg.kl_coef,
                                                cfg.vf_coef, cfg.ent_coef)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(chooser.parameters(), 0.5)
        optimizer.step()
    return {k: float(v) for k, v in metrics.items()}


def run(config: Config, run: Run) -> dict:
    seed_everything(config.seed)
    torch.set_num_threads(1)
    agent, _ = load_agent(Path(config.init_from))
    agent.replan = config.replan
    prior, _ = load_agent(Path(config.init_from))
    prior = prior.chooser.requires_grad_(False)
    save_agent_spec(run, agent)
    optimizer = torch.optim.Adam(agent.chooser.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(stream_seed(config.seed, "subgoals/rl-sampling"))
    first_seed = TRAIN_SEED_START + stream_seed(config.seed, "subgoals/rl")
    start, restored = 0, run.restore()
    if restored is not None:
        weights, state = restored
        agent.load_state_dict(weights)
        prior.load_state_dict(state["prior"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"]); gen.set_state(state["gen"])
        start = int(state["step"])

    def iteration(it: int) -> dict:
        seeds = list(range(first_seed + it * config.episodes, first_seed + (it + 1) * config.episodes))
        agent.eval()
        played = play(agent, config.level, seeds, n_envs=config.episodes, greedy=False,
                      greedy_actor=True, generator=gen, record=True)
        metrics = update(agent, prior, optimizer, decision_batch(played, config.gamma), config)
        metrics.update({"charts/success_rate": float(np.mean([p["success"] for p in played])),
                        "charts/episodic_length": float(np.mean([p["length"] for p in played])),
                        "charts/subgoals": float(np.mean([len(p["subgoals"]) for p in played]))})
        return metrics

    def checkpoint() -> tuple[dict, dict]:
        return agent.state_dict(), {"prior": prior.state_dict(), "optimizer": optimizer.state_dict(),
                                    "rng": rng_state(), "gen": gen.get_state()}

    run_iterations(run, f"subgoals rl {config.level}", start, config.iterations, iteration, checkpoint,
                   checkpoint_every=config.checkpoint_every)
    rows = [r for r in read_metrics(run.dir) if "charts/success_rate" in r]
    # environment steps of the whole run (every iteration plays `episodes` whole episodes), the
    # budget a flat agent's RL is matched to
    env_steps = round(sum(r["charts/episodic_length"] * config.episodes for r in rows))
    summary = {"iterations": config.iterations, "env_steps": env_steps,
               "train/last_success_rate": rows[-1]["charts/success_rate"],
               "train/last_kl_to_prior": rows[-1]["ppo/kl_to_prior"]}
    from protege.systems.subgoals.experiment import evaluate_all
    summary.update(evaluate_all(agent, config, run, step=config.iterations))
    return summary
