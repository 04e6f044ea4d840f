"""Scenarios of a standardised test suite (arXiv:2205.13274) in BabyAI: the state reached after a
prefix of a recorded episode, restored by replaying that prefix, and an instruction for the rest.

BabyAI is deterministic given the reset seed, so (level, seed, action prefix) restores the exact
state, including the verifier's progress. `restore` checks it: the replayed observation (the 7x7x3
view and the heading) must equal the one recorded when the scenario was cut, else the prefix does
not belong to that layout (a different minigrid version, a hand-edited file) and it is refused.

The continuation's instruction is either the episode's own mission (its verifier kept as it was
after the prefix) or a new one from BabyAI's instruction grammar (minigrid's `GoToInstr` /
`PickupInstr` over an `ObjDesc` of colour and type) about an object of the restored layout. A new
instruction is kept only when it is achievable from the restored state: the bot (minigrid's
`BabyAIBot`) completes it within the step budget, and it is not already met (the agent does not
face a matching object when the continuation starts).
"""

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np

from protege.core.errors import UserError
from protege.worlds.babyai.levels import N_ACTIONS, episode_success, make_env

VERBS = ("goto", "pickup")
"""verbs of new instructions: "goto" -> GoToInstr ("go to the red ball"), "pickup" -> PickupInstr"""
OBJECT_TYPES = ("ball", "box", "key")
"""objects an instruction can name (doors and walls are left out: not every level has them)"""


@dataclass(frozen=True)
class Scenario:
    """One scenario: the state after `prefix` in `level` reset with `seed`, and what to do next.
    task: None keeps the episode's own mission; (verb, colour, type) sets a new instruction.
    image [7, 7, 3] uint8 and direction: the observation recorded after the prefix."""
    id: str
    level: str
    seed: int
    prefix: tuple[int, ...]
    instruction: str
    image: np.ndarray
    direction: int
    task: tuple[str, str, str] | None = None
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.image.shape != (7, 7, 3):
            raise ValueError(f"scenario {self.id}: image has shape {self.image.shape}, expected (7, 7, 3)")
        if self.task is not None and (len(self.task) != 3 or self.task[0] not in VERBS):
            raise ValueError(f"scenario {self.id}: task {self.task!r} is not (verb in {VERBS}, colour, type)")


def _check_prefix(scenario_id: str, prefix) -> None:
    bad = [a for a in prefix if not (isinstance(a, (int, np.integer)) and 0 <= a < N_ACTIONS)]
    if bad:
        raise UserError(f"scenario {scenario_id}: prefix action {bad[0]!r} is not an action in "
                        f"[0, {N_ACTIONS})")


def replay_prefix(level: str, seed: int, prefix, budget: int | None = None, scenario_id: str = "?"):
    """(env, obs) after resetting `level` with `seed` and taking `prefix`. With a `budget` the
    episode limit becomes len(prefix) + budget, so the continuation is truncated after `budget`
    steps (minigrid's reward 1 - 0.9 t/T then counts over that limit; success does not change)."""
    _check_prefix(scenario_id, prefix)
    env = make_env(level, max_steps=len(prefix) + budget if budget else None)
    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints rejected layouts
        obs, _ = env.reset(seed=int(seed))
    for t, action in enumerate(prefix):
        obs, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:  # a scenario starts mid-episode
            raise UserError(f"scenario {scenario_id}: {level} seed {seed} ended after {t + 1} of "
                            f"{len(prefix)} prefix actions; the prefix does not belong to this layout")
    return env, obs


def set_task(env, task: tuple[str, str, str]) -> str:
    """Give `env` a new instruction (verb, colour, type) from BabyAI's grammar, its verifier started
    at the current state; returns the instruction's text (also the observations' mission)."""
    from minigrid.envs.babyai.core.verifier import GoToInstr, ObjDesc, PickupInstr
    verb, colour, kind = task
    instr = (GoToInstr if verb == "goto" else PickupInstr)(ObjDesc(kind, colour or None))
    level = env.unwrapped
    instr.reset_verifier(level)
    level.instrs = instr
    level.mission = instr.surface(level)
    return level.mission


def restore(scenario: Scenario, budget: int | None = None):
    """(env, obs) at the scenario's state with its instruction in force; refuses (UserError) a
    prefix that ends the episode or whose replayed observation differs from the recorded one."""
    env, obs = replay_prefix(scenario.level, scenario.seed, scenario.prefix, budget, scenario.id)
    if not (np.array_equal(obs["image"], scenario.image) and int(obs["direction"]) == scenario.direction):
        raise UserError(f"scenario {scenario.id}: replaying its prefix in {scenario.level} seed "
                        f"{scenario.seed} gives another observation than the recorded one")
    if scenario.task is not None:
        obs = {**obs, "mission": set_task(env, scenario.task)}
    if obs["mission"] != scenario.instruction:
        raise UserError(f"scenario {scenario.id}: restored instruction {obs['mission']!r} differs "
                        f"from the recorded {scenario.instruction!r}")
    return env, obs


