"""Minimum-Bayes-risk decoding of the LM tasks (protege.eval.mbr): each prompt's greedy completion
and `mbr_samples` samples at `mbr_temperature`, and the one that agrees most with the others under
the task's metric: ROUGE-L on text tasks; on arithmetic, the same stated answer (a majority vote in
which the greedy completion wins ties)."""

from dataclasses import replace

import torch

from protege.eval.mbr import Utility, mbr_pick


def task_utility(kind: str) -> Utility:
    """u(hypothesis, pseudo-reference) for the task `kind`, its own score with a sample as reference."""
    if kind == "arithmetic":
        from protege.worlds.text.arithmetic import answer_of

        def same_answer(hypothesis: str, reference: str) -> float:
            answer = answer_of(hypothesis)
            return float(answer is not None and answer == answer_of(reference))
        return same_answer
    from protege.eval.text_metrics import rouge_l
    return lambda hypothesis, reference: rouge_l(reference, hypothesis)


def mbr_completions(model, tokenizer, kind: str, prompts: list[str], cfg, greedy: list[str] | None = None,
                    seed: int = 0) -> list[str]:
    """The MBR choice for each prompt among its greedy completion (given, or decoded here) and
    `cfg.mbr_samples` samples drawn at `cfg.mbr_temperature` with torch seeded by `seed` (the
    caller's random state is left as it was)."""
    from protege.systems.lm_irl.evaluate import generate
    if cfg.mbr_samples < 1:
        raise ValueError(f"mbr_samples must be >= 1 for MBR decoding, got {cfg.mbr_samples}")
    if greedy is None:
        greedy = [g[0] for g in generate(model, tokenizer, prompts, cfg)]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        samples = generate(model, tokenizer, prompts, replace(cfg, temperature=cfg.mbr_temperature),
                           n=cfg.mbr_samples, sample=True)
    utility = task_utility(kind)
    chosen = []
    for first, drawn in zip(greedy, samples):
        candidates = [first, *drawn]
        chosen.append(candidates[mbr_pick(candidates, utility)])
    return chosen
