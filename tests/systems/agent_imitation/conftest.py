import pytest
import torch

from protege.worlds.babyai.demos import DemoConfig, generate_demos


@pytest.fixture(scope="session")
def redball_demos(tmp_path_factory):
    """300 GoToRedBall bot episodes (one worker: tests stay single-core)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("demos") / "GoToRedBall"
    generate_demos(DemoConfig("BabyAI-GoToRedBall-v0", 300, out, workers=1, chunk_size=100), progress=False)
    return out


@pytest.fixture(scope="session")
def putnext_demos(tmp_path_factory):
    """PutNextLocal: the bot's subgoal changes within an episode (go to, pick up, go next to, drop)."""
    out = tmp_path_factory.mktemp("demos") / "PutNextLocal"
    generate_demos(DemoConfig("BabyAI-PutNextLocal-v0", 6, out, workers=1, chunk_size=3), progress=False)
    return out
