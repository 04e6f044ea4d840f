import json

import pytest
import torch

from protege.core.errors import UserError
from protege.core.runs import Run, load_state, rng_state, set_rng_state


def test_checkpoints_round_trip_and_keep_the_newest(tmp_path):
    run = Run(tmp_path / "r", {"a": 1})
    for step in (1, 2, 3):
        run.save_checkpoint(step, {"w": torch.full((2,), float(step))}, {"opt": {"lr": 0.1 * step}})
    weights, state = run.load_checkpoint()
    assert torch.equal(weights["w"], torch.full((2,), 3.0)) and state["step"] == 3
    assert sorted(p.name for p in run.ckpt_dir.glob("step-*")) == ["step-00000002", "step-00000003"]
    assert not list(run.ckpt_dir.glob(".*tmp"))  # no temporary left behind


def test_tied_weights_are_saved(tmp_path):
    shared = torch.ones(3)
    run = Run(tmp_path / "r", {})
    run.save_checkpoint(1, {"emb": shared, "head": shared}, {})
    weights, _ = run.load_checkpoint()
    assert torch.equal(weights["emb"], weights["head"])


def test_rng_state_round_trips_through_weights_only_load(tmp_path):
    import random

    import numpy as np
    state = rng_state()
    torch.save(state, tmp_path / "s.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1))
    set_rng_state(load_state(tmp_path / "s.pt"))
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_resume_drops_metrics_after_the_checkpoint_and_a_torn_last_line(tmp_path):
    run = Run(tmp_path / "r", {"a": 1})
    for step in (1, 2, 3):
        run.log(step, {"loss": float(step)})
    run.save_checkpoint(2, {"w": torch.zeros(1)}, {})
    run.close()
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "lo')  # killed mid-write
    resumed = Run(tmp_path / "r", {"a": 1}, resume=True)
    assert [row["step"] for row in resumed.metrics()] == [1, 2]


def test_existing_run_and_changed_config_are_refused(tmp_path):
    Run(tmp_path / "r", {"a": 1}).log(1, {"x": 1.0})
    with pytest.raises(UserError, match="already exists"):
        Run(tmp_path / "r", {"a": 1})
    with pytest.raises(UserError, match="config differs"):
        Run(tmp_path / "r", {"a": 2}, resume=True)
    assert json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])["x"] == 1.0
