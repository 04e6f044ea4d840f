"""How far a finished `lm` run is above each trivial baseline, prompt by prompt: the model's greedy
completion (or, with `--mbr N`, its minimum-Bayes-risk choice among the greedy completion and N
samples; `--no-repeat-ngram 3` bans repeated trigrams while decoding) and each baseline's completion are scored on the same held-out prompts, and the per-prompt
difference gets a 95% t-interval (a margin is clear when the interval is above zero). The baselines
are those of `protege eval lm` (empty, most common, best constant chosen on training data, nearest
training prompt's completion) and, for FOLDOC, two that copy the term: the term itself, and the
term followed by the constant completion that scores best after it on training data; `best` is
whichever baseline scores highest on these prompts.

With `--against RUN ...` (one per RUN, the same seeds in the same order) it also compares two
methods over seeds: each seed's greedy score of both, their difference, and means with 95% t-intervals
over the seeds. The last line printed is one JSON object.

    PYTHONPATH=src .venv/bin/python scripts/lm_margin.py RUN [RUN ...] [--prompts 100] [--against RUN ...] [--device cuda]

With `--recipe NAME [--set key=value ...] --seeds 0 1 2` (no RUN) it trains nothing: it prints each
seed's baselines on its held-out prompts and, for FOLDOC, how much of the reference a copy of the term
could supply (the share of the reference's ROUGE tokens found in the term, and how often a many-word
term's initials or a one-word term appear in the reference).
"""
import argparse
import json
from pathlib import Path

from protege.data.text import TextExample
from protege.eval.stats import mean_interval
from protege.eval.text_metrics import _rouge_tokens
from protege.systems.lm_irl.baselines import CONSTANT_SEARCH
from protege.systems.lm_irl.baselines import baseline_completions as trivial_completions
from protege.systems.lm_irl.evaluate import (
    eval_config,
    generate,
    load_trained,
    subject,
    task_score,
)
from protege.systems.lm_irl.mbr import mbr_completions
from protege.worlds.text.foldoc import term_of
from protege.worlds.text.tasks import TaskConfig, load_task


def baseline_completions(kind: str, train: list[TextExample], examples: list[TextExample],
                         seed: int, constant_search: tuple[int, int] = CONSTANT_SEARCH) -> dict[str, list[str]]:
    """{baseline name: its completion for each of `examples`}: `eval lm`'s trivial baselines
    (protege.systems.lm_irl.baselines), the retrieval one named plainly."""
    completions = trivial_completions(lambda e, c: task_score(kind, e, c), train, examples, seed, subject(kind),
                                      constant_search)
    return {name.removesuffix("_tfidf"): outs for name, outs in completions.items()}


def copy_stats(examples: list[TextExample]) -> dict[str, float]:
    """What copying the term could give, over FOLDOC `examples`: the mean share of the reference's
    ROUGE tokens (lower-cased, stemmed) that are tokens of the term; among terms of 2+ words, the
    share whose initials are a token of the reference ("(MAC)"); among one-word terms, the share
    found as a token of the reference (case ignored, as ROUGE does); and the share of one-word terms
    found with the same case as in the prompt."""
    covered, initials, single, single_cased = [], [], [], []
    for e in examples:
        term, reference = _rouge_tokens(term_of(e)), _rouge_tokens(e.completion)
        if reference:
            covered.append(sum(t in set(term) for t in reference) / len(reference))
        words = term_of(e).split()
        if len(words) >= 2:
            initials.append("".join(w[0] for w in words).lower() in reference)
        elif words:
            single.append(bool(term) and term[0] in reference)
            single_cased.append(words[0] in e.completion.replace("(", " ").replace(")", " ").split())
    mean = lambda xs: float(sum(xs) / max(1, len(xs)))
    return {"reference_tokens_in_term": mean(covered), "initials_in_reference": mean(initials),
            "multiword_terms": len(initials), "one_word_term_in_reference": mean(single),
            "one_word_term_same_case": mean(single_cased), "one_word_terms": len(single)}


def model_copies(greedy: list[tuple[str, str, str]]) -> dict[str, int]:
    """How often greedy FOLDOC completions copy the term, from (prompt, completion, reference): of the
    2+ word terms whose reference opens with their initials in brackets ("(MAC) ..."), those whose
    completion opens so too; of the one-word terms, those whose completion holds the term as
    written; and completions that loop (6+ words, under half of them distinct)."""
    initials = initials_right = single = single_copied = loops = 0
    for prompt, completion, reference in greedy:
        term = prompt.removeprefix("Define: ")
        words = term.split()
        opening = "(" + "".join(w[0] for w in words).upper() + ")"
        if len(words) >= 2 and reference.startswith(opening):
            initials += 1
            initials_right += completion.startswith(opening)
        if len(words) == 1:
            single += 1
            single_copied += term in completion
        tokens = completion.split()
        loops += len(tokens) >= 6 and len(set(tokens)) < len(tokens) / 2
    return {"initials_references": initials, "initials_copied": initials_right, "one_word_terms": single,
            "one_word_copied": single_copied, "looping": loops}


