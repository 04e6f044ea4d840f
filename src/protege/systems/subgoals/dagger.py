"""Experiment `subgoals_dagger`: DAgger (Ross, Gordon and Bagnell 2011, arXiv:1011.0686) for the
hierarchical agent of `subgoals_bc`.

BC trains the chooser only on the bot's own episodes, so it never sees the states its own mistakes
lead to, and its errors compound (the diagnostics of docs/results/subgoals.md put most of the gap
to the oracle high level in the chooser's choices). Each iteration here, the agent plays `episodes`
training episodes by its own choices (greedy, its replan rule) while a BabyAIBot follows each one
(`replan(action_taken)`, the bot's DAgger mode) and says, at every step, its subgoal and the action
it would take from the state the agent reached. Those steps are annotated exactly as the
demonstrations are (`worlds.babyai.subgoals.bot_subgoals`: a phrase per step, a boundary where it
changes) and join an aggregate; then `updates` optimiser steps of the `subgoals_bc` loss (chooser,
low level and done head) on batches drawn from the demonstrations and the aggregate: uniformly from
their union (`mix: union`, DAgger's dataset aggregation; the agent's episodes are long, about 7
times a demonstration's on MiniBossLevel, so they carry far more than their share of episodes), or
`agent_fraction` of each batch from the aggregate (`mix: fraction`; 0 is the control, continued BC
on the demonstrations alone with the same updates, which plays no episodes). Where the bot cannot plan from the agent's state, that
episode's labels end (the agent plays on, unlabelled); `charts/labelled_fraction` counts them.
With `beta` > 0 a step executes the bot's action with probability beta * beta_decay^iteration
(DAgger's mixture policy, so the first aggregates stay nearer the bot's own states); the logged
success is of the episodes as played.

Episode seeds are TRAIN_SEED_START + stream_seed(seed, "subgoals/dagger") + i, consecutive across
iterations (never a demonstration's or an evaluation's); batches are drawn by a generator seeded by
(seed, iteration, update). The checkpoint holds the weights, the optimiser, the RNGs and the
aggregate, so a killed run resumes to the same weights and metrics.
"""

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from protege.core.config_help import check_fields
from protege.core.errors import UserError
from protege.core.runs import Run, read_metrics
from protege.core.seeds import rng_state, seed_everything, set_rng_state, stream_seed
from protege.nn.babyai_policy import tokenize, view_tensors
from protege.rl.iterations import run_iterations
from protege.rl.lockstep import lockstep
from protege.systems.subgoals.batches import make_batch
from protege.systems.subgoals.evaluate import load_agent
from protege.systems.subgoals.experiment import (
    accuracy,
    chooser_loss,
    evaluate_all,
    hierarchy_loss,
    save_agent_spec,
)
from protege.worlds.babyai.demos import current_subgoal
from protege.worlds.babyai.levels import (
    TRAIN_SEED_START,
    check_level,
    episode_success,
    make_env,
)
from protege.worlds.babyai.subgoals import (
    SubgoalData,
    bot_subgoals,
    boundaries,
    load_subgoal_data,
)


