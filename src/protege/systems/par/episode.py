"""One Planner-Actor-Reporter episode (arXiv:2302.00763) in the examine world, and evaluation.

    Planner  reads the prompt (mission, objects, dialogue so far), replies with an instruction
    Actor    follows the instruction until it says `done` (or `segment_steps` pass, or the episode
             ends: a pickup ends it)
    Reporter reads the Actor's last view and says one report (or nothing: no Reporter)

Malformed replies are counted; after `reprompts` re-asks the episode fails (never a crash).

Actors: `ScriptedActor` is the world's scripted expert (privileged: it reads the full grid, labelled
so in every table); `PolicyActor` is a trained BabyAI policy told the instruction, its memory reset
at each new instruction.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from minigrid.core.actions import Actions

from protege.core.errors import UserError
from protege.eval.stats import wilson_interval
from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig, tokenize, view_tensors
from protege.systems.par.dialogue import Turn, parse_reply, planner_prompt
from protege.worlds.babyai.examine import expert_action, make_examine_env, scene
from protege.worlds.babyai.levels import EVAL_SEED_START, episode_success

ACTOR_FILE = "actor.json"


class ScriptedActor:
    name = "scripted"

    def start(self, instruction: str) -> None:
        self.instruction = instruction

    def act(self, env, obs) -> int:
        return expert_action(env, self.instruction)


class PolicyActor:
    def __init__(self, policy: BabyAIPolicy, name: str):
        self.policy, self.name = policy.eval(), name

    def start(self, instruction: str) -> None:
        self.tokens, self.state = tokenize([instruction]), None

    def act(self, env, obs) -> int:
        image, direction = view_tensors([obs])
        action, _, _, self.state = self.policy.act(image, direction, self.tokens, self.state)
        return int(action[0])


def load_actor(spec: str):
    """'scripted', or a par_actor run directory (its latest checkpoint)."""
    if spec == "scripted":
        return ScriptedActor()
    from protege.core.runs import load_weights
    path = Path(spec)
    ckpt = path / "checkpoints" / (path / "checkpoints" / "latest").read_text().strip() \
        if (path / "checkpoints" / "latest").is_file() else None
    if ckpt is None or not (path / ACTOR_FILE).is_file():
        raise UserError(f"actor {spec!r}: neither 'scripted' nor a finished par_actor run "
                        f"(needs {ACTOR_FILE} and checkpoints/latest)")
    policy = BabyAIPolicy(PolicyConfig(**json.loads((path / ACTOR_FILE).read_text())["policy"]))
    policy.load_state_dict(load_weights(ckpt / "model.safetensors"))
    return PolicyActor(policy, f"policy:{path.name}")


@dataclass
class EpisodeResult:
    seed: int
    mission: str
    objects: list[str]
    target: str
    success: bool
    steps: int
    malformed: int
    """malformed Planner replies in the episode"""
    failed_malformed: bool
    """the episode failed because the Planner never gave a usable reply"""
    turns: list[Turn] = field(default_factory=list)


def play_episode(env, seed: int, planner, actor, reporter, max_turns: int = 8,
                 segment_steps: int = 24, reprompts: int = 1) -> EpisodeResult:
    obs, _ = env.reset(seed=seed)
    objects, mission = scene(env), obs["mission"]
    target = next(n for o, n in zip(env.unwrapped.objects, objects) if o is env.unwrapped.target)
    turns: list[Turn] = []
    steps = malformed = 0
    ended = success = failed = False
    for _ in range(max_turns):
        instruction = None
        for attempt in range(reprompts + 1):
            raw = planner.reply(planner_prompt(mission, objects, turns, reprompt=attempt > 0))
            instruction = parse_reply(raw, objects)
            if instruction is not None:
                break
            malformed += 1
            turns.append(Turn(str(raw), None))
        if instruction is None:
            failed = True
            break
        turn = Turn(str(raw), instruction)
        actor.start(instruction)
        for _ in range(segment_steps):
            action = actor.act(env, obs)
            if action == Actions.done:
                break
            obs, reward, terminated, truncated, _ = env.step(action)
            steps += 1
            turn.actor_steps += 1
            if terminated or truncated:
                ended, success = True, episode_success(terminated, reward)
                break
        if not ended:
            turn.report = reporter.report(obs["image"])
        turns.append(turn)
        if ended:
            break
    return EpisodeResult(seed, mission, objects, target, success, steps, malformed, failed, turns)


def evaluate(planner, actor, reporter, episodes: int, size: int = 6, n_objects: int = 3,
             seed_start: int = EVAL_SEED_START, out: Path | None = None, **play) -> dict:
    """Held-out episodes (seeds from 10^9): success with its 95% Wilson interval and the counts of
    malformed replies; each episode's dialogue is written to `out` (JSONL) when given."""
    env = make_examine_env(size, n_objects)
    results = [play_episode(env, seed_start + i, planner, actor, reporter, **play) for i in range(episodes)]
    if out is not None:
        from protege.core.atomic import write_text_atomic
        write_text_atomic(out, "".join(json.dumps(asdict(r)) + "\n" for r in results))
    wins = sum(r.success for r in results)
    low, high = wilson_interval(wins, episodes)
    return {"episodes": episodes, "success": wins / max(episodes, 1), "success_low": low,
            "success_high": high, "malformed_replies": sum(r.malformed for r in results),
            "failed_malformed": sum(r.failed_malformed for r in results),
            "mean_steps": float(np.mean([r.steps for r in results])) if results else 0.0,
            "mean_turns": float(np.mean([len(r.turns) for r in results])) if results else 0.0}
