"""The lockstep driver plays every seed exactly once, whatever the number of environments."""

import pytest
import torch

from protege.rl.lockstep import lockstep


class CountdownEnv:
    """An episode of `seed % 4 + 1` steps; the observation is (seed, steps left)."""

    def reset(self, seed):
        self.seed, self.left = seed, seed % 4 + 1
        return (seed, self.left), {}

    def step(self, action):
        self.left -= 1
        return (self.seed, self.left), float(action), self.left == 0, False, {}


@pytest.mark.parametrize("n_envs", [1, 2, 3, 7])
def test_every_seed_once_and_memory_reset_at_each_start(n_envs):
    seeds = list(range(10, 20))
    envs = [CountdownEnv() for _ in range(n_envs)]
    started, steps, playing = [], {}, [None] * n_envs

    def on_start(i, env, seed, obs):
        assert env is envs[i] and obs == (seed, seed % 4 + 1)
        started.append(seed)
        playing[i] = seed

    def act(obs, fresh, active):
        for i in active:  # a fresh row is exactly one showing a new episode's first observation
            assert bool(fresh[i]) == (obs[i][1] == obs[i][0] % 4 + 1)
        return torch.tensor([obs[i][0] if obs[i] is not None else -1 for i in range(n_envs)])

    def on_step(i, action, obs, reward, terminated, truncated):
        assert action == playing[i] and reward == float(action) and obs[0] == playing[i]
        steps[playing[i]] = steps.get(playing[i], 0) + 1

    lockstep(envs, seeds, act, on_start, on_step)
    assert sorted(started) == seeds and started == seeds[:len(started)]
    assert steps == {s: s % 4 + 1 for s in seeds}
