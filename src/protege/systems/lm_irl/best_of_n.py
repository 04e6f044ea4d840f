"""Best-of-N reranking of a language model's samples by a reward, against greedy and majority vote.

For each held-out prompt the policy draws S samples (temperature 1). Best-of-N for N dividing S
splits them into S / N disjoint groups of N in drawing order, keeps the highest-reward sample of each
group (the first on ties) and averages its correctness over groups and prompts: an unbiased estimate
of the accuracy of best-of-N with fresh samples, using all S (N = 1 is the sampled accuracy).
Majority vote keeps the most common final answer of each group (ties: the answer seen first);
pass@N (the oracle: any correct sample in the group) is the ceiling every reranker is below.

Rewards: a `prm` run (process or outcome Bradley-Terry; score U(end) - U(prompt)) or an `lm` run
(IQLearn's extracted reward, sum_t Q(s_t,a_t) - gamma V(s_t+1), as `protege lm reward` computes).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from protege.core.errors import UserError
from protege.data.text import TextExample


def groups_of(values: np.ndarray, n: int) -> np.ndarray:
    """[P, S] -> [P, S // n, n] disjoint groups in drawing order."""
    prompts, samples = values.shape
    if n < 1 or samples % n:
        raise UserError(f"best-of-N: N={n} must divide the number of samples per prompt ({samples})")
    return values.reshape(prompts, samples // n, n)


def best_of_n(scores: np.ndarray, correct: np.ndarray, n: int) -> float:
    """Mean correctness of each group's highest-scoring sample (argmax: first on ties)."""
    s, c = groups_of(np.asarray(scores, dtype=float), n), groups_of(np.asarray(correct, dtype=float), n)
    pick = np.argmax(s, axis=-1)
    return float(np.take_along_axis(c, pick[..., None], axis=-1).mean())


def pass_at_n(correct: np.ndarray, n: int) -> float:
    return float(groups_of(np.asarray(correct, dtype=float), n).max(axis=-1).mean())


def majority_vote(answers: list[list[int | None]], truth: list[int], n: int) -> float:
    """Mean correctness of each group's most common stated answer (no answer never wins a vote)."""
    right = []
    for sample_answers, true in zip(answers, truth):
        for g in range(0, len(sample_answers) - n + 1, n):
            votes = Counter(a for a in sample_answers[g:g + n] if a is not None)
            right.append(bool(votes) and votes.most_common(1)[0][0] == true)  # ties: first seen (insertion order)
    return float(np.mean(right))


# scoring the samples ---------------------------------------------------------------------------
def reward_scores(run_dir: Path, prompts: list[str], completions: list[str]) -> np.ndarray:
    """Each completion's score under the reward of `run_dir` (a `prm` or an `lm` run)."""
    from protege.core.runs import read_run_config
    experiment = read_run_config(run_dir).get("experiment")
    if experiment == "prm":
        from protege.systems.lm_irl.process_reward import completion_scores, load_reward_run
        model, tokenizer, context = load_reward_run(run_dir)
        return completion_scores(model, tokenizer, context, prompts, completions)
    if experiment == "lm":
        from protege.systems.lm_irl.evaluate import load_trained, score_completions
        model, tokenizer, config = load_trained(run_dir, inference_only=True)
        pairs = [TextExample(p, c or " ") for p, c in zip(prompts, completions)]
        rewards, _ = score_completions(model, tokenizer, pairs, config["model"]["context"],
                                       config.get("objective", {}).get("gamma", 1.0))
        return rewards
    raise UserError(f"{run_dir}: a {experiment!r} run gives no reward (valid: a 'prm' run, or an 'lm' "
                    f"run for its extracted reward)")


def rerank(policy_run: Path, rewards: dict[str, Path], prompts: int, samples: int, ns: list[int],
           seed: int) -> tuple[dict, list[dict]]:
    """(summary, per-sample rows): greedy, majority vote, pass@N and best-of-N per reward."""
    from protege.systems.lm_irl.evaluate import eval_config, generate, load_trained
    from protege.worlds.text import arithmetic
    from protege.worlds.text.tasks import TaskConfig, load_task
    for n in ns:
        groups_of(np.zeros((1, samples)), n)  # refuse a bad N before any work
    model, tokenizer, config = load_trained(policy_run, inference_only=True)
    if config.get("task", {}).get("kind") != "arithmetic":
        raise UserError(f"{policy_run}: task.kind is {config.get('task', {}).get('kind')!r}; "
                        f"reranking needs the arithmetic task (its answers are checkable)")
    task_fields = {k: v for k, v in config["task"].items() if k in TaskConfig.__dataclass_fields__}
    examples = load_task(TaskConfig(**task_fields), config["seed"]).eval[:prompts]
    cfg = eval_config(max_new_tokens=config["eval"]["max_new_tokens"])
    texts = [e.prompt for e in examples]
    greedy = [g[0] for g in generate(model, tokenizer, texts, cfg)]
    torch.manual_seed(seed)
    drawn = generate(model, tokenizer, texts, cfg, n=samples, sample=True)
    flat_prompts = [p for p in texts for _ in range(samples)]
    flat = [c for group in drawn for c in group]
    correct = np.asarray([arithmetic.is_correct(p, c) for p, c in zip(flat_prompts, flat)],
                         dtype=float).reshape(len(texts), samples)
    answers = [[arithmetic.answer_of(c) for c in group] for group in drawn]
    truth = [arithmetic.expected_answer(p) for p in texts]
    summary = {"prompts": len(texts), "samples": samples, "seed": seed,
               "greedy": float(np.mean([arithmetic.is_correct(p, g) for p, g in zip(texts, greedy)]))}
    for n in ns:
        summary[f"majority@{n}"] = majority_vote(answers, truth, n)
        summary[f"pass@{n}"] = pass_at_n(correct, n)
    scores = {}
    for name, run_dir in rewards.items():
        scores[name] = reward_scores(Path(run_dir), flat_prompts, flat).reshape(len(texts), samples)
        for n in ns:
            summary[f"{name}@{n}"] = best_of_n(scores[name], correct, n)
    rows = [{"prompt": p, "sample": j, "completion": drawn[i][j], "correct": bool(correct[i, j]),
             **{name: float(s[i, j]) for name, s in scores.items()}}
            for i, p in enumerate(texts) for j in range(samples)]
    return summary, rows
