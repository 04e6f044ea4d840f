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