def candidate_tasks(env, verb: str) -> list[tuple[str, str, str]]:
    """New instructions (verb, colour, type) about the objects of the current layout, each once,
    leaving out one already met (the agent faces a matching object)."""
    level = env.unwrapped
    front = level.grid.get(*level.front_pos)
    found = {(o.color, o.type) for o in level.grid.grid if o is not None and o.type in OBJECT_TYPES}
    if level.carrying is not None:
        found.discard((level.carrying.color, level.carrying.type))
    facing = (front.color, front.type) if front is not None else None
    return [(verb, colour, kind) for colour, kind in sorted(found) if (colour, kind) != facing]


def play_bot(env, obs, budget: int, noise: float = 0.0, rng: np.random.Generator | None = None) -> dict:
    """Continue from the current state with minigrid's `BabyAIBot` for at most `budget` steps; with
    probability `noise` per step a uniformly random action replaces the bot's, and the bot replans
    knowing the action actually taken (its advising mode). Returns {actions, rewards, terminated,
    truncated}; a bot whose planner gives up ends the continuation (a failure)."""
    from minigrid.utils.baby_ai_bot import BabyAIBot
    rng = rng if rng is not None else np.random.default_rng(0)
    actions, rewards, terminated, truncated, taken = [], [], False, False, None
    try:
        bot = BabyAIBot(env)
    except Exception:  # the bot cannot parse every state (e.g. a carried target): a failure
        return {"actions": [], "rewards": [], "terminated": False, "truncated": True}
    while not (terminated or truncated) and len(actions) < budget:
        try:
            suggested = int(bot.replan(taken))
        except Exception:  # the bot's planner gives up on a few layouts
            break
        action = int(rng.integers(N_ACTIONS)) if noise and rng.random() < noise else suggested
        taken = None if action == suggested else action
        _, reward, terminated, truncated, _ = env.step(action)
        actions.append(action); rewards.append(float(reward))
    return {"actions": actions, "rewards": rewards, "terminated": bool(terminated),
            "truncated": bool(truncated or not terminated)}


def achievable(level: str, seed: int, prefix, task, budget: int) -> bool:
    """The bot completes `task` (None: the original mission) from the state after `prefix` within
    `budget` steps (played on a fresh replay, so the caller's environment is untouched)."""
    env, obs = replay_prefix(level, seed, prefix, budget)
    if task is not None:
        set_task(env, task)
    with contextlib.redirect_stdout(io.StringIO()):
        played = play_bot(env, obs, budget)
    return bool(played["rewards"]) and episode_success(played["terminated"], played["rewards"][-1])


def cut_scenario(scenario_id: str, level: str, seed: int, actions, images, directions, cut: int,
                 budget: int, new_instruction: bool, rng: np.random.Generator, source: str = "",
                 verb: str = "goto") -> Scenario | None:
    """The scenario after the first `cut` actions of a recorded episode (images [T+1, 7, 7, 3],
    directions [T+1] recorded). Replays the prefix and checks the observation against the recording;
    with `new_instruction` draws an achievable new (verb, colour, type) task (None if none is),
    else keeps the original mission (None if the bot cannot finish it within `budget`)."""
    prefix = tuple(int(a) for a in actions[:cut])
    env, obs = replay_prefix(level, seed, prefix, budget, scenario_id)
    if not (np.array_equal(obs["image"], images[cut]) and int(obs["direction"]) == int(directions[cut])):
        raise UserError(f"scenario {scenario_id} ({source}): replaying {cut} actions of {level} seed "
                        f"{seed} does not reproduce the recorded observation")
    task = None
    if new_instruction:
        candidates = candidate_tasks(env, verb)
        rng.shuffle(candidates)
        task = next((t for t in candidates if achievable(level, seed, prefix, t, budget)), None)
        if task is None:
            return None
        instruction = set_task(env, task)
    else:
        if not achievable(level, seed, prefix, None, budget):
            return None
        instruction = str(obs["mission"])
    return Scenario(id=scenario_id, level=level, seed=int(seed), prefix=prefix, instruction=instruction,
                    image=np.asarray(obs["image"], np.uint8), direction=int(obs["direction"]),
                    task=task, source=source)
