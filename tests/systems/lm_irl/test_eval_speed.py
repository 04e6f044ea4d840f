"""Batched, KV-cached decoding (protege.nn.decode) gives what transformers' `generate` gives.

Greedy: token for token, against `generate` called on one prompt at a time (the plainest reference)
and against the earlier length-bucketed path of `eval lm`, for the built-in GPT-2 (learned positions,
where left padding must not shift them), the built-in Llama (rotary) and a local HF Llama with a BOS
token. Sampling draws in another order than `generate`, so it is tested for what it can promise:
seeded runs repeat, and sampling at a vanishing temperature is greedy decoding.
"""

from collections import Counter

import pytest
import torch

from protege.nn.decode import HF_DEFAULT_TOP_K, Sampling, decode, sampling_like_generate
from protege.nn.lm import ModelConfig, build_model, generate, load_lm
from protege.nn.tokenizer import train_bpe
from protege.systems.lm_irl.evaluate import EvalConfig
from protege.systems.lm_irl.evaluate import generate as generate_text
from protege.worlds.text.arithmetic import generate as arithmetic

PROMPTS = [e.prompt for e in arithmetic(8, 3)] + ["one", " ".join(["seven plus eight"] * 12)]


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe([e.prompt + "\n" + e.completion for e in arithmetic(200, 0)], 300)


def tiny(arch: str, tokenizer, context: int = 48):
    torch.manual_seed(1)
    return build_model(ModelConfig(arch=arch, n_layer=2, n_embd=32, n_head=2, context=context),
                       len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id).eval()


def some_rows_token(model, prompts: list[list[int]], budgets: list[int]) -> int:
    """A token greedy decoding emits mid-way for about half the prompts: used as EOS, so rows end at
    different steps (an untrained model never emits the real EOS)."""
    rows = decode(model, prompts, budgets, eos_id=-1, pad_id=0)
    rows_with = Counter(t for row in rows for t in set(row[1:-1]) if t != row[0])
    return min(rows_with, key=lambda t: abs(rows_with[t] - len(prompts) / 2))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_greedy_equals_generate_one_prompt_at_a_time(arch, tokenizer):
    model = tiny(arch, tokenizer)
    prompts = [tokenizer(p + "\n")["input_ids"][-30:] for p in PROMPTS]
    budgets = [min(12, 48 - len(p)) for p in prompts]
    eos = some_rows_token(model, prompts, budgets)
    batched = decode(model, prompts, budgets, eos, tokenizer.pad_token_id, batch_size=5)
    ended = 0
    for ids, budget, row in zip(prompts, budgets, batched):
        x = torch.tensor([ids])
        ref = generate(model, input_ids=x, attention_mask=torch.ones_like(x), do_sample=False,
                       max_new_tokens=budget, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
        ref = ref[0, len(ids):].tolist()
        assert row == ref[:len(row)] and len(row) == len(ref)
        ended += row[-1] == eos and len(row) < budget
    assert 0 < ended < len(prompts)  # some rows left the batch early, others ran to their budget


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_eval_generate_matches_the_earlier_path(arch, tokenizer):
    model = tiny(arch, tokenizer, context=40)  # the long prompt is cut and gets a smaller budget
    cfg = EvalConfig(max_new_tokens=10, batch_size=4)
    assert generate_text(model, tokenizer, PROMPTS, cfg) == \
        generate_text(model, tokenizer, PROMPTS, cfg, impl="transformers")


def test_local_hf_llama_with_bos_matches(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.systems.lm_irl.test_special_tokens import llama_tokenizer
    tok = llama_tokenizer([e.prompt + "\n" + e.completion for e in arithmetic(200, 0)])
    torch.manual_seed(2)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                 max_position_embeddings=64, bos_token_id=tok.bos_token_id,
                                 eos_token_id=tok.eos_token_id)).save_pretrained(tmp_path / "hf")
    model = load_lm(tmp_path / "hf")
    tok.pad_token = tok.eos_token
    cfg = EvalConfig(max_new_tokens=8, batch_size=6)
    assert generate_text(model, tok, PROMPTS, cfg) == generate_text(model, tok, PROMPTS, cfg, impl="transformers")


def test_sampling_is_seeded_and_a_vanishing_temperature_is_greedy(tokenizer):
    model = tiny("gpt2", tokenizer)
    cfg = EvalConfig(max_new_tokens=8, batch_size=16)

    def sampled(seed, temperature=1.0):
        torch.manual_seed(seed)
        return generate_text(model, tokenizer, PROMPTS, EvalConfig(max_new_tokens=8, batch_size=16,
                                                                   temperature=temperature), n=3, sample=True)
    first = sampled(0)
    assert first == sampled(0) and first != sampled(1)
    assert sum(len(set(group)) > 1 for group in first) > len(first) / 2  # samples of a prompt differ
    greedy = generate_text(model, tokenizer, PROMPTS, cfg)
    assert sampled(5, temperature=1e-6) == [g * 3 for g in greedy]


