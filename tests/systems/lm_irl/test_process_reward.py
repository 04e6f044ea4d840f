"""Process reward from step marks (inter-temporal Bradley-Terry on token prefixes) and best-of-N."""

import json
import random

import numpy as np
import pytest

from protege.core.errors import UserError
from protege.nn.tokenizer import load_tokenizer
from protege.systems import start
from protege.systems.lm_irl.best_of_n import best_of_n, majority_vote, pass_at_n
from protege.systems.lm_irl.process_reward import (
    encode_marked,
    group_by_prompt,
    load_reward_run,
    mark_quality,
)
from protege.worlds.text import arithmetic
from protege.worlds.text.step_marks import mark_solution, simulated_marks, write_marks
from tests.conftest import protege_cmd, straight_and_resumed

TINY = ["freeze_lm=false", "model.n_layer=1", "model.n_embd=32", "model.n_head=2", "vocab_size=300", "trainer.batch_size=8",
        "marks.eval_prompts=8", "marks.held_out=0", "eval_batch=64", "trainer.lr=3e-3"]


def obvious_errors(n: int, seed: int):
    """Marked solutions whose wrong steps state negative values, which no right step has: the marks
    are learnable by a one-layer model in a few seconds (real slips need a bigger model and longer)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt, _, v = arithmetic.make_problem(rng)
        x = -v["x"] if rng.random() < 0.5 else v["x"]
        y = -(x - v["c"]) if rng.random() < 0.3 and x > 0 else x - v["c"]
        out.append(mark_solution(prompt, f"{v['a']} + {v['b']} = {x}. {x} - {v['c']} = {y}. The answer is {y}."))
    return out


def test_marked_prefixes_end_on_the_marked_step(tmp_path):
    from protege.nn.tokenizer import train_bpe
    solutions = simulated_marks(20, 2, seed=3)
    tokenizer = train_bpe([s.prompt + "\n" + s.completion for s in solutions], 300)
    for s, e in zip(solutions, encode_marked(tokenizer, solutions, 200)):
        assert len(e.marks) == len(s.marks) and e.progress == [m.kind == "progress" for m in s.marks]
        assert tokenizer.decode(e.ids[:e.start + 1]).endswith(s.prompt + "\n")
        for m, p in zip(s.marks, e.marks):
            assert tokenizer.decode(e.ids[e.start + 1:p + 1]) == s.completion[:m.end]
        assert tokenizer.decode(e.ids[e.start + 1:e.end + 1]) == s.completion


@pytest.mark.slow  # 100 steps of a 2-layer model: 35-60 s on 2 busy cores
def test_prm_on_a_tiny_model_orders_right_step_prefixes_above_wrong_ones(tmp_path):
    write_marks(obvious_errors(150, seed=0), tmp_path / "marks.jsonl")
    run_dir, summary = start("prm_arithmetic", TINY + [
        f"marks.path={tmp_path / 'marks.jsonl'}", "model.n_layer=2", "model.n_embd=64", "trainer.steps=100",
        "trainer.batch_size=16", "trainer.lr=3e-3", "trainer.warmup_steps=0", "trainer.checkpoint_every=0",
        f"runs_dir={tmp_path}", "name=prm"])
    model, tokenizer, context = load_reward_run(run_dir)
    held_out = obvious_errors(60, seed=1)
    quality = mark_quality(model, group_by_prompt(held_out, encode_marked(tokenizer, held_out, context)),
                           tokenizer.pad_token_id)
    assert quality["marks/step_accuracy"] > 0.8, quality  # a flat U (the untrained head) scores the regress share, ~0.55
    assert summary["reward"] == "process" and 0 <= summary["marks/step_accuracy"] <= 1


def test_best_of_n_with_an_oracle_reward_picks_a_correct_sample_when_one_exists():
    rng = np.random.default_rng(0)
    correct = (rng.random((50, 16)) < 0.3).astype(float)
    for n in (1, 4, 16):
        assert best_of_n(correct, correct, n) == pass_at_n(correct, n)
    assert best_of_n(correct, correct, 16) == float(correct.any(axis=1).mean())
    assert best_of_n(-correct, correct, 4) == float(correct.reshape(50, 4, 4).min(-1).mean())
    assert best_of_n(np.zeros((50, 16)), correct, 4) == float(correct[:, ::4].mean())  # ties: the first
    assert best_of_n(correct, correct, 1) == float(correct.mean())


def test_majority_vote_takes_the_most_common_stated_answer():
    answers = [[3, 5, 5, None], [None, None, 7, 2], [1, 2, 1, 2]]
    assert majority_vote(answers, [5, 2, 2], 4) == pytest.approx(1 / 3)  # 5 wins; ties: 7, 1 seen first
    assert majority_vote(answers, [5, 7, 1], 4) == pytest.approx(1.0)
    # pairs: [3,5]->3 right, [5,None]->5 wrong, [None,None] no answer, [7,2]->7, [1,2]->1, [1,2]->1 right
    assert majority_vote(answers, [3, 7, 1], 2) == pytest.approx(4 / 6)


def test_a_bad_marks_file_is_refused_by_the_run_naming_line_and_field(tmp_path):
    good = simulated_marks(2, 1, seed=0)
    write_marks(good, tmp_path / "marks.jsonl")
    lines = (tmp_path / "marks.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    row["marks"][0]["kind"] = "progres"
    (tmp_path / "marks.jsonl").write_text(lines[0] + "\n" + json.dumps(row) + "\n")
    with pytest.raises(UserError) as info:
        start("prm_arithmetic", [f"marks.path={tmp_path / 'marks.jsonl'}", f"runs_dir={tmp_path / 'runs'}", *TINY])
    assert str(info.value) == (f"{tmp_path / 'marks.jsonl'} line 2: field marks[0].kind: unknown kind "
                               f"'progres' (valid: progress, regress)")
    assert not (tmp_path / "runs" / "prm-arithmetic").exists()  # a refused run leaves nothing behind


@pytest.mark.slow  # a straight run, a killed one and its resumption: 130 s on 2 busy cores
def test_prm_resumes_after_sigkill_to_the_same_weights_and_metrics(tmp_path):
    args = TINY + ["marks.prompts=40", "marks.solutions=2", "trainer.steps=40", "trainer.checkpoint_every=4",
                   "trainer.log_every=2", "model.dropout=0.1"]

    def command(name, *extra):
        return protege_cmd("run", "prm_arithmetic", f"name={name}", *args, *extra)

    straight, killed = straight_and_resumed(command, tmp_path, "step-00000008")
    assert load_tokenizer(killed / "tokenizer").get_vocab() == load_tokenizer(straight / "tokenizer").get_vocab()


LM_TINY = ["task.train_size=200", "task.eval_size=4", "model.n_layer=1", "model.n_embd=32", "model.n_head=2",
           "vocab_size=300", "trainer.steps=4", "trainer.batch_size=8", "eval.prompts=2", "eval.sample_prompts=1",
           "eval.samples=2", "eval.max_new_tokens=8", "objective.method=iqlearn", "objective.lam=0.01"]


@pytest.mark.slow  # five CLI processes (marks, a tiny lm run, a prm run, reranking): 175 s on 2 busy cores
def test_marks_then_prm_from_an_lm_run_then_rerank_through_the_cli(tmp_path, cli):
    code, out = cli("data", "arithmetic-marks", "marks.jsonl", "--prompts", "20", "--solutions", "2")
    assert code == 0, out
    code, out = cli("run", "lm_arithmetic_iqlearn", "name=lm", *LM_TINY)
    assert code == 0, out
    code, out = cli("run", "prm_arithmetic", "name=prm", "marks.path=marks.jsonl", "init_from=runs/lm", "freeze_lm=true",
                    "trainer.steps=4", "trainer.batch_size=4", "marks.eval_prompts=4", "marks.held_out=4")
    assert code == 0, out
    code, out = cli("lm", "rerank", "runs/lm", "--reward", "process=runs/prm", "--reward", "iqlearn=runs/lm",
                    "--prompts", "3", "--samples", "4", "--n", "1", "--n", "4", "--out", "bon.json")
    assert code == 0, out
    summary = json.loads((tmp_path / "bon.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "bon.samples.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and {"process", "iqlearn", "correct", "completion"} <= set(rows[0])
    for key in ("process", "iqlearn"):
        assert summary[f"{key}@1"] == pytest.approx(np.mean([r["correct"] for r in rows]))
        assert 0 <= summary[f"{key}@4"] <= summary["pass@4"]
    code, out = cli("lm", "rerank", "runs/lm", "--reward", "bad", "--samples", "4")
    assert code == 2 and "--reward 'bad': expected NAME=RUN_DIR" in out
    code, out = cli("lm", "rerank", "runs/lm", "--samples", "6", "--n", "4")
    assert code == 2 and "N=4 must divide the number of samples per prompt (6)" in out
