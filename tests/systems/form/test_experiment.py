"""End-to-end runs of the `control_imitation` experiment: a tiny smoke run per method (default suite)
and the statistical "improves over a random policy" runs (slow)."""

import json

import pytest

from protege.core.config import from_dict, to_dict
from protege.core.runs import Run, read_metrics
from protege.systems.form import experiment as ce


def run_method(tmp_path, folder, **overrides):
    cfg = from_dict(ce.Config, overrides, "test")
    run = Run(tmp_path / folder, to_dict(cfg))
    summary = ce.run(cfg, run)
    run.finish(summary)
    return summary, read_metrics(run.dir)


TINY = {"action_repeat": 2, "time_limit": 1.0, "demo_episodes": 2, "random_episodes": 2, "eval_episodes": 1, "form": {"expert_steps": 20, "hidden": 32},
        "gail": {"hidden": 16}, "bc": {"steps": 20, "hidden": 32},
        "sac": {"hidden": 32, "batch_size": 32, "learning_starts": 60},
        "loop": {"steps": 150, "eval_every": 150, "eval_episodes": 1, "log_every": 50}}


@pytest.mark.parametrize("method", ["form", "gail", "gaifo", "bc", "sac"])
def test_smoke_each_method(tmp_path, method):
    summary, metrics = run_method(tmp_path, method, method=method, distractors={"count": 2}, **TINY)
    assert summary["method"] == method and summary["distractors"] == 2
    assert summary["expert_return"] > summary["random_return"]
    assert any("eval/final_return" in row for row in metrics)
    if method in ("form", "gail", "gaifo"):
        key = "form/nll" if method == "form" else "adversarial/disc_loss"
        assert any(key in row for row in metrics)
    json.dumps(summary)


def test_form_with_a_mixture_density_runs(tmp_path):
    from protege.nn.density import ConditionalMixture
    from protege.rl.rewards import FORMReward
    cfg = from_dict(ce.Config, {**TINY, "form": {**TINY["form"], "components": 3}}, "test")
    demos = ce._demos(cfg, tmp_path, 5)
    model = ce._reward_model(cfg, demos)
    assert isinstance(model, FORMReward) and isinstance(model.agent, ConditionalMixture)
    summary, metrics = run_method(tmp_path, "mix", method="form", **{**TINY, "form": {**TINY["form"], "components": 3}})
    assert any("form/nll" in row for row in metrics)


def test_demos_from_another_task_are_refused(tmp_path):
    from protege.core.errors import UserError
    from protege.worlds.control.demos import record_demos
    record_demos("point_mass-easy", 1, tmp_path / "pm", action_repeat=2, random_episodes=1, time_limit=1.0)
    with pytest.raises(UserError, match="recorded on 'point_mass-easy'"):
        run_method(tmp_path, "x", method="form", demos=str(tmp_path / "pm"), **TINY)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["gail_so_cartpole", "gail_sa_cartpole", "bc_control_cartpole",
                                    "form_point_mass", "gail_so_point_mass", "gail_sa_point_mass", "bc_control_point_mass",
                                    "bc_control_reacher"])
def test_short_training_beats_random(tmp_path, recipe):
    """Seeded, bounded (the recipe's 8k agent steps, 1-3 min each on a free core): the trained policy's
    return beats the uniform random policy's by at least 5% of the expert-random gap. Not the recipes
    whose seed 0 lands on either side of the random policy at this budget: GAIL/GAIfO on reacher (GAIfO
    -0.06 in the table; GAIL 0.145 in the table, -0.060 re-run), FORM on reacher (0.357, -0.067, -0.030
    in the table) and FORM on cartpole (0.090, 0.180, 0.147 in the table, measured on a CPU with native
    bfloat16; on this AVX2 machine the code of that table gives -0.086 at seed 0, and today's code with
    its SeedSequence sub-seeds 0.018, -0.126, 0.018 at seeds 0, 1, 2; docs/results/form.md)."""
    from protege.core.config import read_recipe
    from protege.systems import builtin_recipes
    data, _ = read_recipe(recipe, builtin_recipes())
    data.pop("experiment")
    summary, _ = run_method(tmp_path, recipe, **data)
    assert summary["normalised_return"] > 0.05, summary
