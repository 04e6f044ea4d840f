import json

import numpy as np
import pytest

from protege.core.errors import UserError
from protege.worlds.control.demos import load_demos, record_demos


@pytest.fixture(scope="module")
def demos_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos") / "cartpole"
    record_demos("cartpole-swingup", 2, out, seed=0, action_repeat=10, random_episodes=2)
    return out


def test_round_trip_through_minari(demos_dir):
    demos = load_demos(demos_dir, "cartpole-swingup", 5)
    assert demos.obs.shape == demos.next_obs.shape == (200, 5)
    assert demos.actions.shape == (200, 1) and set(np.unique(demos.episode)) == {0, 1}
    assert np.array_equal(demos.obs[1:100], demos.next_obs[:99])  # consecutive within an episode
    assert demos.expert_return > demos.random_return


def test_spec_mismatch_and_other_task_are_user_errors(demos_dir):
    with pytest.raises(UserError, match="observation spec"):
        load_demos(demos_dir, "cartpole-swingup", 6)
    with pytest.raises(UserError, match="recorded on 'cartpole-swingup'"):
        load_demos(demos_dir, "reacher-easy")


def test_corrupted_file_fails_the_manifest(demos_dir, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(demos_dir, copy)
    meta = copy / "data" / "metadata.json"
    meta.write_text(json.dumps(json.loads(meta.read_text()) | {"protege_task": "reacher-easy"}))
    with pytest.raises(UserError, match="metadata.json"):
        load_demos(copy)


def test_refuses_to_overwrite(demos_dir):
    with pytest.raises(UserError, match="already exists"):
        record_demos("cartpole-swingup", 1, demos_dir)


def test_non_finite_demonstrations_are_refused():
    from protege.worlds.control.demos import ControlDemos
    obs = np.zeros((3, 2), np.float32)
    bad = obs.copy()
    bad[1, 0] = np.nan
    with pytest.raises(UserError, match="non-finite"):
        ControlDemos(obs, bad, np.zeros((3, 1), np.float32), np.zeros(3, np.int64), "t", 1.0, 0.0)
