"""Scenarios restore the recorded state exactly by replaying their prefix, and refuse a prefix that
does not belong to the layout."""

import contextlib
import io

import numpy as np
import pytest

from protege.core.errors import UserError
from protege.worlds.babyai.demos import bot_episode
from protege.worlds.babyai.levels import make_env
from protege.worlds.babyai.scenarios import (
    Scenario,
    cut_scenario,
    replay_prefix,
    restore,
)

LEVELS = ("BabyAI-GoToLocal-v0", "BabyAI-PickupLoc-v0")


def full_state(env) -> tuple:
    """Everything a continuation depends on: the whole grid, the agent, what it carries."""
    level = env.unwrapped
    carrying = None if level.carrying is None else (level.carrying.type, level.carrying.color)
    return level.grid.encode().tobytes(), tuple(level.agent_pos), level.agent_dir, carrying, level.step_count


def bot_episodes(level: str, n: int) -> list[dict]:
    env, out, seed = make_env(level), [], 7000
    with contextlib.redirect_stdout(io.StringIO()):
        while len(out) < n:
            e = bot_episode(env, seed)
            seed += 1
            if e is not None:
                out.append(e)
    return out


def test_replay_restores_the_state_of_50_scenarios_exactly():
    rng = np.random.default_rng(0)
    scenarios = []
    for level in LEVELS:
        for i, e in enumerate(bot_episodes(level, 25)):
            cut = int(rng.integers(0, len(e["actions"])))
            verb = "pickup" if "Pickup" in level else "goto"
            s = cut_scenario(f"{level}-{i}", level, e["seed"], e["actions"], e["images"], e["directions"],
                             cut, 32, i % 2 == 1, rng, verb=verb)
            if s is None:  # no achievable instruction from that state: the cut is skipped
                s = cut_scenario(f"{level}-{i}", level, e["seed"], e["actions"], e["images"],
                                 e["directions"], cut, 32, False, rng, verb=verb)
            scenarios.append((s, e, cut))
    assert len(scenarios) == 50 and all(s is not None for s, _, _ in scenarios)
    assert any(s.task is not None for s, _, _ in scenarios) and any(s.task is None for s, _, _ in scenarios)
    for s, e, cut in scenarios:
        env, obs = restore(s, budget=32)
        np.testing.assert_array_equal(obs["image"], e["images"][cut])
        assert obs["direction"] == e["directions"][cut]
        original = make_env(s.level)
        with contextlib.redirect_stdout(io.StringIO()):
            original.reset(seed=s.seed)
        for action in e["actions"][:cut]:
            original.step(int(action))
        assert full_state(env) == full_state(original)
        assert obs["mission"] == s.instruction


def test_a_prefix_from_another_layout_or_with_a_bad_action_is_refused():
    e = bot_episodes("BabyAI-GoToLocal-v0", 1)[0]
    cut = len(e["actions"]) - 1
    s = Scenario(id="x", level="BabyAI-GoToLocal-v0", seed=e["seed"] + 1, prefix=tuple(e["actions"][:cut]),
                 instruction=e["mission"], image=e["images"][cut], direction=int(e["directions"][cut]))
    with pytest.raises(UserError, match="another observation|ended after"):
        restore(s)
    with pytest.raises(UserError, match="not an action"):
        replay_prefix("BabyAI-GoToLocal-v0", e["seed"], (2, 9))
    with pytest.raises(UserError, match="ended after"):  # the whole episode: nothing left to continue
        replay_prefix("BabyAI-GoToLocal-v0", e["seed"], tuple(e["actions"]))