def per_prompt_scores(run_dir: Path, prompts: int, decoding: dict | None = None,
                      constant_search: tuple[int, int] = CONSTANT_SEARCH,
                      device: str = "cpu") -> tuple[dict[str, list[float]], list[tuple]]:
    """({"model" and each baseline: the task score of its completion on each held-out prompt},
    [(prompt, the model's completion, reference)]). The model's completion is its greedy one, or with
    `decoding={"mbr_samples": N, ...}` its MBR choice (see protege.systems.lm_irl.mbr); `decoding`
    holds EvalConfig fields (no_repeat_ngram, mbr_samples, mbr_temperature); the model decodes on
    `device`."""
    model, tokenizer, config = load_trained(run_dir)
    model = model.to(device)
    kind, seed = config["task"]["kind"], config["seed"]
    data = load_task(TaskConfig(**config["task"]), seed)
    examples = data.eval[:prompts]
    cfg = eval_config(max_new_tokens=config["eval"]["max_new_tokens"], **(decoding or {}))
    greedy = [outs[0] for outs in generate(model, tokenizer, [e.prompt for e in examples], cfg)]
    if cfg.mbr_samples:
        greedy = mbr_completions(model, tokenizer, kind, [e.prompt for e in examples], cfg, greedy, seed)
    completions = {"model": greedy, **baseline_completions(kind, data.train, examples, seed, constant_search)}
    scores = {name: [task_score(kind, e, c) for e, c in zip(examples, outs)] for name, outs in completions.items()}
    return scores, [(e.prompt, g, e.completion) for e, g in zip(examples, greedy)]


def margin_row(scores: dict[str, list[float]]) -> dict:
    """The model's mean, each baseline's mean, and model - baseline per prompt as (mean, low, high);
    `best` is the baseline with the highest mean on these prompts."""
    row = {"model": mean_interval(scores["model"])[0]}
    baselines = [name for name in scores if name != "model"]
    for name in baselines:
        row[name] = mean_interval(scores[name])[0]
        row[f"model-{name}"] = mean_interval([m - b for m, b in zip(scores["model"], scores[name])])
    best = max(baselines, key=lambda name: row[name])
    row["best"], row["model-best"] = best, row[f"model-{best}"]
    return row


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (tuple, list)):
        return f"{value[0]:+.3f} [{value[1]:+.3f}, {value[2]:+.3f}]"
    return str(value)


def seed_table(rows: list[dict], against: list[dict]) -> tuple[list[str], dict]:
    """Markdown lines, one per seed and a last one of means with 95% t-intervals over the seeds:
    first method, second method, second - first, the best baseline, first - best baseline."""
    columns = {"first": [r["model"] for r in rows], "second": [a["model"] for a in against],
               "second-first": [a["model"] - r["model"] for r, a in zip(rows, against)],
               "best baseline": [r[r["best"]] for r in rows],
               "first-best": [r["model"] - r[r["best"]] for r in rows]}
    lines = ["| seed | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    lines += [f"| {i} | " + " | ".join(f"{v[i]:.3f}" for v in columns.values()) + " |"
              for i in range(len(rows))]
    means = {name: mean_interval(values) for name, values in columns.items()}
    lines.append("| mean [95% t] | " + " | ".join(
        _cell(m) if "-" in name else f"{m[0]:.3f} [{m[1]:.3f}, {m[2]:.3f}]" for name, m in means.items()) + " |")
    return lines, means


def margin_table(rows: dict[str, dict]) -> list[str]:
    """Markdown lines, one per run: the model's mean, each baseline's, and model - baseline per prompt
    (95% t over the prompts) against the best constant, retrieval and (FOLDOC) term + constant; the
    last line, with 2+ runs, the means over runs with 95% t-intervals over the runs."""
    first = next(iter(rows.values()))
    names = ["model", *[k for k in first if k not in ("model", "best", "copies") and not k.startswith("model-")]]
    margins = [f"model-{k}" for k in ("best_constant", "retrieval", "term+best_constant") if f"model-{k}" in first]
    lines = ["| run | " + " | ".join([*names, *margins]) + " |", "|" + "---|" * (1 + len(names) + len(margins))]
    lines += [f"| {run} | " + " | ".join([*(f"{row[k]:.3f}" for k in names), *(_cell(row[k]) for k in margins)])
              + " |" for run, row in rows.items()]
    if len(rows) > 1:
        over = lambda k, pick: mean_interval([pick(row[k]) for row in rows.values()])
        cells = [over(k, float) for k in names] + [over(k, lambda v: v[0]) for k in margins]
        lines.append(f"| mean [95% t over {len(rows)} runs] | "
                     + " | ".join(f"{m[0]:.3f} [{m[1]:.3f}, {m[2]:.3f}]" for m in cells[:len(names)])
                     + " | " + " | ".join(_cell(m) for m in cells[len(names):]) + " |")
    return lines


