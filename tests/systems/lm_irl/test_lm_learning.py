"""A tiny model learns a toy mapping with IQLearn, and its extracted reward ranks expert completions
above corrupted ones."""

import json
import random

import numpy as np
import pytest

from protege.core.errors import UserError
from protege.data.text import TextExample
from protege.systems import start
from protege.systems.lm_irl.evaluate import reward_table

WORDS = ["red", "green", "blue", "cyan", "pink", "gold", "gray", "teal"]
ANSWERS = {w: f"{w} is colour number {i}" for i, w in enumerate(WORDS)}


def toy_dataset(path, n=400, seed=0):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            word = rng.choice(WORDS)
            f.write(json.dumps({"prompt": f"name {word}", "completion": ANSWERS[word]}) + "\n")
    return path


TINY = ["task.kind=file", "task.eval_size=16", "model.n_layer=2", "model.n_embd=48", "model.n_head=2",
        "model.context=32", "vocab_size=300", "trainer.batch_size=16", "trainer.lr=3e-3",
        "trainer.checkpoint_every=0", "eval.prompts=16", "eval.sample_prompts=4", "eval.samples=4",
        "eval.max_new_tokens=12", "trainer.log_every=20"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    data = toy_dataset(tmp / "toy.jsonl")
    run_dir, summary = start("lm_arithmetic_iqlearn", TINY + [f"task.path={data}", f"runs_dir={tmp}",
                                                              "trainer.steps=150", "objective.lam=0.05"])
    return run_dir, summary


def test_iqlearn_learns_the_toy_task(trained):
    _, summary = trained
    assert summary["eval/greedy_score"] > 0.95  # ROUGE-L against the reference


def test_expert_completions_get_higher_extracted_reward_than_corrupted(trained):
    run_dir, _ = trained
    expert = [TextExample(f"name {w}", ANSWERS[w]) for w in WORDS]
    corrupted = [TextExample(f"name {w}", ANSWERS[WORDS[(i + 1) % len(WORDS)]]) for i, w in enumerate(WORDS)]
    good = np.array([r["reward"] for r in reward_table(run_dir, expert)])
    bad = np.array([r["reward"] for r in reward_table(run_dir, corrupted)])
    assert (good > bad).all(), (good, bad)


def test_training_changed_every_parameter(trained):
    import torch
    from safetensors.torch import load_file

    from protege.nn.lm import ModelConfig, build_model
    from protege.nn.tokenizer import load_tokenizer
    run_dir, _ = trained
    tok = load_tokenizer(run_dir / "tokenizer")
    torch.manual_seed(0)  # the experiment seeds like this before building the model
    initial = build_model(ModelConfig(n_layer=2, n_embd=48, n_head=2, context=32), len(tok),
                          tok.pad_token_id, tok.eos_token_id)
    trained_weights = load_file(str(run_dir / "model" / "model.safetensors"))
    for name, param in initial.named_parameters():
        assert name in trained_weights, name
        assert not torch.equal(param.detach(), trained_weights[name]), f"{name} did not change"


def test_file_task_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n')
    with pytest.raises(UserError, match="bad.jsonl line 2: missing field 'completion'"):
        start("lm_arithmetic_mle", TINY + [f"task.path={bad}", f"runs_dir={tmp_path}"])
    assert not (tmp_path / "arithmetic-mle").exists()


def protege(capsys, *args) -> tuple[int, str]:
    """`protege ARGS` in this process (the models and libraries stay loaded): (exit code, output)."""
    from protege.cli.main import main
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_cli_reward_and_sample(trained, capsys, tmp_path):
    run_dir, _ = trained
    data = tmp_path / "score.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"name {w}", "completion": ANSWERS[w]}) + "\n"
                            for w in WORDS[:3]))
    code, out = protege(capsys, "lm", "reward", run_dir, "--data", data, "--out", tmp_path / "scores.jsonl")
    assert code == 0, out
    rows = [json.loads(l) for l in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert [r["completion"] for r in rows] == [ANSWERS[w] for w in WORDS[:3]]
    assert all(isinstance(r["reward"], float) for r in rows) and "mean reward" in out
    code, out = protege(capsys, "lm", "sample", run_dir, "name red", "--n", "2")
    assert code == 0 and "red is colour number 0" in out, out
    code, out = protege(capsys, "lm", "sample", run_dir, "name red", "--greedy", "--n", "3", "--device", "auto")
    assert code == 0 and "red is colour number 0" in out, out
    assert out.count("red is colour number 0") == 1  # greedy: one deterministic completion
    code, again = protege(capsys, "lm", "sample", run_dir, "name red", "--greedy")
    rows_of = lambda text: [line for line in text.splitlines() if "│" in line]  # noqa: E731  (the table, not timings)
    assert rows_of(again) == rows_of(out)
    code, out = protege(capsys, "lm", "reward", tmp_path, "--data", data)
    assert code == 2 and "not a run directory" in out and "Traceback" not in out
    code, out = protege(capsys, "lm", "sample", run_dir, "name red", "--temperature", "0")
    assert code == 2 and "temperature must be > 0" in out and "Traceback" not in out
    code, out = protege(capsys, "eval", "lm", run_dir, "--prompts", "8", "--sample-prompts", "2",
                        "--samples", "2", "--beams", "2")
    assert code == 0 and "eval/greedy_score" in out, out
    code, out = protege(capsys, "lm", "sample", run_dir, "name red", "--mbr", "4", "--no-repeat-ngram", "3")
    assert code == 0 and "MBR choice" in out and out.count("red is colour number 0") == 1, out
    code, out = protege(capsys, "eval", "lm", run_dir, "--prompts", "4", "--sample-prompts", "2",
                        "--samples", "2", "--mbr", "3", "--no-repeat-ngram", "3")
    assert code == 0 and "eval/mbr_score" in out, out
    code, out = protege(capsys, "eval", "lm", run_dir, "--mbr", "-1")
    assert code == 2 and "mbr_samples" in out and "Traceback" not in out
