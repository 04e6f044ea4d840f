import pytest

from protege.core.errors import UserError
from protege.data.tokens import collate, encode
from protege.nn.tokenizer import train_bpe
from protege.systems import resolve, start
from protege.worlds.text.arithmetic import generate

TINY = ["task.train_size=120", "task.eval_size=6", "model.n_layer=1", "model.n_embd=32", "model.n_head=2",
        "vocab_size=300", "trainer.steps=4", "trainer.batch_size=10", "trainer.checkpoint_every=0",
        "eval.prompts=3", "eval.sample_prompts=2", "eval.samples=2", "eval.max_new_tokens=8"]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe([e.prompt + "\n" + e.completion for e in generate(200, 0)], 300)


def test_masks_cover_exactly_the_completion_and_eos(tokenizer):
    examples = generate(3, 1)
    encoded, truncated = encode(examples, tokenizer, context=500)
    batch = collate(encoded, tokenizer.pad_token_id)
    assert truncated == 0
    for row, enc in enumerate(encoded):
        targets = batch.input_ids[row, 1:][batch.loss_mask[row]].tolist()
        assert targets == enc.ids[enc.prompt_len:]
        assert targets[-1] == tokenizer.eos_token_id
        assert batch.terminal[row].nonzero().flatten().tolist() == [len(enc.ids) - 2]


def test_overflow_truncates_and_counts_or_refuses(tokenizer):
    examples = generate(5, 2)
    encoded, truncated = encode(examples, tokenizer, context=40)
    assert truncated == 5 and all(len(e.ids) == 40 for e in encoded)
    with pytest.raises(UserError, match="exceed the context of 40"):
        encode(examples, tokenizer, context=40, overflow="refuse")


@pytest.mark.parametrize("override,message", [("objective.gamma=1.5", "gamma must be in"),
                                              ("objective.lam=-0.1", "lam must be >= 0"),
                                              ("objective.mixin=1.0", "mixin must be in"),
                                              ("objective.method=ppo", "must be one of mle, iqlearn")])
def test_bad_objective_settings(override, message):
    with pytest.raises(UserError, match=message):
        resolve("lm_arithmetic_mle", [override])


def test_online_iqlearn_mixes_policy_samples_and_trains(tmp_path):
    run_dir, summary = start("lm_arithmetic_iqlearn", TINY + ["objective.method=iqlearn_online",
                                                             "objective.mixin=0.2", f"runs_dir={tmp_path}"])
    rows = [r for r in (run_dir / "metrics.jsonl").read_text().splitlines() if "iqlearn/value_gap" in r]
    assert rows and summary["method"] == "iqlearn_online"


def test_entropy_bonus_keeps_the_policy_flatter():
    import torch

    from protege.losses.mle import mle_loss
    actions = torch.zeros(4, 3, dtype=torch.long)
    mask = torch.ones(4, 3, dtype=torch.bool)
    entropies = {}
    for coef in (0.0, 1.0):
        logits = torch.zeros(4, 3, 5, requires_grad=True)
        opt = torch.optim.SGD([logits], lr=1.0)
        for _ in range(50):
            loss, metrics = mle_loss(logits, actions, mask, entropy_coef=coef)
            opt.zero_grad()
            loss.backward()
            opt.step()
        entropies[coef] = float(metrics["mle/entropy"])
    assert entropies[1.0] > entropies[0.0] + 0.3


def test_generation_stops_at_the_position_limit(tokenizer):
    """A prompt near (or past) the context must not generate beyond the position table: that raised
    IndexError in a FOLDOC evaluation whose long terms left fewer than max_new_tokens positions."""
    from protege.nn.lm import ModelConfig, build_model, fit_prompt
    from protege.systems.lm_irl.evaluate import EvalConfig
    from protege.systems.lm_irl.evaluate import generate as generate_text
    model = build_model(ModelConfig(n_layer=1, n_embd=32, n_head=2, context=24), len(tokenizer),
                        tokenizer.pad_token_id, tokenizer.eos_token_id)
    long_prompt = " ".join(["seven plus eight"] * 20)
    outputs = generate_text(model, tokenizer, ["one plus two", long_prompt], EvalConfig(max_new_tokens=64), n=2,
                            sample=True)
    assert [len(o) for o in outputs] == [2, 2]
    assert fit_prompt(list(range(10)), 64, 24) == (list(range(10)), 14)
    assert fit_prompt(list(range(30)), 64, 24) == (list(range(7, 30)), 1)
    assert fit_prompt(list(range(30)), 64, None) == (list(range(30)), 64)