@dataclass
class Config:
    name: str = "subgoals_dagger"
    """run name: the run directory is runs/<name>"""
    seed: int = 0
    """seeds the episode seeds and the batches"""
    level: str = "BabyAI-PutNextLocal-v0"
    """BabyAI level; the demonstrations must be of this level"""
    data: str = "data/subgoals/PutNextLocal-phrases"
    """the demonstrations (`protege data subgoals`), mixed into every batch"""
    n_demos: int = 0
    """use the first n demonstrations (0: all): the BC run's"""
    init_from: str = "runs/subgoals_bc"
    """a subgoals_bc run: the agent to start from"""
    iterations: int = 20
    """collect-then-train iterations"""
    episodes: int = 32
    """episodes the agent plays (in lockstep) and the bot labels, per iteration"""
    updates: int = 16
    """optimiser steps per iteration"""
    batch_size: int = 32
    """episodes per optimiser step"""
    mix: Literal["union", "fraction"] = "union"
    """batches drawn uniformly from demonstrations + aggregate, or `agent_fraction` from the aggregate"""
    agent_fraction: float = 0.5
    """mix "fraction": share of each batch drawn from the agent's labelled episodes (0: none, and no
    episodes are played: the continued-BC control)"""
    beta: float = 0.0
    """DAgger's mixture: the probability that a step executes the bot's action instead of the
    agent's in the first iteration, times `beta_decay` each iteration after (0: the agent always acts)"""
    beta_decay: float = 0.5
    """factor on `beta` per iteration (beta_i = beta * beta_decay^i)"""
    train: Literal["all", "chooser"] = "all"
    """what learns: all three parts by the subgoals_bc loss, or the chooser alone by its NLL (the low
    level and the done head stay the BC run's, so when the phrase changes stays as it was)"""
    lr: float = 1e-4
    """Adam learning rate"""
    grad_clip: float = 1.0
    """max global gradient norm"""
    done_weight: float = 1.0
    """weight of the done head's loss, as in subgoals_bc"""
    done_frames: int = 128
    """done-head examples per batch, as in subgoals_bc (0: all)"""
    replan: Literal["done", "done_other", "done_keep", "every_step"] = "done_other"
    """the acting rule while collecting and evaluating (nn/subgoal_agent.py)"""
    checkpoint_every: int = 1
    """checkpoint every this many iterations (and at the last)"""
    eval_episodes: int = 200
    """held-out episodes (seeds from 10^9) on `level` and each of `transfer_levels`; 0 skips"""
    transfer_levels: list[str] = field(default_factory=list)
    """levels not trained on, evaluated too"""
    agreement_episodes: int = 100
    """held-out bot episodes for the chooser's agreement with the bot; 0 skips"""

    def __post_init__(self):
        check_fields(self, data="nonempty", init_from="nonempty", n_demos=">=0", iterations=">=1",
                     episodes=">=1", updates=">=1", batch_size=">=1", agent_fraction="[0,1]", lr=">0",
                     beta="[0,1]", beta_decay="[0,1]",
                     grad_clip=">=0", done_weight=">=0", done_frames=">=0", checkpoint_every=">=1",
                     eval_episodes=">=0", agreement_episodes=">=0")
        for key, level in [("level", self.level)] + [("transfer_levels", t) for t in self.transfer_levels]:
            try:
                check_level(level)
            except UserError as e:
                raise ValueError(f"{key}: {e}") from None


@torch.no_grad()
def labelled_episodes(agent, level: str, seeds: list[int], n_envs: int = 16, beta: float = 0.0,
                      rng: np.random.Generator | None = None) -> tuple[SubgoalData | None, list[dict]]:
    """The agent plays one episode per seed (greedy, in lockstep); a bot follows each and labels
    every step with its subgoal and action; with probability `beta` (drawn from `rng`) a labelled
    step executes the bot's action instead of the agent's (DAgger's mixture policy). Returns (the
    labelled steps as a SubgoalData, or None if no step could be labelled; per seed {seed, success,
    taken: the actions executed, labelled: how many of its first steps carry labels})."""
    from minigrid.utils.baby_ai_bot import BabyAIBot

    envs = [make_env(level) for _ in range(min(n_envs, len(seeds)))]
    slot, finished, mem = [None] * len(envs), {}, agent.memory(len(envs))

    def on_start(i, env, seed, ob):
        slot[i] = {"seed": seed, "mission": str(ob["mission"]), "bot": BabyAIBot(env.unwrapped), "images": [],
                   "directions": [], "actions": [], "records": [], "reasons": [], "labelled": True,
                   "played": []}

    def act(obs, fresh, active):
        nonlocal mem
        for i in active:  # the bot's label for the view the agent acts on
            _label(slot[i], obs[i])
        mem = agent.reset_rows(mem, fresh)
        images, directions = view_tensors(obs)
        actions, _, mem = agent.step(images, directions, tokenize([o["mission"] for o in obs]), mem,
                                     True, None, True)
        taken = actions.tolist()
        for i in active:
            s = slot[i]
            if beta > 0 and s["labelled"] and rng.random() < beta:
                taken[i] = s["actions"][-1]
        return taken

    def on_step(i, action, ob, reward, terminated, truncated):
        s = slot[i]
        s["played"].append(action)
        if terminated or truncated:
            s["success"] = episode_success(terminated, reward)
            if s["labelled"]:  # the view after the last labelled step ends the episode's views
                s["images"].append(ob["image"]); s["directions"].append(int(ob["direction"]))
            finished[s["seed"]] = s

    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints each rejected layout
        lockstep(envs, seeds, act, on_start, on_step)
    played = [finished[s] for s in seeds]
    kept = [p for p in played if p["actions"]]
    return (_as_subgoal_data(level, kept) if kept else None), [
        {"seed": p["seed"], "success": p["success"], "taken": p["played"], "labelled": len(p["actions"])}
        for p in played]


