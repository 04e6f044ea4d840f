"""scripts/subgoals_rl_curve.py and subgoals_table.py --agreement: what the results tables are made of."""
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parents[3] / "scripts"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_curve_pools_each_block_of_iterations(tmp_path):
    run = tmp_path / "rl"
    run.mkdir()
    (run / "config.yaml").write_text("episodes: 4\n")
    rows = [{"step": i + 1, "charts/success_rate": rate, "charts/episodic_length": 10.0 * (i + 1),
             "ppo/kl_to_prior": 0.01 * (i + 1)} for i, rate in enumerate([0.25, 0.5, 1.0])]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    first, last = load("subgoals_rl_curve").blocks(run, 2)
    assert (first["first"], first["iterations"]) == (1, 2) and (last["first"], last["iterations"]) == (3, 3)
    assert first["success"] == pytest.approx(3 / 8)  # 1 + 2 of 8 episodes
    assert last["success"] == 1.0 and last["lo"] < 1.0 <= last["hi"]
    assert first["env_steps"] == 4 * (10 + 20) and last["env_steps"] == 4 * (10 + 20 + 30)
    assert last["kl_to_prior"] == pytest.approx(0.03)


def test_agreement_reads_the_runs_summary(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"agreement/BabyAI-X-v0/boundaries": 0.7}))
    table = load("subgoals_table")
    assert table.agreement(tmp_path, "BabyAI-X-v0") == 0.7
    assert table.agreement(tmp_path, "BabyAI-Y-v0") is None
