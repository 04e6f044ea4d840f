"""Decoding options for the text tasks: no repeated n-grams, and minimum-Bayes-risk choice."""

import random

import pytest
import torch

from protege.core.errors import UserError
from protege.nn.decode import Sampling, ban_repeated_ngrams, decode
from protege.nn.lm import ModelConfig, build_model
from protege.nn.tokenizer import train_bpe
from protege.systems.lm_irl.evaluate import EvalConfig, eval_config
from protege.systems.lm_irl.evaluate import generate as generate_text
from protege.systems.lm_irl.mbr import mbr_completions, task_utility
from protege.worlds.text.arithmetic import generate as arithmetic

PROMPTS = [e.prompt for e in arithmetic(6, 3)]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe([e.prompt + "\n" + e.completion for e in arithmetic(200, 0)], 300)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(1)
    return build_model(ModelConfig(arch="gpt2", n_layer=2, n_embd=32, n_head=2, context=64),
                       len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id).eval()


def repeats(row: list[int], n: int) -> bool:
    grams = [tuple(row[i:i + n]) for i in range(len(row) - n + 1)]
    return len(grams) != len(set(grams))


def test_banned_tokens_are_exactly_those_that_would_repeat_an_ngram():
    rng = random.Random(0)
    vocab = 5
    for n in (1, 2, 3):
        rows = [[rng.randrange(vocab) for _ in range(rng.randint(0, 9))] for _ in range(40)]
        rows = [r for r in rows if not repeats(r, n)]  # a row as decoding with the ban would leave it
        banned = ban_repeated_ngrams(torch.zeros(len(rows), vocab), rows, n)
        for row, logits in zip(rows, banned):
            for t in range(vocab):
                assert (logits[t] == -float("inf")) == repeats(row + [t], n), (n, row, t)


def test_decoding_with_the_ban_never_repeats_and_without_it_does(model, tokenizer):
    prompts = [tokenizer(p + "\n")["input_ids"][-30:] for p in PROMPTS]
    budgets = [24] * len(prompts)
    plain = decode(model, prompts, budgets, eos_id=-1, pad_id=tokenizer.pad_token_id)
    assert any(repeats(row, 2) for row in plain)  # an untrained model loops
    for sampling in (None, Sampling()):
        torch.manual_seed(0)
        rows = decode(model, prompts, budgets, eos_id=-1, pad_id=tokenizer.pad_token_id,
                      sampling=sampling, no_repeat_ngram=2)
        assert not any(repeats(row, 2) for row in rows)
        assert [len(r) for r in rows] == budgets


def test_mbr_is_seeded_picks_a_candidate_and_leaves_the_callers_random_state(model, tokenizer):
    cfg = EvalConfig(max_new_tokens=10, batch_size=16, mbr_samples=6)
    greedy = [g[0] for g in generate_text(model, tokenizer, PROMPTS, cfg)]
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = mbr_completions(model, tokenizer, "foldoc", PROMPTS, cfg, greedy, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert first == mbr_completions(model, tokenizer, "foldoc", PROMPTS, cfg, greedy, seed=4)
    torch.manual_seed(4)
    samples = generate_text(model, tokenizer, PROMPTS, EvalConfig(max_new_tokens=10, batch_size=16,
                                                                  temperature=0.7), n=6, sample=True)
    for chosen, g, drawn in zip(first, greedy, samples):
        assert chosen in [g, *drawn]
    with pytest.raises(ValueError, match="mbr_samples"):
        mbr_completions(model, tokenizer, "foldoc", PROMPTS, EvalConfig(), greedy)


def test_arithmetic_utility_is_agreement_on_the_stated_answer():
    same = task_utility("arithmetic")
    assert same("so the answer is 12", "the answer is 12") == 1.0
    assert same("the answer is 12", "the answer is 13") == 0.0
    assert same("no answer", "no answer") == 0.0  # no stated answer never agrees
    assert task_utility("foldoc")("a language for the web", "a language for the web") == 1.0


def test_bad_decoding_settings_are_refused():
    for field, value in (("no_repeat_ngram", -1), ("mbr_samples", -2), ("mbr_temperature", 0.0)):
        with pytest.raises(UserError, match=field):
            eval_config(**{field: value})
