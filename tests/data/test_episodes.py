import numpy as np
import pytest

from protege.data.episodes import Episode, Transitions, flatten
from protege.data.text import TextExample


def test_episode_validates_lengths_with_the_numbers():
    obs = np.zeros((4, 2))
    Episode(observations=obs, actions=np.zeros(3), rewards=np.zeros(3), terminated=True,
            annotations={"subgoal": ["a", "b", "b"]})
    with pytest.raises(ValueError, match="expected T\\+1 = 4 for 3 actions"):
        Episode(observations=np.zeros((3, 2)), actions=np.zeros(3), rewards=np.zeros(3), terminated=True)
    with pytest.raises(ValueError, match="annotation 'subgoal' has length 2, expected 3"):
        Episode(observations=obs, actions=np.zeros(3), rewards=np.zeros(3), terminated=True,
                annotations={"subgoal": ["a", "b"]})
    with pytest.raises(ValueError, match="both terminated and truncated"):
        Episode(observations=obs, actions=np.zeros(3), rewards=np.zeros(3), terminated=True, truncated=True)


def test_text_example_is_a_token_level_episode():
    episode = TextExample("p", "c").to_episode([5, 6], [7, 8, 1])
    assert len(episode) == 3 and episode.terminated and episode.instruction == "p"
    assert episode.actions.tolist() == [7, 8, 1]
    assert episode.observations[0].tolist()[:2] == [5, 6] and episode.observations[3].tolist() == [5, 6, 7, 8, 1]


def _episode(t: int, start: float, terminated: bool, subgoals=None) -> Episode:
    obs = {"x": np.arange(t + 1, dtype=np.float32) + start, "y": np.arange(t + 1) * 10}
    return Episode(observations=obs, actions=np.arange(t) + 100 * start, rewards=np.ones(t) * start,
                   terminated=terminated, truncated=not terminated,
                   annotations={"subgoal": subgoals or [f"g{i}" for i in range(t)]})


def test_flatten_matches_a_step_by_step_reference():
    episodes = [_episode(3, 1.0, True), _episode(2, 2.0, False), _episode(1, 3.0, True)]
    flat = flatten(episodes)
    rows = []  # naive reference: walk every episode step by step
    for i, e in enumerate(episodes):
        for t in range(len(e)):
            rows.append((e.observations["x"][t], e.observations["y"][t], e.actions[t], e.rewards[t],
                         e.observations["x"][t + 1], e.terminated and t == len(e) - 1, i,
                         e.annotations["subgoal"][t]))
    assert len(flat) == len(rows) == 6
    for n, (x, y, a, r, nx, done, ep, goal) in enumerate(rows):
        assert flat.obs["x"][n] == x and flat.obs["y"][n] == y and flat.acts[n] == a
        assert flat.rewards[n] == r and flat.next_obs["x"][n] == nx and bool(flat.dones[n]) == done
        assert flat.episode[n] == ep and flat.infos["subgoal"][n] == goal
    starts, lengths = flat.episode_bounds()
    assert starts.tolist() == [0, 3, 5] and lengths.tolist() == [3, 2, 1]


def test_transitions_validate_with_the_numbers():
    flat = flatten([_episode(2, 1.0, True)])
    with pytest.raises(ValueError, match="rewards has 1 rows, acts has 2"):
        Transitions(obs=flat.obs, acts=flat.acts, next_obs=flat.next_obs, rewards=flat.rewards[:1],
                    dones=flat.dones, episode=flat.episode)
    with pytest.raises(ValueError, match="dones must be bool"):
        Transitions(obs=flat.obs, acts=flat.acts, next_obs=flat.next_obs, rewards=flat.rewards,
                    dones=flat.dones.astype(int), episode=flat.episode)
    with pytest.raises(ValueError, match="empty"):
        flatten([])
