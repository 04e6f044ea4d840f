import pytest
import torch

from protege.worlds.babyai.demos import DemoConfig, generate_demos
from protege.worlds.babyai.subgoals import write_subgoal_data


@pytest.fixture(scope="session")
def putnext_phrases(tmp_path_factory):
    """12 PutNextLocal bot episodes (one worker) and their subgoal phrases: (demos, phrases) folders."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("subgoals")
    generate_demos(DemoConfig("BabyAI-PutNextLocal-v0", 12, root / "demos", workers=1, chunk_size=12),
                   progress=False)
    write_subgoal_data(root / "demos", root / "phrases")
    return root / "demos", root / "phrases"