def test_sampling_applies_what_generate_applies(tokenizer):
    model = tiny("gpt2", tokenizer)
    assert sampling_like_generate(model, 0.7, 0.9) == Sampling(0.7, HF_DEFAULT_TOP_K, 0.9)
    model.generation_config.top_k = 5
    assert sampling_like_generate(model, 1.0, 1.0).top_k == 5
    with pytest.raises(ValueError, match="temperature"):
        Sampling(temperature=0.0)


def test_bad_arguments(tokenizer):
    with pytest.raises(ValueError, match="2 prompts but 1 budgets"):
        decode(tiny("gpt2", tokenizer), [[1], [2]], [3], 1, 0)
    with pytest.raises(ValueError, match="impl must be one of"):
        generate_text(tiny("gpt2", tokenizer), tokenizer, ["x"], EvalConfig(), impl="fast")


def test_rouge_l_with_tokens_cached_equals_text_metrics():
    from protege.data.text import TextExample
    from protege.eval.text_metrics import rouge
    from protege.systems.lm_irl.evaluate import task_score
    texts = ["A program running programs.", "programs that ran", "", "the running of a compiler, compiled",
             "Compilers compile; a program runs.", "ÄÖ unicode words, words"]
    for reference in texts:
        for completion in texts * 2:  # the second round reads the cached tokens
            assert task_score("foldoc", TextExample("term", reference), completion) == \
                rouge(completion, reference)["rougeL"]


def test_bit_parallel_lcs_equals_the_dynamic_programming_table():
    import random

    from rouge_score.rouge_scorer import _lcs_table

    from protege.eval.text_metrics import lcs_length
    rng = random.Random(0)
    for _ in range(500):  # few distinct tokens: many matches, long common subsequences
        a = [rng.randrange(5) for _ in range(rng.randrange(0, 70))]
        b = [rng.randrange(5) for _ in range(rng.randrange(0, 70))]
        assert lcs_length(a, b) == _lcs_table(a, b)[-1][-1]


def test_sampled_tokens_follow_generates_distribution(tokenizer):
    """Not the same tokens (other draws), the same distribution: the first two sampled tokens of one
    prompt, 1,500 times by each path, pass a chi-square test of homogeneity (seeded, so not flaky)."""
    from scipy.stats import chi2_contingency
    model, n = tiny("gpt2", tokenizer), 1500
    with torch.no_grad():  # a peakier random model: a few dozen likely continuations, not ~all 300
        model.lm_head.weight.mul_(8)
    ids = tokenizer("Ann has 5 eggs.\n")["input_ids"]
    torch.manual_seed(0)
    x = torch.tensor([ids])
    ref = generate(model, input_ids=x, attention_mask=torch.ones_like(x), do_sample=True, top_p=0.9,
                   max_new_tokens=2, num_return_sequences=n, pad_token_id=tokenizer.pad_token_id,
                   eos_token_id=tokenizer.eos_token_id)[:, len(ids):].tolist()
    ours = decode(model, [ids] * n, [2] * n, tokenizer.eos_token_id, tokenizer.pad_token_id,
                  sampling_like_generate(model, 1.0, 0.9))
    for pos in (0, 1):
        a, b = Counter(tuple(r[:pos + 1]) for r in ref), Counter(tuple(r[:pos + 1]) for r in ours)
        common = [k for k in set(a) | set(b) if a[k] + b[k] >= 20]
        table = [[c[k] for k in common] + [n - sum(c[k] for k in common) + 1] for c in (a, b)]  # +1: never empty
        assert len(common) > 20 and chi2_contingency(table).pvalue > 0.01