def _label(s: dict, ob: dict) -> None:
    """Ask the bot (told the action the agent took) for its subgoal and action at view `ob`; where
    it cannot plan, the episode's labels end with this view as their last."""
    if not s["labelled"]:
        return
    s["images"].append(ob["image"]); s["directions"].append(int(ob["direction"]))
    try:
        action = int(s["bot"].replan(s["played"][-1] if s["played"] else None))
        record, reason = current_subgoal(s["bot"])
        bot_subgoals([record], [reason])  # a record the annotation cannot read ends the labels too
    except Exception:  # the bot's planner gives up on some states the agent reaches
        s["labelled"] = False
        return
    s["actions"].append(action); s["records"].append(record); s["reasons"].append(reason)


def _as_subgoal_data(level: str, played: list[dict]) -> SubgoalData:
    """Labelled episodes annotated as `worlds.babyai.subgoals.annotate` annotates demonstrations
    (canonical phrases; no paraphrases, which training does not read)."""
    phrases, bounds = [], []
    for p in played:
        canon = [g.phrase() for g in bot_subgoals(p["records"], p["reasons"])]
        phrases += canon
        bounds.append(boundaries(canon))
    return SubgoalData(level=level, images=np.stack([im for p in played for im in p["images"]]).astype(np.uint8),
                       directions=np.asarray([d for p in played for d in p["directions"]], np.int64),
                       actions=np.asarray([a for p in played for a in p["actions"]], np.int64),
                       phrases=np.asarray(phrases, str), paraphrases=np.asarray(phrases, str),
                       boundary=np.concatenate(bounds),
                       missions=np.asarray([p["mission"] for p in played], str),
                       seeds=np.asarray([p["seed"] for p in played], np.int64),
                       lengths=np.asarray([len(p["actions"]) for p in played], np.int64))


def _to_state(data: SubgoalData | None) -> dict | None:
    """The aggregate in a form `torch.load(weights_only=True)` reads back (tensors, strings)."""
    if data is None:
        return None
    return {k: (getattr(data, k).tolist() if getattr(data, k).dtype.kind == "U" else torch.from_numpy(getattr(data, k)))
            for k in data.__dataclass_fields__ if k != "level"}


def _from_state(level: str, state: dict | None) -> SubgoalData | None:
    if state is None:
        return None
    return SubgoalData(level, **{k: np.asarray(v, str) if isinstance(v, list) else v.numpy() for k, v in state.items()})


def _count(row: dict, key: str, config: Config) -> int:
    """An iteration's logged step count; rows of runs logged before the counts were, from its means."""
    if f"charts/{key}" in row:
        return int(row[f"charts/{key}"])
    steps = row["charts/episodic_length"] * config.episodes
    return round(steps if key == "env_steps" else row["charts/labelled_fraction"] * steps)


def batch_indices(n_demos: int, n_agent: int, cfg: Config, iteration: int, update: int) -> np.ndarray:
    """Episode indices into demos + aggregate, drawn with replacement: uniformly from all of them
    (mix "union"), or round(batch_size * agent_fraction) from the aggregate (none while it is
    empty) and the rest from the demonstrations."""
    rng = np.random.default_rng([cfg.seed, iteration, update])
    if cfg.mix == "union":
        return rng.integers(0, n_demos + n_agent, cfg.batch_size).astype(np.int64)
    from_agent = round(cfg.batch_size * cfg.agent_fraction) if n_agent else 0
    demos = rng.integers(0, n_demos, cfg.batch_size - from_agent)
    agent = n_demos + rng.integers(0, n_agent, from_agent) if from_agent else np.zeros(0, np.int64)
    return np.concatenate([demos, agent]).astype(np.int64)