def task_only(recipe: str, overrides: list[str], seeds: list[int], prompts: int,
              constant_search: tuple[int, int] = CONSTANT_SEARCH) -> dict:
    """Each seed's baselines (mean score on its first `prompts` held-out prompts) and copy stats, and
    their means over the seeds with 95% t-intervals; printed as it goes."""
    from protege.core.registry import resolve
    per_seed = []
    for seed in seeds:
        _, cfg, _ = resolve(recipe, [*overrides, f"seed={seed}"])
        data = load_task(cfg.task, seed)
        examples = data.eval[:prompts]
        row = {name: mean_interval([task_score(cfg.task.kind, e, c) for e, c in zip(examples, outs)])[0]
               for name, outs in baseline_completions(cfg.task.kind, data.train, examples, seed,
                                                      constant_search).items()}
        if cfg.task.kind == "foldoc":
            row.update(copy_stats(examples))
        per_seed.append(row)
        print(f"seed {seed} ({prompts} prompts): " + "; ".join(f"{k} {_cell(v)}" for k, v in row.items()))
    means = {k: mean_interval([r[k] for r in per_seed]) for k in per_seed[0]} if len(seeds) > 1 else {}
    for k, m in means.items():
        print(f"mean over seeds {k}: {m[0]:.3f} [{m[1]:.3f}, {m[2]:.3f}]")
    return {"seeds": per_seed, "mean": means}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--recipe", help="no RUN: the baselines of this recipe's task, per seed")
    parser.add_argument("--set", nargs="*", default=[], help="--recipe overrides, key=value")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2], help="--recipe seeds")
    parser.add_argument("--prompts", type=int, default=100, help="held-out prompts (the first N)")
    parser.add_argument("--against", nargs="*", type=Path, default=[],
                        help="a second method's runs, one per RUN (same seeds, same order)")
    parser.add_argument("--no-repeat-ngram", type=int, default=0,
                        help="decoding never repeats an n-gram of this length in a completion (0: off)")
    parser.add_argument("--mbr", type=int, default=0,
                        help="score the MBR choice among the greedy completion and N samples (0: greedy)")
    parser.add_argument("--mbr-temperature", type=float, default=0.7, help="the MBR samples' temperature")
    parser.add_argument("--constant-search", type=int, nargs=2, default=list(CONSTANT_SEARCH),
                        metavar=("CANDIDATES", "SAMPLE"),
                        help="the constant baselines: candidates scored on SAMPLE training examples")
    parser.add_argument("--show", type=int, default=0, help="print the first N greedy completions")
    parser.add_argument("--device", default="cpu", help="where the models decode: cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences decoded per forward pass")
    args = parser.parse_args()
    if args.recipe:
        print(json.dumps(task_only(args.recipe, args.set, args.seeds, args.prompts, tuple(args.constant_search))))
        return
    if not args.runs:
        parser.error("give RUN ... or --recipe NAME")
    if args.against and len(args.against) != len(args.runs):
        parser.error(f"--against needs one run per RUN ({len(args.runs)}), got {len(args.against)}")
    results, rows = {}, {}
    for run_dir in [*args.runs, *args.against]:
        decoding = {"no_repeat_ngram": args.no_repeat_ngram, "mbr_samples": args.mbr,
                    "mbr_temperature": args.mbr_temperature, "batch_size": args.batch_size}
        scores, greedy = per_prompt_scores(run_dir, args.prompts, decoding, tuple(args.constant_search),
                                           args.device)
        rows[run_dir] = row = margin_row(scores)
        for prompt, completion, reference in greedy[:args.show]:
            print(f"  {prompt!r} -> {completion!r} (reference {reference!r})")
        if greedy and greedy[0][0].startswith("Define: "):
            row["copies"] = model_copies(greedy)
        results[str(run_dir)] = row
        print(f"{run_dir} ({args.prompts} prompts): "
              + "; ".join(f"{k} {_cell(v)}" for k, v in row.items()))
    print("\n".join(margin_table({str(r): rows[r] for r in args.runs})))
    if args.against:
        print("\n".join(margin_table({str(r): rows[r] for r in args.against})))
        lines, means = seed_table([rows[r] for r in args.runs], [rows[r] for r in args.against])
        print(f"first: {', '.join(map(str, args.runs))}; second: {', '.join(map(str, args.against))}")
        print("\n".join(lines))
        results["seeds"] = means
    print(json.dumps(results))


if __name__ == "__main__":
    main()