def test_sliding_window_models_keep_transformers_cache(tokenizer):
    from transformers import DynamicCache, MistralConfig, MistralForCausalLM

    from protege.nn.decode import in_place_cache
    from protege.nn.kv_cache import InPlaceLayer
    assert all(isinstance(layer, InPlaceLayer) for layer in in_place_cache(tiny("llama", tokenizer), 8).layers)
    mistral = MistralForCausalLM(MistralConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                               num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                               sliding_window=4))
    assert isinstance(in_place_cache(mistral, 8), DynamicCache)
    prompts = [tokenizer(p + "\n")["input_ids"][-12:] for p in PROMPTS[:3]]
    eos = mistral.config.eos_token_id
    rows = decode(mistral.eval(), prompts, [6] * 3, eos_id=eos, pad_id=tokenizer.pad_token_id)
    for ids, row in zip(prompts, rows):  # past the window: still generate's tokens
        x = torch.tensor([ids])
        ref = generate(mistral, input_ids=x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=6,
                       eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
        assert row == ref[0, len(ids):].tolist()


def saved_gpt2(tokenizer, folder):
    model = tiny("gpt2", tokenizer)
    model.save_pretrained(str(folder), safe_serialization=True)
    return model


def test_plain_gpt2_gives_transformers_logits(tokenizer, tmp_path):
    """The plain forward of a saved built-in GPT-2 equals GPT2LMHeadModel's: whole right-padded
    batches (the scoring pass), and KV-cached left-padded decoding, greedy and in `eval lm`."""
    from protege.nn.gpt2_plain import PlainGPT2, load_plain_gpt2
    hf = saved_gpt2(tokenizer, tmp_path / "m")
    plain = load_plain_gpt2(tmp_path / "m")
    assert isinstance(plain, PlainGPT2)
    ids = torch.randint(2, len(tokenizer), (3, 20))
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(plain(input_ids=ids, attention_mask=mask).logits[mask.bool()], ref[mask.bool()],
                          atol=1e-6, rtol=0)
    prompts = [tokenizer(p + "\n")["input_ids"][-30:] for p in PROMPTS]
    budgets = [min(12, 48 - len(p)) for p in prompts]
    eos = some_rows_token(hf, prompts, budgets)
    assert decode(plain, prompts, budgets, eos, tokenizer.pad_token_id, batch_size=5) == \
        decode(hf, prompts, budgets, eos, tokenizer.pad_token_id, batch_size=5)
    cfg = EvalConfig(max_new_tokens=10, batch_size=4)
    assert generate_text(plain, tokenizer, PROMPTS, cfg) == generate_text(hf, tokenizer, PROMPTS, cfg,
                                                                          impl="transformers")
    from protege.data.text import TextExample
    from protege.systems.lm_irl.evaluate import evaluate_lm
    examples = [TextExample(p, "12") for p in PROMPTS]
    cfg = EvalConfig(prompts=10, samples=3, sample_prompts=4, max_new_tokens=6)
    metrics = []
    for model in (hf, plain):  # same logits, same draws: the same metrics, the scoring pass's too
        torch.manual_seed(0)
        metrics.append(evaluate_lm(model, tokenizer, "arithmetic", examples, cfg, context=48))
    assert metrics[0] == pytest.approx(metrics[1], abs=1e-6, nan_ok=True)


def test_moving_the_plain_gpt2_moves_what_its_forward_reads(tokenizer, tmp_path):
    """`.to(...)` (a GPU, here a dtype: the same path through Module._apply) changes the weights the
    per-step forward reads, not only the registered parameters."""
    from protege.nn.gpt2_plain import load_plain_gpt2
    saved_gpt2(tokenizer, tmp_path / "m")
    plain = load_plain_gpt2(tmp_path / "m").to(torch.float64)
    assert {w.dtype for w in plain.w.values()} == {torch.float64}
    ids = torch.randint(2, len(tokenizer), (2, 8))
    assert plain(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.dtype == torch.float64


def test_plain_gpt2_loads_only_what_it_reproduces(tokenizer, tmp_path):
    import json

    from protege.nn.gpt2_plain import load_plain_gpt2
    saved_gpt2(tokenizer, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    for key, value in [("activation_function", "relu"), ("scale_attn_by_inverse_layer_idx", True),
                       ("model_type", "llama"), ("tie_word_embeddings", False)]:
        (tmp_path / "m" / "config.json").write_text(json.dumps({**config, key: value}))
        assert load_plain_gpt2(tmp_path / "m") is None, key
    (tmp_path / "m" / "config.json").write_text("{not json")
    assert load_plain_gpt2(tmp_path / "m") is None  # transformers' loading reports the broken file
    tiny("llama", tokenizer).save_pretrained(str(tmp_path / "l"), safe_serialization=True)
    assert load_plain_gpt2(tmp_path / "l") is None


def test_eval_lm_results_equal_the_transformers_model(tmp_path, monkeypatch):
    """`eval lm` (plain GPT-2) writes the metrics that the model loaded by transformers gives under
    the same seed; beam search still runs (it needs transformers' generate)."""
    import json

    from tests.cli.test_eval_results import TINY, invoke
    from protege.systems.lm_irl.evaluate import baselines, eval_config, evaluate_lm, load_trained
    from protege.worlds.text.tasks import TaskConfig, load_task
    monkeypatch.chdir(tmp_path)
    assert invoke("run", "lm_arithmetic_mle", "name=tiny", *TINY) == 0
    run_dir = tmp_path / "runs" / "tiny"
    args = ("--prompts", "6", "--samples", "3", "--sample-prompts", "4", "--seed", "3")
    assert invoke("eval", "lm", run_dir, *args) == 0
    (path,) = (run_dir / "eval").iterdir()
    model, tokenizer, config = load_trained(run_dir)
    assert type(model).__name__ == "GPT2LMHeadModel"
    task = load_task(TaskConfig(**{k: v for k, v in config["task"].items() if k in TaskConfig.__dataclass_fields__}),
                     config["seed"])
    torch.manual_seed(3)
    expected = evaluate_lm(model, tokenizer, "arithmetic", task.eval,
                           eval_config(prompts=6, samples=3, sample_prompts=4, max_new_tokens=4),
                           config["model"]["context"], config["objective"]["gamma"])
    expected.update(baselines("arithmetic", task.train, task.eval[:6], config["seed"]))
    assert json.loads(path.read_text())["results"] == pytest.approx(expected, abs=1e-6, nan_ok=True)
    # in a fresh process, a built-in run's eval lm imports none of these (each costs more CPU than
    # evaluating a small model): the plain GPT-2, the tokenizer read by `tokenizers`, numpy baselines
    import subprocess
    import sys
    code = ("import sys; from protege.cli.main import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\nprint(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'transformers', 'sklearn', 'scipy', 'nltk', 'rouge_score'}))")
    out = subprocess.run([sys.executable, "-c", code, "eval", "lm", str(run_dir), *args[:-1], "4"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
    assert invoke("eval", "lm", run_dir, *args, "--beams", "2") == 0
    assert len(list((run_dir / "eval").iterdir())) == 3


def test_sample_and_score_reuses_the_sampling_logits(tokenizer, monkeypatch):
    """The samples are `generate`'s (same seed) and their rewards and entropies those of the scoring
    pass, whether taken from the sampling pass (samples ending with EOS whose text tokenises back to
    the same tokens) or rescored (the others: cut at the budget, empty, or tokenised otherwise)."""
    import numpy as np

    from protege.data.text import TextExample
    from protege.systems.lm_irl import evaluate
    model = tiny("gpt2", tokenizer, context=96)
    words = [t for t in range(len(tokenizer)) if tokenizer.decode([t]).strip().isalnum()]
    with torch.no_grad():  # a random model that emits words and often EOS: h[0] = 1 after ln_f, so
        model.transformer.ln_f.weight[0], model.transformer.ln_f.bias[0] = 0.0, 1.0  # wte[:, 0] is a bias
        model.transformer.wte.weight[words, 0] += 6
        model.transformer.wte.weight[tokenizer.eos_token_id, 0] += 9
    examples = [TextExample(p, "x") for p in PROMPTS]
    cfg = EvalConfig(samples=4, max_new_tokens=8, top_p=0.9, batch_size=16)
    rescored = []
    score = evaluate.score_completions
    monkeypatch.setattr(evaluate, "score_completions",
                        lambda m, t, pairs, *a: rescored.extend(pairs) or score(m, t, pairs, *a))
    torch.manual_seed(0)
    samples, rewards, entropies = evaluate.sample_and_score(model, tokenizer, examples, cfg, context=96, gamma=0.9)
    assert 0 < len(rescored) < len(rewards) - 10
    torch.manual_seed(0)
    assert samples == generate_text(model, tokenizer, PROMPTS, cfg, n=4, sample=True)
    pairs = [TextExample(p, s or " ") for p, group in zip(PROMPTS, samples) for s in group]
    ref_rewards, ref_entropies = score(model, tokenizer, pairs, 96, 0.9)
    assert np.allclose(rewards, ref_rewards, rtol=1e-5, atol=1e-4)
    assert np.allclose(entropies, ref_entropies, rtol=1e-5, atol=1e-5)


def test_the_cli_imports_no_heavy_library_until_a_command_runs():
    """Every `protege` command pays for what the CLI imports on start (`protege --help` included):
    the command modules keep torch, transformers and the metric libraries inside the commands."""
    import subprocess
    import sys
    heavy = ("torch", "transformers", "sklearn", "scipy", "rouge_score", "sacrebleu", "nltk", "numpy")
    code = ("import sys; from protege.cli.main import load_commands; load_commands(); "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_copies_of_a_prompt_share_its_cache_and_decode_as_it_alone(tokenizer):
    model = tiny("gpt2", tokenizer)
    prompts = [tokenizer(p + "\n")["input_ids"][-30:] for p in PROMPTS[:4]]
    alone = decode(model, prompts, [8] * 4, -1, tokenizer.pad_token_id)
    copied = decode(model, [p for p in prompts for _ in range(3)], [8] * 12, -1, tokenizer.pad_token_id, batch_size=5)
    assert copied == [row for row in alone for _ in range(3)]
