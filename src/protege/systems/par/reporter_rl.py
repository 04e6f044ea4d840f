"""Experiment `par_reporter`: train the Reporter by RL on the Planner's task success
(arXiv:2302.00763), the Planner and the Actor fixed.

One iteration plays `episodes` episodes with the Reporter sampling its reports, then takes one
gradient step of `protege.losses.reinforce.reinforce_loss`: every report of an episode is credited
with the episode's success, against a leave-one-out baseline (the mean success of the iteration's
other episodes). Then the greedy Reporter is evaluated on held-out seeds beside no Reporter and the
hand-written oracle, with the same Planner and Actor, and the share of the gap it closes is reported:

    gap_closed = (success(learnt) - success(none)) / (success(oracle) - success(none))

Episode seeds are TRAIN_SEED_START + stream_seed(seed, "par/reporter") + i; each iteration's
sampling generator is seeded from (seed, iteration), and the checkpoint holds the optimiser and the
RNGs, so a killed run resumes to the same weights and metrics.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from protege.core.atomic import write_json_atomic
from protege.core.config_help import check_fields
from protege.core.errors import UserError
from protege.core.runs import Run
from protege.core.seeds import rng_state, seed_everything, set_rng_state, stream_seed
from protege.losses.reinforce import reinforce_loss
from protege.nn.reporter import ReportPolicy
from protege.rl.iterations import run_iterations
from protege.systems.par.dialogue import (
    REPORTS,
    LearntReporter,
    NoReporter,
    OracleReporter,
)
from protege.systems.par.episode import evaluate, load_actor, play_episode
from protege.systems.par.planners import make_planner
from protege.worlds.babyai.examine import check_world, make_examine_env
from protege.worlds.babyai.levels import TRAIN_SEED_START

REPORTER_FILE = "reporter.json"


@dataclass
class Config:
    name: str = "par_reporter"
    """run name: the run directory is runs/<name>"""
    seed: int = 0
    """seeds the Reporter's initialisation, its sampling and the episode seeds"""
    planner: str = "rule"
    """'rule', a model folder (a par_planner run or a Hugging Face folder) or an http(s):// URL"""
    planner_model: str = ""
    """the served model's name (http planners)"""
    planner_cache: str = ""
    """JSONL cache of planner replies by prompt hash ('' : none; required for http)"""
    actor: str = "scripted"
    """'scripted' (the world's scripted expert, privileged) or a par_actor run directory"""
    size: int = 6
    """room side, walls included"""
    n_objects: int = 3
    """objects in the room (2-4)"""
    iterations: int = 100
    """policy-gradient steps"""
    episodes: int = 32
    """episodes per step"""
    lr: float = 0.1
    """Adam learning rate of the Reporter (a linear policy: Adam moves each weight ~lr a step)"""
    ent_coef: float = 0.01
    """entropy bonus weight"""
    max_turns: int = 8
    """Planner turns per episode"""
    segment_steps: int = 24
    """most Actor steps per instruction"""
    reprompts: int = 1
    """re-asks after a malformed Planner reply before the episode fails"""
    eval_episodes: int = 200
    """held-out episodes (seeds from 10^9) per Reporter at the end; 0 skips"""
    checkpoint_every: int = 10
    """save a checkpoint every this many iterations (and at the end)"""

    def __post_init__(self):
        check_fields(self, planner="nonempty", actor="nonempty", iterations=">=1", lr=">0", ent_coef=">=0", max_turns=">=1",
                     segment_steps=">=1", reprompts=">=0", eval_episodes=">=0",
                     checkpoint_every=">=1")
        check_world(self.size, self.n_objects)
        if self.episodes < 2:
            raise ValueError(f"episodes must be >= 2 (the baseline is the other episodes' mean), got {self.episodes}")


def load_reporter(path: str | Path) -> LearntReporter:
    """The greedy Reporter of a par_reporter run (its latest checkpoint)."""
    from protege.core.runs import load_weights
    path = Path(path)
    latest = path / "checkpoints" / "latest"
    if not latest.is_file() or not (path / REPORTER_FILE).is_file():
        raise UserError(f"reporter {str(path)!r}: neither none/oracle/colour nor a par_reporter run "
                        f"(needs {REPORTER_FILE} and checkpoints/latest)")
    spec = json.loads((path / REPORTER_FILE).read_text())
    if spec["reports"] != REPORTS:
        raise UserError(f"{path / REPORTER_FILE}: trained on another report set")
    policy = ReportPolicy(len(REPORTS))
    policy.load_state_dict(load_weights(path / "checkpoints" / latest.read_text().strip() / "model.safetensors"))
    return LearntReporter(policy.eval())


def run(config: Config, run: Run) -> dict:
    seed_everything(config.seed)
    torch.set_num_threads(1)
    planner = make_planner(config.planner, config.planner_model, config.planner_cache)
    actor = load_actor(config.actor)
    env = make_examine_env(config.size, config.n_objects)
    policy = ReportPolicy(len(REPORTS))
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    if run.is_main:
        write_json_atomic(Path(run.dir) / REPORTER_FILE, {"reports": REPORTS})
    start = 0
    restored = run.restore()
    if restored is not None:
        weights, state = restored
        policy.load_state_dict(weights)
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        start = state["step"]
    first_seed = TRAIN_SEED_START + stream_seed(config.seed, "par/reporter")
    play = {"max_turns": config.max_turns, "segment_steps": config.segment_steps, "reprompts": config.reprompts}

    def iteration(it: int) -> dict:
        generator = torch.Generator().manual_seed(stream_seed(config.seed, f"par/reporter/{it}"))
        reporter = LearntReporter(policy, sample=True, generator=generator)
        returns, episode_of = [], []
        for e in range(config.episodes):
            before = len(reporter.choices)
            result = play_episode(env, first_seed + it * config.episodes + e, planner, actor, reporter, **play)
            returns.append(float(result.success))
            episode_of += [e] * (len(reporter.choices) - before)
        g = torch.tensor(returns)
        baseline = (g.sum() - g) / (len(g) - 1)
        metrics = {"train/success": g.mean().item(), "train/reports": len(reporter.choices)}
        if reporter.choices:
            logits = policy(torch.as_tensor(np.stack(reporter.views)))
            loss, extra = reinforce_loss(logits, torch.tensor(reporter.choices), g, baseline,
                                         torch.tensor(episode_of), config.ent_coef)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            metrics.update({k: float(v) for k, v in extra.items()})
        return metrics

    def checkpoint():
        return policy.state_dict(), {"optimizer": optimizer.state_dict(), "rng": rng_state()}

    run_iterations(run, "reporter RL", start, config.iterations, iteration, checkpoint,
                   log_every=1, checkpoint_every=config.checkpoint_every)
    summary = {"planner": getattr(planner, "name", config.planner), "actor": actor.name}
    if config.eval_episodes:
        policy.eval()
        rows = {"none": NoReporter(), "oracle": OracleReporter(), "learnt": LearntReporter(policy)}
        for key, reporter in rows.items():
            out = Path(run.dir) / f"eval_{key}.jsonl" if run.is_main else None
            result = evaluate(planner, actor, reporter, config.eval_episodes, config.size,
                              config.n_objects, out=out, **play)
            summary.update({f"eval/{key}/{k}": v for k, v in result.items()})
        gap = summary["eval/oracle/success"] - summary["eval/none/success"]
        summary["eval/gap_closed"] = ((summary["eval/learnt/success"] - summary["eval/none/success"]) / gap
                                      if gap > 0 else float("nan"))
        run.log(config.iterations, {k: v for k, v in summary.items() if isinstance(v, float)})
    return summary