def update_loss(agent, batch, config: Config) -> tuple[torch.Tensor, dict]:
    """The subgoals_bc loss, or with `train: chooser` its chooser term alone (the other parts are
    not run, so nothing of theirs changes, their normalisation statistics included)."""
    if config.train == "all":
        return hierarchy_loss(agent, batch, config.done_weight)
    loss, logits, mask = chooser_loss(agent, batch)
    return loss, {"train/chooser_nll": loss.detach(), "train/chooser_accuracy": accuracy(logits, batch.ep_phrases, mask)}


def run(config: Config, run: Run) -> dict:
    seed_everything(config.seed)
    torch.set_num_threads(1)
    agent, _ = load_agent(Path(config.init_from))
    agent.replan = config.replan
    demos = load_subgoal_data(Path(config.data), level=config.level)
    demos = demos.subset(config.n_demos) if config.n_demos else demos
    save_agent_spec(run, agent)
    index = {p: i for i, p in enumerate(agent.phrases)}
    learner = agent.chooser if config.train == "chooser" else agent
    optimizer = torch.optim.Adam(learner.parameters(), lr=config.lr)
    first_seed = TRAIN_SEED_START + stream_seed(config.seed, "subgoals/dagger")
    start, aggregate, restored = 0, None, run.restore()
    if restored is not None:
        weights, state = restored
        agent.load_state_dict(weights)
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        aggregate = _from_state(config.level, state["aggregate"])
        start = int(state["step"])

    def iteration(it: int) -> dict:
        nonlocal aggregate
        seeds = list(range(first_seed + it * config.episodes, first_seed + (it + 1) * config.episodes))
        agent.eval()
        collect = config.mix == "union" or config.agent_fraction > 0
        beta = config.beta * config.beta_decay ** it
        new, played = labelled_episodes(agent, config.level, seeds, beta=beta,
                                        rng=np.random.default_rng([config.seed, it])) if collect else (None, [])
        steps = sum(len(p["taken"]) for p in played)
        if new is not None:
            aggregate = new if aggregate is None else aggregate.concat(new)
        data = demos if aggregate is None else demos.concat(aggregate)
        learner.train()
        totals: dict = {}
        for u in range(config.updates):
            batch = make_batch(data, batch_indices(len(demos), len(data) - len(demos), config, it, u), index,
                               config.done_frames)
            loss, metrics = update_loss(agent, batch, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(learner.parameters(), config.grad_clip)
            optimizer.step()
            for k, v in {"train/loss": loss.detach(), **metrics}.items():
                totals[k] = totals.get(k, 0.0) + float(v) / config.updates
        agent.eval()
        if not played:  # the control plays nothing
            return totals
        return {**totals, "charts/success_rate": float(np.mean([p["success"] for p in played])),
                "charts/episodic_length": steps / config.episodes,
                "charts/labelled_fraction": sum(p["labelled"] for p in played) / max(steps, 1),
                "charts/env_steps": steps, "charts/labelled_steps": sum(p["labelled"] for p in played),
                "charts/aggregate_episodes": 0 if aggregate is None else len(aggregate)}

    def checkpoint() -> tuple[dict, dict]:
        return agent.state_dict(), {"optimizer": optimizer.state_dict(), "rng": rng_state(),
                                    "aggregate": _to_state(aggregate)}

    run_iterations(run, f"subgoals dagger {config.level}", start, config.iterations, iteration, checkpoint,
                   checkpoint_every=config.checkpoint_every)
    rows = [r for r in read_metrics(run.dir) if "charts/success_rate" in r]
    summary = {"iterations": config.iterations, "updates": config.iterations * config.updates,
               "env_steps": sum(_count(r, "env_steps", config) for r in rows),
               "labelled_steps": sum(_count(r, "labelled_steps", config) for r in rows),
               "aggregate_episodes": rows[-1]["charts/aggregate_episodes"] if rows else 0}
    summary.update(evaluate_all(agent, config, run, step=config.iterations))
    return summary
