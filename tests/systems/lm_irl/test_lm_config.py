"""The `lm` experiment's config refuses every bad value at load, in one line naming the key."""

import pytest

from protege.core.errors import UserError
from protege.systems import resolve

# (overrides, "section: key must be ...") where section is the config's part ("config" at the top)
BAD = [
    (["model.n_embd=30"], "model: n_embd must be divisible by n_head, got n_embd=30, n_head=4"),
    (["model.n_head=0"], "model: n_head must be >= 1"),
    (["model.n_layer=0"], "model: n_layer must be >= 1"),
    (["model.context=1"], "model: context must be >= 2"),
    (["model.dropout=1.0"], "model: dropout must be in [0, 1)"),
    (["model.lora_r=-1"], "model: lora_r must be >= 0"),
    (["model.lora_alpha=0"], "model: lora_alpha must be >= 1"),
    (["model.source="], "model: source must be non-empty"),
    (["trainer.batch_size=10", "trainer.grad_accum=4"],
     "trainer: batch_size must be divisible by grad_accum, got batch_size=10, grad_accum=4"),
    (["trainer.steps=0"], "trainer: steps must be >= 1"),
    (["trainer.batch_size=0"], "trainer: batch_size must be >= 1"),
    (["trainer.grad_accum=0"], "trainer: grad_accum must be >= 1"),
    (["trainer.lr=0"], "trainer: lr must be > 0"),
    (["trainer.lr=nan"], "lr must be a finite number"),
    (["trainer.weight_decay=-0.1"], "trainer: weight_decay must be >= 0"),
    (["trainer.warmup_steps=-1"], "trainer: warmup_steps must be >= 0"),
    (["trainer.min_lr_ratio=1.5"], "trainer: min_lr_ratio must be in [0, 1]"),
    (["trainer.grad_clip=-1"], "trainer: grad_clip must be >= 0"),
    (["trainer.log_every=0"], "trainer: log_every must be >= 1"),
    (["trainer.checkpoint_every=-1"], "trainer: checkpoint_every must be >= 0"),
    (["objective.lam=-1"], "objective: lam must be >= 0"),
    (["objective.lam=.inf"], "lam must be a finite number"),
    (["objective.gamma=0"], "objective: gamma must be in (0, 1]"),
    (["objective.gamma=1.5"], "objective: gamma must be in (0, 1]"),
    (["objective.mixin=1.0"], "objective: mixin must be in [0, 1)"),
    (["objective.entropy_coef=-0.1"], "objective: entropy_coef must be >= 0"),
    (["eval.temperature=0"], "eval: temperature must be > 0"),
    (["eval.top_p=0"], "eval: top_p must be in (0, 1]"),
    (["eval.top_p=1.5"], "eval: top_p must be in (0, 1]"),
    (["eval.prompts=0"], "eval: prompts must be >= 1"),
    (["eval.samples=0"], "eval: samples must be >= 1"),
    (["eval.sample_prompts=0"], "eval: sample_prompts must be >= 1"),
    (["eval.num_beams=0"], "eval: num_beams must be >= 1"),
    (["eval.max_new_tokens=0"], "eval: max_new_tokens must be >= 1"),
    (["eval.batch_size=0"], "eval: batch_size must be >= 1"),
    (["task.eval_size=0"], "task: eval_size must be >= 1"),
    (["task.train_size=-1"], "task: train_size must be >= 0"),
    (["task.train_size=0"], "task: train_size must be >= 1 for kind=arithmetic"),
    (["task.prompt_field="], "task: prompt_field must be non-empty"),
    (["seed=-1"], "config: seed must be >= 0"),
    (["threads=-1"], "config: threads must be >= 0"),
    (["device=tpu"], "config: device must be cpu, cuda, cuda:N or auto, got 'tpu'"),
    (["device=gpu0"], "config: device must be cpu, cuda, cuda:N or auto, got 'gpu0'"),
    (["vocab_size=0"], "config: vocab_size must be >= 1"),
    (["name="], "config: name must be non-empty"),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_value_fails_at_load_in_one_line_naming_the_key(overrides, message):
    with pytest.raises(UserError) as caught:
        resolve("lm_arithmetic_mle", overrides)
    text = str(caught.value)
    assert "\n" not in text
    assert message in text, text


def test_bounds_themselves_are_accepted():
    """The edges of each range are valid settings: the checks refuse only what lies outside."""
    _, cfg, _ = resolve("lm_arithmetic_mle", [
        "model.dropout=0", "model.lora_r=0", "model.context=2", "trainer.warmup_steps=0",
        "trainer.checkpoint_every=0", "trainer.min_lr_ratio=0", "trainer.grad_clip=0",
        "trainer.batch_size=12", "trainer.grad_accum=4", "objective.gamma=1", "objective.lam=0",
        "objective.mixin=0", "eval.top_p=1", "task.kind=foldoc", "task.train_size=0", "seed=0"])
    assert cfg.trainer.grad_accum == 4 and cfg.task.train_size == 0 and cfg.objective.gamma == 1.0


def test_sampling_options_of_the_lm_commands_are_checked_as_user_errors():
    """`protege lm sample` and `protege eval lm` build their EvalConfig from options: a bad one is a
    one-line UserError, not a ValueError traceback."""
    from protege.systems.lm_irl.evaluate import eval_config
    with pytest.raises(UserError, match=r"^evaluation settings: temperature must be > 0, got 0\.0"):
        eval_config(temperature=0.0)
    assert eval_config(top_p=0.5).top_p == 0.5
