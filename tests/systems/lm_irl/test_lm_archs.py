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


def test_training_loss_adds_the_router_terms_although_the_model_returns_no_router_logits():
    """transformers #44242: its Mixtral adds the balancing loss only when output_router_logits is set."""
    import torch

    from protege.data.tokens import collate, encode
    from protege.nn.lm import build_model
    from protege.nn.tokenizer import train_bpe
    from protege.rl.moe import router_terms
    from protege.systems.lm_irl.experiment import training_loss
    from protege.systems.lm_irl.objectives import objective_loss
    from protege.worlds.text.arithmetic import generate
    cfg = resolve("lm_arithmetic_moe", TINY + ["model.moe.experts=4", "model.moe.aux_coef=0.5"])[1]
    examples = generate(6, 0)
    tokenizer = train_bpe([e.prompt + "\n" + e.completion for e in examples], 300)
    batch = collate(encode(examples, tokenizer, 96)[0], tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = build_model(cfg.model, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    assert not model.config.output_router_logits and bool((batch.attention_mask == 0).any())
    loss, metrics = training_loss(cfg, model, model, batch)
    task, _ = objective_loss(cfg.objective, model, batch)
    extra, _ = router_terms(model, cfg.model.moe, batch.attention_mask)
    assert extra.item() > 0.5 * 0.9  # the balancing loss is >= 1, weighted 0.5
    assert loss.item() == pytest.approx(task.item() + extra.item(), rel=1e-6)
    assert "moe/max_violation" in metrics
