"""DAgger for the hierarchical agent: the labels are what a bot following the agent's own actions
says (its action and subgoal at the states the agent reaches), annotated as demonstrations are;
batches mix the aggregate and the demonstrations as configured; and a run killed with SIGKILL
resumes to the same weights and metrics."""

import contextlib
import io

import numpy as np
import pytest

from protege.core.config import from_dict, to_dict
from protege.core.runs import Run, read_metrics
from protege.systems.subgoals import dagger, experiment
from protege.systems.subgoals.evaluate import load_agent
from protege.worlds.babyai.levels import TRAIN_SEED_START, make_env
from protege.worlds.babyai.subgoals import boundaries
from tests.conftest import protege_cmd, straight_and_resumed

LEVEL = "BabyAI-PutNextLocal-v0"


def tiny_bc_agent(putnext_phrases, tmp_path):
    cfg = from_dict(experiment.Config, {
        "name": "bc", "data": str(putnext_phrases[1]), "policy": {"dim": 16, "n_film": 1},
        "eval_episodes": 0, "agreement_episodes": 0, "trainer": {"steps": 2, "batch_size": 4}}, "test")
    experiment.run(cfg, Run(tmp_path / "bc", to_dict(cfg)))
    return tmp_path / "bc"


def test_labels_are_what_a_bot_following_the_agent_says(putnext_phrases, tmp_path):
    from minigrid.utils.baby_ai_bot import BabyAIBot
    agent, _ = load_agent(tiny_bc_agent(putnext_phrases, tmp_path))
    seeds = [TRAIN_SEED_START + 5, TRAIN_SEED_START + 6]
    data, played = dagger.labelled_episodes(agent, LEVEL, seeds, n_envs=2)
    assert [p["seed"] for p in played] == seeds and data is not None
    assert len(data.images) == len(data.actions) + len(data) == len(data.directions)
    starts = data.starts
    for e, p in enumerate(played):  # replay the agent's actions with a fresh bot: the same labels
        env = make_env(LEVEL)
        with contextlib.redirect_stdout(io.StringIO()):
            obs, _ = env.reset(seed=p["seed"])
            bot, taken, expected = BabyAIBot(env.unwrapped), None, []
            for action in p["taken"][:p["labelled"]]:
                expected.append(int(bot.replan(taken)))
                obs, *_ = env.step(action)
                taken = action
        labels = data.actions[starts[e]:starts[e] + data.lengths[e]].tolist()
        assert labels == expected
        phrases = data.phrases[starts[e]:starts[e] + data.lengths[e]].tolist()
        assert data.boundary[starts[e]:starts[e] + data.lengths[e]].tolist() == boundaries(phrases).tolist()
    # an untrained low level does not act as the bot: the labels correct it somewhere
    assert any(p["taken"][:p["labelled"]] != data.actions[s:s + n].tolist()
               for p, s, n in zip(played, starts, data.lengths))
    # with beta = 1 every labelled step executes the bot's action: the bot plays, as in its demonstrations
    data, played = dagger.labelled_episodes(agent, LEVEL, seeds, n_envs=2, beta=1.0, rng=np.random.default_rng(0))
    for p, s, n in zip(played, data.starts, data.lengths):
        assert p["taken"][:p["labelled"]] == data.actions[s:s + n].tolist()
    assert all(p["success"] for p in played if p["labelled"] == len(p["taken"]))


def test_batches_draw_the_configured_share_from_the_aggregate():
    union = dagger.Config(batch_size=4000)
    drawn = dagger.batch_indices(300, 100, union, iteration=0, update=0)
    assert 0.2 < (drawn >= 300).mean() < 0.3 and drawn.max() < 400  # uniform over all 400 episodes
    cfg = dagger.Config(batch_size=8, mix="fraction", agent_fraction=0.25)
    idx = dagger.batch_indices(100, 10, cfg, iteration=3, update=1)
    assert len(idx) == 8 and (idx >= 100).sum() == 2 and idx.max() < 110
    assert np.array_equal(idx, dagger.batch_indices(100, 10, cfg, iteration=3, update=1))
    assert (dagger.batch_indices(100, 0, cfg, 0, 0) < 100).all()  # nothing collected yet


@pytest.mark.slow  # a tiny BC run, then DAgger straight, killed and resumed: ~40 s on 2 idle cores
def test_sigkill_then_resume_equals_uninterrupted_run(putnext_phrases, tmp_path):
    bc = tiny_bc_agent(putnext_phrases, tmp_path)
    args = [f"data={putnext_phrases[1]}", "n_demos=0", f"init_from={bc}", f"level={LEVEL}", "iterations=6", "episodes=2",
            "updates=2", "batch_size=4", "eval_episodes=0", "agreement_episodes=0", "transfer_levels=[]"]

    def command(name, *extra):
        return protege_cmd("run", "subgoals_dagger_miniboss", f"name={name}", *args, *extra)

    straight, _ = straight_and_resumed(command, tmp_path, "step-00000002")
    collected = [r["charts/aggregate_episodes"] for r in read_metrics(straight) if "charts/success_rate" in r]
    assert len(collected) == 6 and collected[-1] > collected[0] >= 1  # the aggregate grows every iteration


def test_chooser_only_training_leaves_the_low_level_and_done_head_as_they_were(putnext_phrases, tmp_path):
    """`train: chooser` moves the chooser's weights and nothing else (buffers included)."""
    bc = tiny_bc_agent(putnext_phrases, tmp_path)
    cfg = from_dict(dagger.Config, {
        "name": "chooser", "data": str(putnext_phrases[1]), "init_from": str(bc), "level": LEVEL,
        "iterations": 1, "episodes": 2, "updates": 2, "batch_size": 4, "train": "chooser", "lr": 1e-2,
        "eval_episodes": 0, "agreement_episodes": 0}, "test")
    summary = dagger.run(cfg, Run(tmp_path / "chooser", to_dict(cfg)))
    row = [r for r in read_metrics(tmp_path / "chooser") if "charts/env_steps" in r][0]
    assert summary["env_steps"] == row["charts/env_steps"] >= summary["labelled_steps"] == row["charts/labelled_steps"] > 0
    before, after = load_agent(bc)[0].state_dict(), load_agent(tmp_path / "chooser")[0].state_dict()
    moved = {k for k in before if not (before[k] == after[k]).all()}
    assert moved and all(k.startswith("chooser.") for k in moved), sorted(moved)[:5]


def test_bad_settings_are_refused_in_one_line_and_leave_nothing(putnext_phrases, tmp_path, monkeypatch):
    from protege.core.errors import UserError
    from protege.systems import start
    bc = tiny_bc_agent(putnext_phrases, tmp_path)
    monkeypatch.chdir(tmp_path)
    for overrides, message in [(["beta=2"], "beta must be in [0, 1]"),
                               (["mix=often"], "mix"),
                               ([], "but the run is on BabyAI-MiniBossLevel-v0")]:  # PutNextLocal data
        with pytest.raises(UserError) as caught:
            start("subgoals_dagger_miniboss", [f"data={putnext_phrases[1]}", f"init_from={bc}", "name=bad",
                                               "n_demos=0", *overrides])
        assert "\n" not in str(caught.value) and message in str(caught.value), str(caught.value)
        assert not (tmp_path / "runs" / "bad").exists()
