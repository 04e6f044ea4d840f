import gymnasium as gym
import pytest
from minari.serialization import deserialize_space, serialize_space

from protege.core.errors import UserError
from protege.worlds.babyai.levels import make_env, observation_space


def test_observation_has_text_mission_and_serialises():
    env = make_env("BabyAI-GoToLocal-v0")
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (7, 7, 3) and obs["direction"] in range(4)
    assert isinstance(obs["mission"], str) and obs["mission"].startswith("go to")
    assert env.observation_space.contains(obs)
    assert isinstance(env.observation_space["mission"], gym.spaces.Text)
    assert deserialize_space(serialize_space(observation_space())) == observation_space()


def test_unknown_level_lists_close_matches():
    with pytest.raises(UserError, match="Did you mean BabyAI-GoToLocal-v0"):
        make_env("BabyAI-GoToLocl-v0")


def test_one_success_rule_judges_the_evaluator_and_the_training_pool(monkeypatch):
    import torch

    from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
    from protege.rl.ppo import EnvPool
    from protege.systems.agent_imitation import evaluate
    from protege.worlds.babyai.levels import episode_success
    assert episode_success(True, 0.55) and not episode_success(False, 0.55)  # cut by the time limit
    assert not episode_success(True, 0.0)  # a failed instruction ends the episode with 0

    calls = []
    monkeypatch.setattr(evaluate, "episode_success", lambda t, r: calls.append((t, r)) or True)
    torch.manual_seed(0)
    results = evaluate.rollout(BabyAIPolicy(PolicyConfig(dim=8, n_film=0)), "BabyAI-GoToRedBall-v0",
                               [1, 2])
    assert len(calls) == 2 and all(r["success"] for r in results)
    pool = EnvPool([make_env("BabyAI-GoToRedBall-v0", max_steps=3)], 0, success=lambda t, r: "judged")
    for _ in range(3):
        pool.step(torch.tensor([0]))
    assert pool.finished == [("judged", 0.0, 3)]
