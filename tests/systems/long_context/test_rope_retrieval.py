"""The rotary built-in trained on synthetic retrieval: data, the recall grid, resume after SIGKILL."""


import numpy as np
import pytest
import torch

from protege.core.errors import UserError
from protege.nn.lm import ModelConfig
from protege.systems import resolve, start
from protege.systems.long_context.train import NEEDLE, QUERY, Config, make_sequence
from tests.conftest import final_weights, protege_cmd, straight_and_resumed

TINY = ["model.context=32", "model.n_embd=16", "model.n_head=2", "model.n_layer=1", "max_needles=2",
        "min_length=16", "eval_needles=[1,2]", "eval_samples=4", "eval_depths=2", "trainer.batch_size=4",
        "trainer.log_every=1"]


def test_the_queried_needle_sits_at_the_requested_depth_and_its_value_is_the_answer():
    cfg = Config(model=ModelConfig(arch="llama", context=64), eval_needles=[3])
    for depth in (0.0, 0.5, 1.0):
        tokens, (answer,) = make_sequence(cfg, np.random.default_rng(3), 64, 3, depth)
        assert len(tokens) == 64 and tokens[answer - 2] == QUERY
        key, value = tokens[answer - 1], tokens[answer]
        at = [i for i in range(len(tokens) - 3) if tokens[i] == NEEDLE and tokens[i + 1] == key]
        assert len(at) == 1 and tokens[at[0] + 2] == value
        filler_before = sum(1 for t in tokens[1:at[0]] if 4 <= t < 4 + cfg.filler)
        slots = 64 - 1 - 3 - 3 * 3  # filler tokens: length - BOS - one query - three needles
        assert filler_before == round(depth * slots)


def test_a_tiny_run_writes_the_recall_grid_with_every_scaling(tmp_path):
    run_dir, summary = start("rope_retrieval", TINY + ["trainer.steps=3", f"runs_dir={tmp_path}"])
    table = (run_dir / "recall_grid.md").read_text()
    for scaling in ("none", "linear", "dynamic", "yarn"):
        assert f"| 1 | {scaling} | 64 |" in table and f"| 2 | {scaling} | 128 |" in table
    assert {"n1_recall_at_L_mean", "n2_recall_4L_yarn"} <= set(summary)
    assert (run_dir / "recall_grid.png").read_bytes()[:4] == b"\x89PNG"


def test_training_batches_vary_in_length_within_the_trained_one_and_repeat_exactly():
    from protege.systems.long_context.train import training_batch
    cfg = Config(model=ModelConfig(arch="llama", context=64), min_length=16, max_needles=8)
    lengths = {training_batch(cfg, [i * 4, i * 4 + 1])[0].shape[1] for i in range(20)}
    assert len(lengths) > 5 and min(lengths) >= 16 and max(lengths) <= 64
    a, b = training_batch(cfg, [8, 9]), training_batch(cfg, [8, 9])
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[1].sum() >= 2


def test_end_needle_frac_puts_the_last_needle_right_before_the_queries_and_zero_changes_nothing():
    from protege.systems.long_context.train import training_batch
    base = Config(model=ModelConfig(arch="llama", context=64), min_length=0, max_needles=3)
    always = Config(model=ModelConfig(arch="llama", context=64), min_length=0, max_needles=3, end_needle_frac=1.0)
    for index in range(20):
        tokens = training_batch(always, [index])[0][0].tolist()
        first_query = tokens.index(QUERY)
        assert tokens[first_query - 3] == NEEDLE  # the last needle's value sits just before the first query
    explicit_zero = Config(model=ModelConfig(arch="llama", context=64), min_length=0, max_needles=3,
                           end_needle_frac=0.0)
    assert torch.equal(training_batch(base, [5, 6])[0], training_batch(explicit_zero, [5, 6])[0])
    with pytest.raises(ValueError, match="end_needle_frac"):
        Config(end_needle_frac=1.5)


def test_a_learned_position_model_is_refused():
    with pytest.raises(UserError, match="llama or mixtral"):
        resolve("rope_retrieval", ["model.arch=gpt2"])


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run_with_moe_bias(tmp_path):
    args = TINY + ["model.arch=mixtral", "model.mlp_hidden=32", "model.moe.experts=4",
                   "model.moe.balance=aux_free", "model.moe.bias_rate=0.01", "trainer.steps=24",
                   "trainer.checkpoint_every=4", "eval_multiples=[1]"]

    def command(name, *extra):
        return protege_cmd("run", "rope_retrieval", f"name={name}", *args, *extra)

    straight, _ = straight_and_resumed(command, tmp_path, "step-00000008")
    a = final_weights(straight)
    assert any("expert_bias" in k for k in a)  # the routing bias is part of the resumed state
