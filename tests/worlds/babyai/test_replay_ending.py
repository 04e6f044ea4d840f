"""A mission completed on the time limit's last step replays as terminated, not truncated
(minigrid reports both flags there; an Episode is never both)."""

import contextlib
import io

from minigrid.utils.baby_ai_bot import BabyAIBot

from protege.worlds.babyai.levels import episode_ending, make_env
from protege.worlds.babyai.replay import replay, replay_episode

LEVEL, SEED, DONE_ACTION = "BabyAI-GoToRedBall-v0", 7, 6  # "done" leaves the world unchanged


def test_success_on_the_last_allowed_step_is_terminated_only():
    env = make_env(LEVEL)
    with contextlib.redirect_stdout(io.StringIO()):
        env.reset(seed=SEED)
    bot, solution, ended = BabyAIBot(env.unwrapped), [], False
    while not ended:
        action = int(bot.replan())
        _, reward, ended, _, _ = env.step(action)
        solution.append(action)
    assert reward > 0
    # wait with "done" so the bot's last action falls on the time limit's last step
    actions = [DONE_ACTION] * (env.unwrapped.max_steps - len(solution)) + solution
    r = replay(LEVEL, SEED, actions)
    assert len(actions) == env.unwrapped.max_steps and r.rewards[-1] > 0
    assert r.terminated and not r.truncated
    assert replay_episode(LEVEL, SEED, actions).terminated


def test_episode_ending_keeps_one_flag_and_terminated_wins():
    """The rule replays and demonstration folders share: both flags (done on the last allowed
    step) read as terminated; either flag alone, or none, stays as it was."""
    assert episode_ending(True, True) == (True, False)
    assert episode_ending(True, False) == (True, False)
    assert episode_ending(False, True) == (False, True)
    assert episode_ending(False, False) == (False, False)
    assert all(type(flag) is bool for flag in episode_ending(1, 1))
