import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# Two cores: one thread per test process keeps timings predictable and results deterministic.
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def protege_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "protege", *map(str, args)]


def protege_env() -> dict:
    return {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}


@pytest.fixture
def cli(tmp_path):
    """Run the `protege` command in a subprocess from tmp_path; returns (exit code, output)."""
    def invoke(*args, timeout=600):
        proc = subprocess.run(protege_cmd(*args), cwd=tmp_path, capture_output=True, text=True,
                              timeout=timeout, env=protege_env())
        return proc.returncode, proc.stdout + proc.stderr
    return invoke
