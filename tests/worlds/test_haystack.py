"""Haystacks cut with the model's own tokenizer: prompts of exactly the requested token count, needles
at the requested depth, every recall task reproducible from its seed."""

import functools

import pytest

from protege.core.errors import UserError
from protege.worlds.text.haystack import (
    Haystack,
    count_tokens,
    exact_prompt,
    haystack_for,
    place_needles,
    source_text,
)
from protege.worlds.text.recall_tasks import TASKS, guess, make_sample

SOURCE = "licenses"  # /usr/share/common-licenses: in every Debian system


@functools.cache
def bpe_tokenizer(bos: bool = False):
    """The built-in byte-level BPE trained on the haystack text; with `bos`, a copy whose template
    puts its BOS before every text (as Llama's does), which counts in the prompt's length."""
    from tokenizers.processors import TemplateProcessing

    from protege.nn.tokenizer import EOS, train_bpe
    tokenizer = train_bpe([source_text(SOURCE)[:60_000]], vocab_size=600)
    if bos:
        tokenizer._tokenizer.post_processor = TemplateProcessing(
            single=f"{EOS} $A", special_tokens=[(EOS, tokenizer.convert_tokens_to_ids(EOS))])
    return tokenizer


@pytest.mark.parametrize("bos", [False, True])
@pytest.mark.parametrize("length", [64, 257, 1000])
def test_prompt_has_exactly_the_requested_tokens(bos, length):
    tokenizer = bpe_tokenizer(bos)
    stack = haystack_for(tokenizer, source_text(SOURCE), length, start=12_345)
    prompt = exact_prompt(tokenizer, stack, length, "Remember the number.\n",
                          "\nWhat is the number? The number is:", [(0.5, "The number is: 4887266.")])
    assert count_tokens(tokenizer, prompt.text) == prompt.tokens == length
    assert tokenizer(prompt.text)["input_ids"][0] == (tokenizer.eos_token_id if bos else
                                                     tokenizer(prompt.text, add_special_tokens=False)["input_ids"][0])
    assert prompt.text.count("The number is: 4887266.") == 1


@pytest.mark.parametrize("depth", [0.0, 0.1, 0.33, 0.5, 0.9, 1.0])
def test_needle_sits_at_the_requested_depth(depth):
    tokenizer = bpe_tokenizer()
    needle = "The special magic Lisbon number is: 4887266."
    stack = haystack_for(tokenizer, source_text(SOURCE), 2000, start=777)
    prompt = exact_prompt(tokenizer, stack, 2000, "", "", [(depth, needle)])
    at = prompt.text.index(needle)
    haystack_chars = len(prompt.text) - len(needle)
    measured = at / haystack_chars
    # placed at the nearest sentence start (else word start) within 2% of the haystack, and the
    # recorded depth is where the needle really is
    assert abs(measured - depth) < 0.03, (measured, depth)
    assert prompt.depths[0] == pytest.approx(measured, abs=2 / haystack_chars)
    if depth == 0.0:
        assert prompt.text.startswith(needle)
    if depth == 1.0:
        assert prompt.text.endswith(needle)


def test_needles_keep_their_order_and_the_text_around_them():
    cut = "One. Two. Three. Four."
    text, depths = place_needles(cut, [(0.0, "A."), (0.5, "B."), (0.5, "C."), (1.0, "D.")])
    assert text == "A. One. Two. B. C. Three. Four. D."
    assert depths == (0.0, 10 / 22, 10 / 22, 1.0)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_builds_an_exact_reproducible_prompt(task):
    tokenizer = bpe_tokenizer(True)
    sample = make_sample(tokenizer, task, 0, 600, 0.25, seed=3, source=SOURCE)
    assert count_tokens(tokenizer, sample.input) == sample.tokens
    if task in ("ruler_cwe", "ruler_fwe"):  # word lists grow to the largest that fits
        assert 500 < sample.tokens <= 600
    else:
        assert sample.tokens == 600
    assert sample.outputs and all(o in sample.input for o in sample.outputs if task != "ruler_cwe")
    assert make_sample(tokenizer, task, 0, 600, 0.25, seed=3, source=SOURCE) == sample
    assert make_sample(tokenizer, task, 1, 600, 0.25, seed=3, source=SOURCE).input != sample.input
    guessed = guess(sample).split()
    assert 0 < len(guessed) <= len(sample.outputs) and all(g in sample.input for g in guessed)
    if task == "needle_single":  # the one 7-digit number in the prompt: chance level is 100%
        assert guessed == list(sample.outputs)
    if TASKS[task].uses_depth:
        assert sample.depth == 0.25 and abs(sample.depths[0] - 0.25) < 0.05  # whole words (uuids: 36 chars)


def test_refusals_are_one_line():
    tokenizer = bpe_tokenizer()
    stack = Haystack(tokenizer, source_text(SOURCE)[:5000])
    with pytest.raises(UserError, match="alone take"):
        exact_prompt(tokenizer, stack, 5, "a long question " * 5, "", [])
    with pytest.raises(UserError, match="not one of foldoc"):
        source_text("/no/such/haystack.txt")
    with pytest.raises(UserError, match="unknown task 'niah_single_9'"):
        make_sample(tokenizer, "niah_single_9", 0, 100, 0.5, 0, SOURCE)


def test_exact_length_holds_over_many_short_prompts():
    """Short prompts leave a few dozen haystack tokens, where a cut through a word can add two
    tokens at once and a needle moving between sentences shifts the count: still exact, every time."""
    tokenizer = bpe_tokenizer(True)
    for i in range(60):
        depth = (i % 11) / 10
        sample = make_sample(tokenizer, "needle_single", i, 160 + i % 7, depth, seed=11, source=SOURCE)
        assert count_tokens(tokenizer, sample.input) == sample.tokens == 160 + i % 7
