"""Agents that continue scenarios, named on the command line.

    random            a uniform random action every step (seeded per scenario)
    bot               minigrid's BabyAIBot, started at the scenario's state with its instruction
    bot:noise=P       the bot, but with probability P per step a uniform random action instead (the
                      bot is told the action taken and plans again); `bot-noise-P` is the same agent
    RUN_DIR           a trained BabyAI policy (`protege run babyai_bc ...`): its latest checkpoint,
                      greedy actions. Its memory is first built by reading the prefix's observations
                      (as if it had acted them) under the continuation's instruction.
A name that is none of these and not an existing directory is refused in one line.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protege.core.errors import UserError
from protege.worlds.babyai.levels import N_ACTIONS
from protege.worlds.babyai.scenarios import Scenario, play_bot, restore

AGENT_HELP = "agents: random, bot, bot:noise=P (0 <= P <= 1) or a BabyAI run directory"


@dataclass(frozen=True)
class Agent:
    name: str
    """as given on the command line (a run directory: its folder name)"""
    kind: str
    """random | bot | policy"""
    noise: float = 0.0
    path: str = ""


def parse_agent(spec: str) -> Agent:
    """An `Agent` from its command-line name; a `UserError` names the valid choices."""
    if spec == "random":
        return Agent("random", "random")
    if spec == "bot":
        return Agent("bot", "bot")
    for lead in ("bot:noise=", "bot-noise-"):
        if spec.startswith(lead):
            try:
                noise = float(spec.removeprefix(lead))
            except ValueError:
                noise = -1.0
            if not 0 <= noise <= 1:
                raise UserError(f"agent {spec!r}: the noise must be a number in [0, 1]; {AGENT_HELP}")
            return Agent(f"bot:noise={noise:g}", "bot", noise)
    path = Path(spec)
    if not path.is_dir():
        raise UserError(f"agent {spec!r}: no such run directory; {AGENT_HELP}")
    if not (path / "config.yaml").exists() and not (path / "model.safetensors").exists():
        raise UserError(f"agent {spec!r}: not a BabyAI run directory (no config.yaml); {AGENT_HELP}")
    return Agent(path.resolve().name if path.name in ("", ".") else path.name, "policy", path=str(path))


def load_agent_policy(agent: Agent):
    """The (model, config) of a policy agent (`rl.babyai_rollout.load_policy`), checked to be one."""
    from protege.rl.babyai_rollout import load_policy
    model, _, config = load_policy(Path(agent.path))
    model.eval()
    return model, config


def continue_scenario(agent: Agent, scenario: Scenario, budget: int, rng: np.random.Generator,
                      model=None) -> dict:
    """Restore the scenario and let `agent` act for at most `budget` steps; returns {actions,
    rewards, terminated, truncated}."""
    env, obs = restore(scenario, budget)
    if agent.kind == "bot":
        return play_bot(env, obs, budget, agent.noise, rng)
    if agent.kind == "random":
        return _play(env, obs, budget, lambda o: int(rng.integers(N_ACTIONS)))
    return _play_policy(model, scenario, env, obs, budget)


def _play(env, obs, budget: int, choose) -> dict:
    actions, rewards, terminated, truncated = [], [], False, False
    while not (terminated or truncated) and len(actions) < budget:
        action = choose(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        actions.append(action); rewards.append(float(reward))
    return {"actions": actions, "rewards": rewards, "terminated": bool(terminated),
            "truncated": not terminated}


def _play_policy(model, scenario: Scenario, env, obs, budget: int) -> dict:
    """Greedy actions of a recurrent policy whose memory first reads the prefix's observations."""
    import torch

    from protege.nn.babyai_policy import tokenize, view_tensors
    from protege.worlds.babyai.replay import replay
    tokens = tokenize([scenario.instruction])
    state = None
    with torch.no_grad():
        if scenario.prefix:
            seen = replay(scenario.level, scenario.seed, scenario.prefix)
            for image, direction in zip(seen.images[:-1], seen.directions[:-1]):
                _, _, _, state = model.act(torch.from_numpy(image[None]), torch.tensor([int(direction)]),
                                           tokens, state)
        memory = {"state": state}

        def choose(o):
            action, _, _, memory["state"] = model.act(*view_tensors([o]), tokens, memory["state"])
            return int(action[0])
        return _play(env, obs, budget, choose)
