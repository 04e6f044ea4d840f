"""Subgoal phrases: every bot subgoal becomes a phrase that parses back to it (all paraphrases), the
phrase's object is the one the bot really acts on, boundaries follow the phrases, the dataset
round-trips through its manifest, and bad input fails in one line."""

import contextlib
import io

import numpy as np
import pytest
from minigrid.utils.baby_ai_bot import BabyAIBot

from protege.core.errors import UserError
from protege.systems.subgoals.show import show_episode
from protege.worlds.babyai.demos import describe_subgoal
from protege.worlds.babyai.levels import make_env
from protege.worlds.babyai.subgoals import (
    PARAPHRASES,
    Subgoal,
    boundaries,
    bot_subgoals,
    load_subgoal_data,
    parse_phrase,
    write_subgoal_data,
)
from tests.core.test_config import assert_one_line_error

BOT_KIND = {"GoNextToSubgoal": {"go_to", "go_beside", "explore", "step_aside"},
            "PickupSubgoal": {"pick_up"}, "DropSubgoal": {"put_down"}, "OpenSubgoal": {"open"},
            "CloseSubgoal": {"close"}}


def bot_steps(level: str, seed: int):
    """One bot episode: per step (the bot's subgoal object, what the agent carried before and after)."""
    env = make_env(level)
    with contextlib.redirect_stdout(io.StringIO()):
        env.reset(seed=seed)
    bot, steps, done = BabyAIBot(env.unwrapped), [], False
    while not done and len(steps) < 200:
        action = bot.replan()
        before = env.unwrapped.carrying
        _, _, terminated, truncated, _ = env.step(action)
        if bot.stack:  # an empty stack means "done", which ends the episode
            steps.append((bot.stack[-1], before, env.unwrapped.carrying))
        done = terminated or truncated
    return steps


@pytest.mark.parametrize("level,seeds", [("BabyAI-PutNextLocal-v0", range(4)),
                                         ("BabyAI-UnlockPickup-v0", range(2)),
                                         ("BabyAI-GoToSeqS5R2-v0", range(2))])
def test_phrases_round_trip_to_the_bot_subgoals(level, seeds):
    kinds = set()
    for seed in seeds:
        steps = bot_steps(level, seed)
        records = [describe_subgoal(s) for s, _, _ in steps]
        subgoals = bot_subgoals([r for r, _ in records], [r for _, r in records])
        for (bot_goal, before, after), sg in zip(steps, subgoals):
            kinds.add(sg.kind)
            assert sg.kind in BOT_KIND[type(bot_goal).__name__]
            for template in range(len(PARAPHRASES[sg.kind])):
                assert parse_phrase(sg.phrase(template)) == sg
            datum = bot_goal.datum
            if sg.kind in ("go_to", "go_beside") and getattr(datum, "type", None):
                assert sg.target == f"{datum.color or ''} {datum.type}".strip()
            if sg.kind == "pick_up" and after is not None and before is None:  # it really picked it up
                assert sg.target == f"{after.color} {after.type}"
            if sg.kind == "put_down" and before is not None and after is None:
                assert sg.target == f"{before.color} {before.type}"
    assert {"go_to", "pick_up"} <= kinds or "explore" in kinds


def test_boundaries_start_each_run_of_one_phrase():
    assert boundaries(["a", "a", "b", "b", "a"]).tolist() == [True, False, True, False, True]


def test_the_dataset_round_trips_with_its_manifest(putnext_phrases):
    _, folder = putnext_phrases
    data = load_subgoal_data(folder, level="BabyAI-PutNextLocal-v0")
    assert len(data.images) == len(data.actions) + len(data)  # T + 1 views per episode
    for e, (s, n) in enumerate(zip(data.starts, data.lengths)):
        phrases = data.phrases[s:s + n].tolist()
        assert np.array_equal(data.boundary[s:s + n], boundaries(phrases))
        kinds = [parse_phrase(p).kind for p in phrases]
        assert kinds[-1] == "put_down" and "pick_up" in kinds  # PutNext ends by putting it down
        for p, q in zip(phrases, data.paraphrases[s:s + n].tolist()):
            assert parse_phrase(p) == parse_phrase(q)
    assert len(data.subset(3)) == 3 and data.subset(3).lengths.sum() == len(data.subset(3).actions)


def test_show_prints_the_bot_subgoals(putnext_phrases, cli):
    _, folder = putnext_phrases
    code, out = cli("subgoals", "show", str(folder), "--episode", "1")
    assert code == 0, out
    lines = out.strip().splitlines()
    assert "put the" in lines[0] and len(lines) >= 4
    assert "'pick up the" in out and "'put down the" in out and "pickup" in out


def test_bad_input_is_one_clear_line(putnext_phrases, cli, tmp_path):
    demos, folder = putnext_phrases
    with pytest.raises(UserError, match="matches no template"):
        parse_phrase("fly to the moon")
    with pytest.raises(UserError, match="not '\\[colour\\] type'"):
        Subgoal("go_to", "pink ball")
    with pytest.raises(UserError, match="unknown"):
        bot_subgoals(["Teleport(red ball)"], [""])
    with pytest.raises(UserError, match="PutNextLocal"):
        load_subgoal_data(folder, level="BabyAI-GoToRedBall-v0")
    with pytest.raises(UserError, match="overlaps"):
        write_subgoal_data(demos, demos)
    with pytest.raises(UserError, match="protege-babyai-subgoals-v1"):
        show_episode(demos, 0)
    with pytest.raises(UserError, match="0..11"):
        show_episode(folder, 99)
    assert_one_line_error(*cli("data", "subgoals", "--demos", str(tmp_path / "none"), "--out", "x"),
                          "none", "protege data demos")
