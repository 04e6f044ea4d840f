"""The rotary and mixture-of-experts built-ins from the LM IRL recipes (model.arch, model.moe.*)."""

import pytest

from protege.core.errors import UserError
from protege.systems import resolve, start

TINY = ["task.train_size=120", "task.eval_size=6", "model.n_layer=1", "model.n_embd=32", "model.n_head=2",
        "model.mlp_hidden=64", "vocab_size=300", "trainer.steps=4", "trainer.batch_size=10",
        "trainer.checkpoint_every=0", "trainer.log_every=1", "eval.prompts=3", "eval.sample_prompts=2",
        "eval.samples=2", "eval.max_new_tokens=8"]


def metric_rows(run_dir, key):
    import json
    return [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines() if key in r]


def test_moe_recipe_trains_with_loss_free_balancing_and_logs_expert_load(tmp_path):
    from protege.nn.lm import load_lm
    from protege.nn.moe import routers
    run_dir, summary = start("lm_arithmetic_moe", TINY + ["model.moe.experts=4", "model.moe.balance=aux_free",
                                                          "model.moe.bias_rate=0.01", f"runs_dir={tmp_path}"])
    rows = metric_rows(run_dir, "moe/max_violation")
    assert len(rows) == 4 and all(0 <= r["moe/max_expert_share"] <= 1 for r in rows)
    model = load_lm(run_dir / "model")
    assert model.config.model_type == "mixtral" and model.config.num_local_experts == 4
    assert all(r.expert_bias.abs().sum() > 0 for r in routers(model))  # updated, and saved with the model


def test_llama_arch_runs_from_the_lm_recipe(tmp_path):
    from protege.nn.lm import load_lm
    run_dir, summary = start("lm_arithmetic_mle", TINY + ["model.arch=llama", f"runs_dir={tmp_path}"])
    assert load_lm(run_dir / "model").config.model_type == "llama"
    assert not metric_rows(run_dir, "moe/")  # router terms only for a mixture-of-experts model


@pytest.mark.parametrize("override,message", [("model.arch=gpt3", "arch"),
                                              ("model.moe.balance=loss", "balance"),
                                              ("model.moe.top_k=9", "top_k must be <= experts"),
                                              ("model.moe.implementation=fast", "implementation")])
def test_bad_arch_and_moe_settings_name_the_field(override, message):
    with pytest.raises(UserError, match=message):
        resolve("lm_arithmetic_moe", [override])
