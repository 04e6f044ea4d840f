"""Tiny smoke runs of the two BabyAI experiments through their Config and `run` entry points."""

import json

from protege.core.config import from_dict, to_dict
from protege.core.runs import Run
from protege.systems.agent_imitation import experiment, gail

POLICY = {"dim": 16, "n_film": 1}


def test_offline_then_gail_from_bc(redball_demos, tmp_path):
    cfg = from_dict(experiment.Config, {
        "name": "bc", "level": "BabyAI-GoToRedBall-v0", "demos": str(redball_demos), "n_demos": 50,
        "lam": 0.1, "policy": POLICY, "trainer": {"steps": 4, "batch_size": 8, "log_every": 2,
                                                  "checkpoint_every": 2},
        "eval_episodes": 0}, "test")
    summary = experiment.run(cfg, Run(tmp_path / "bc", to_dict(cfg)))
    assert summary["demos"] == 50 and summary["train/loss"] > 0
    assert (tmp_path / "bc" / "checkpoints" / "step-00000004" / "model.safetensors").exists()

    gcfg = from_dict(gail.Config, {
        "name": "gail", "level": "BabyAI-GoToRedBall-v0", "demos": str(redball_demos),
        "init_from": str(tmp_path / "bc"), "iterations": 2, "disc_steps": 1, "disc_batch": 16,
        "policy": POLICY, "ppo": {"n_envs": 2, "rollout_steps": 8, "epochs": 1, "minibatches": 1},
        "checkpoint_every": 1, "eval_episodes": 0}, "test")
    summary = gail.run(gcfg, Run(tmp_path / "gail", to_dict(gcfg)))
    rows = [json.loads(line) for line in (tmp_path / "gail" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and "adversarial/disc_loss" in rows[-1] and "ppo/entropy" in rows[-1]
    assert "adversarial/disc_loss" in summary
