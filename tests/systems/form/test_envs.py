import numpy as np
import pytest

from protege.core.errors import UserError
from protege.worlds.control.suite import (
    ControlEnv,
    DistractorConfig,
    NonFiniteObservation,
    check_finite,
    distractor_features,
    make_control_env,
)


def test_unknown_task_lists_valid_names():
    with pytest.raises(UserError, match="point_mass-easy"):
        make_control_env("pointmass-easy")


def test_flat_float32_observations_and_time_limit_truncation():
    env = make_control_env("cartpole-swingup", seed=0, action_repeat=10)
    obs, _ = env.reset(seed=3)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape == (5,)
    steps, done = 0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        done = terminated or truncated
    assert truncated and not terminated and steps == 100  # 1000 simulator steps / action repeat 10


def test_reset_seed_reproduces_initial_state():
    env = make_control_env("reacher-easy", seed=0)
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=7)
    c, _ = env.reset(seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("kind,per_unit", [("ou", 1), ("sine", 1), ("body", 4)])
def test_distractors_are_independent_of_actions(kind, per_unit):
    cfg = DistractorConfig(kind, 3)
    runs = []
    for action in (-1.0, 1.0):
        env = make_control_env("point_mass-easy", seed=0, distractors=cfg, action_repeat=5)
        obs, _ = env.reset(seed=11)
        rows = [obs]
        for _ in range(40):
            rows.append(env.step(np.full(2, action, np.float32))[0])
        runs.append(np.stack(rows))
    assert runs[0].shape[1] == 4 + 3 * per_unit
    assert not np.allclose(runs[0][:, :4], runs[1][:, :4])  # the task's state follows the actions
    assert np.array_equal(runs[0][:, 4:], runs[1][:, 4:])  # the distractors do not
    assert runs[0][:, 4:].std(0).min() > 0  # and they move


def test_distractor_seeds_differ_and_features_match_wrapper_process():
    a = distractor_features(DistractorConfig("ou", 2), 50, np.random.default_rng(0))
    b = distractor_features(DistractorConfig("ou", 2), 50, np.random.default_rng(1))
    assert a.shape == (50, 2) and not np.allclose(a, b)
    with pytest.raises(UserError):
        DistractorConfig("noise", 2)


def test_non_finite_observation_is_a_clear_error():
    with pytest.raises(NonFiniteObservation, match=r"coordinates \[1\]"):
        check_finite(np.array([0.0, np.nan, 1.0], np.float32), "test")
    env = ControlEnv("cartpole-swingup", seed=0)
    env.reset(seed=0)
    env.physics.data.qvel[:] = np.inf  # a diverged simulator
    with pytest.raises(NonFiniteObservation, match="cartpole-swingup"):
        env.step(np.zeros(1, np.float32))
