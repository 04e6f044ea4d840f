"""`eval lm`'s faster scoring pieces give exactly what they gave before (see
docs/results/lm_eval_speed.md, third round): the arithmetic task's examples (other results depend on
them), its cached answer parsers, and the TF-IDF postings' two layouts."""

import hashlib
import json
import random

import numpy as np

from protege.systems.lm_irl.baselines import _postings
from protege.worlds.text import arithmetic
from protege.worlds.text.tasks import TaskConfig, load_task

ARITHMETIC_TASK_SHA256 = "3daadae6eaf84e7db4559d5663138b0f1c4d4bb4d409b2d001bc47fa6c8af659"
"""sha256 of the JSON list of [prompt, completion] of load_task(train_size=5000, seed 0): train, then eval"""


def test_arithmetic_task_examples_are_unchanged():
    task = load_task(TaskConfig(train_size=5000), 0)
    rows = [[e.prompt, e.completion] for e in task.train + task.eval]
    assert hashlib.sha256(json.dumps(rows).encode()).hexdigest() == ARITHMETIC_TASK_SHA256


def test_cached_answer_parsers_equal_the_plain_ones():
    rng = random.Random(0)
    examples = arithmetic.generate(300, 5)
    texts = [e.completion for e in examples] + ["The answer is -3.", "no answer", "answer is 4 answer is 5"]
    prompts = [e.prompt for e in examples] + ["1 and 2", "A has 3 x. A gets 4 and loses 5. How many?"]
    for _ in range(3):  # the second and third passes read the caches
        for text in texts:
            assert arithmetic.answer_of(text) == arithmetic.answer_of.__wrapped__(text)
        for prompt in prompts:
            assert arithmetic.expected_answer(prompt) == arithmetic.expected_answer.__wrapped__(prompt)
    for e in examples:
        wrong = e.completion.replace("answer is ", "answer is 1")
        assert arithmetic.is_correct(e.prompt, e.completion)
        assert not arithmetic.is_correct(e.prompt, wrong)
        prompt = rng.choice(prompts)  # any pairing: what the plain parsers say
        assert arithmetic.is_correct(prompt, e.completion) == \
            (arithmetic.answer_of.__wrapped__(e.completion) == arithmetic.expected_answer.__wrapped__(prompt))


def test_dense_and_sparse_postings_add_the_same_bits():
    """A word in most training prompts is added as a dense row with zeros where it is absent: the
    similarities stay bit for bit those of adding at its rows only."""
    rng = np.random.default_rng(0)
    n = 50
    for share in (0.2, 0.5, 0.9):
        start = rng.random(n) * (rng.random(n) < 0.5)  # some similarities still exactly 0
        rows = np.flatnonzero(rng.random(n) < share)
        weights = rng.random(len(rows))
        where, added = _postings(rows, weights, n)
        assert isinstance(where, slice) == (len(rows) * 2 >= n)
        got, expected = start.copy(), start.copy()
        got[where] += 0.37 * added
        expected[rows] += 0.37 * weights
        assert np.array_equal(got, expected) and not np.signbit(got).any()


def test_plain_cache_keeps_the_chosen_rows_written_keys_and_values():
    """Rows leaving the batch (and n copies of a prompt's rows) keep exactly their keys and values,
    and writing continues after them."""
    import torch

    from protege.nn.gpt2_plain import PlainCache
    torch.manual_seed(0)
    cache = PlainCache(n_layer=2, capacity=9)
    written = [[torch.randn(5, 2, 4, 3) for _ in range(2)] for _ in range(2)]  # layer -> keys, values
    for layer, (k, v) in enumerate(written):
        cache.update(layer, k, v)
    cache.length = 4
    for rows in (torch.tensor([0, 2, 3]), torch.tensor([1, 1, 0])):
        expected = [[t[rows] for t in layer] for layer in written]
        cache.batch_select_indices(rows)
        written = expected
        for layer, (k, v) in enumerate(written):
            assert torch.equal(cache.keys[layer][:, :, :4], k) and torch.equal(cache.values[layer][:, :, :4], v)
            assert cache.keys[layer].shape[2] == 9  # the capacity stays
    new_k, new_v = torch.randn(3, 2, 1, 3), torch.randn(3, 2, 1, 3)
    k, v = cache.update(0, new_k, new_v)
    assert torch.equal(k, torch.cat([written[0][0], new_k], 2)) and torch.equal(v, torch.cat([written[0][1], new_v], 2))


def test_the_cli_skips_the_exit_time_garbage_collection():
    """`protege` freezes the collector at exit (atexit runs the last registered first, so this
    check, registered before the CLI is imported, runs after the freeze), and not before."""
    import subprocess
    import sys

    from tests.conftest import protege_env
    code = ("import atexit, gc\natexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
            "from protege.cli.main import main\nassert gc.get_freeze_count() == 0\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\nassert gc.get_freeze_count() == 0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=protege_env()).stdout
    assert out.strip().endswith("frozen True")


def test_heavy_imports_pause_the_collector_and_freeze_what_they_made(monkeypatch):
    """With torch not yet loaded: the collector is paused inside and what exists afterwards is
    frozen; with torch loaded (as here, and in any in-process caller) it changes nothing."""
    import gc
    import sys

    import torch  # noqa: F401  (loaded, as in any in-process caller)

    from protege.core.cli import heavy_imports
    with heavy_imports():
        assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    monkeypatch.delitem(sys.modules, "torch")
    try:
        with heavy_imports():
            assert not gc.isenabled()
            made = [[] for _ in range(1000)]  # stands for what an import makes
        assert gc.isenabled() and gc.get_freeze_count() >= len(made)
    finally:
        gc.unfreeze()


def test_a_transformers_model_writes_the_in_place_cache_it_is_given():
    """The decoder hands its in-place cache to a transformers model under the name this transformers
    reads (`cache`, or `past_key_values` before the rename): a model given it under a name it does not
    know would build a cache of its own and leave this one empty."""
    import torch

    from protege.nn.decode import _next_logits, in_place_cache, left_padded
    from protege.nn.lm import ModelConfig, build_model
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=2, n_embd=16, n_head=2, context=16), 40, 0, 1).eval()
    ids, mask = left_padded([[5, 6, 7], [8, 9]], pad_id=0)
    cache = in_place_cache(model, 8)
    with torch.no_grad():
        _next_logits(model, ids, mask, (mask.cumsum(-1) - 1).clamp_min(0), cache)
    assert cache.get_seq_length() == 3
