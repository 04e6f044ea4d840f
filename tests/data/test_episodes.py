import numpy as np
import pytest

from protege.data.episodes import Episode
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
