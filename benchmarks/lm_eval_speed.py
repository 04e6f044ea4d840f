"""`protege eval lm` before and after batched KV-cached decoding, on the same trained runs and settings.

    PYTHONPATH=src .venv/bin/python benchmarks/lm_eval_speed.py RUN [RUN ...] \
        [--prompts 200 --samples 8 --sample-prompts 25 --rounds 2]

For each finished `lm` run, the model-dependent part of `eval lm` (`evaluate_lm`: greedy decoding of
`--prompts` held-out prompts, `--samples` samples for each of the first `--sample-prompts`, and the
scoring pass over the samples) is timed with the earlier decoding path ("transformers": transformers'
`generate` on batches of prompts of one token length) and the new one ("batched":
`protege.nn.decode`), taking turns for `--rounds` rounds, each seeded alike. The parts of `eval lm` that
do not depend on the decoding path are timed once (loading the model and the task; the imports, in a
child process) and the trivial baselines are timed scored as before and as now (each text tokenised
once for ROUGE), so the speed-up of the whole command can be read too. After the timed rounds the greedy
completions of both paths are compared text for text (they should be identical), and each path's
metrics are printed (the sampled ones differ by sampling noise only: the paths draw in another order).

Wall-clock and process CPU time are both reported: on a shared machine the CPU time is the steadier.
The last line printed is one JSON object, with where it ran (`protege.core.precision.machine_info`).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from protege.core.precision import machine_info

IMPLS = ("transformers", "batched")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="finished `lm` run directories")
    p.add_argument("--prompts", type=int, default=200, help="greedy prompts (eval lm --prompts)")
    p.add_argument("--samples", type=int, default=8, help="samples per prompt (eval lm --samples)")
    p.add_argument("--sample-prompts", type=int, default=25, help="sampled prompts (eval lm --sample-prompts)")
    p.add_argument("--max-new-tokens", type=int, help="default: the run's eval.max_new_tokens")
    p.add_argument("--rounds", type=int, default=2, help="timed evaluations per path, interleaved")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def load(run_dir: Path, args):
    """What `eval lm` does besides `evaluate_lm`, timed: loading the model and the task, and the
    trivial baselines, scored as before (`text_metrics.rouge` per call) and as now (`task_score`)."""
    from protege.eval.text_metrics import rouge
    from protege.systems.lm_irl.baselines import trivial_baselines
    from protege.systems.lm_irl.evaluate import (
        baselines,
        eval_config,
        load_trained,
        rouge_l_scorer,
    )
    from protege.worlds.text.tasks import TaskConfig, load_task

    def prepare():
        model, tokenizer, config = load_trained(run_dir)
        fields = {k: v for k, v in config["task"].items() if k in TaskConfig.__dataclass_fields__}
        return model, tokenizer, config, load_task(TaskConfig(**fields), config["seed"])
    (model, tokenizer, config, task), wall, cpu = timed(prepare)
    kind, seed, held_out = config["task"]["kind"], config["seed"], task.eval[:args.prompts]
    fixed = {"load_wall_s": wall, "load_cpu_s": cpu}
    if kind == "arithmetic":  # scored by exact answer: the same code before and after
        before = lambda: baselines(kind, task.train, held_out, seed)
    else:
        before = lambda: trivial_baselines(lambda e, c: rouge(c, e.completion)["rougeL"],
                                           task.train, held_out, seed)
    before()  # untimed: the first call imports scikit-learn and rouge-score, for either path
    rouge_l_scorer.cache_clear()  # the new path starts with no cached tokens
    for impl, run in (("transformers", before), ("batched", lambda: baselines(kind, task.train, held_out, seed))):
        scores, fixed[f"{impl}_baselines_wall_s"], fixed[f"{impl}_baselines_cpu_s"] = timed(run)
        fixed[f"{impl}_baselines"] = {k.split("/")[1]: round(v, 4) for k, v in scores.items()}
    cfg = eval_config(prompts=args.prompts, samples=args.samples, sample_prompts=args.sample_prompts,
                      max_new_tokens=args.max_new_tokens or config["eval"]["max_new_tokens"])
    return model, tokenizer, config, task, cfg, fixed


def import_cpu_s() -> float:
    """CPU seconds a fresh process spends importing what `eval lm` imports (the same for both paths)."""
    import resource
    import subprocess
    import sys
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    imports = ("import protege.cli.main, torch, transformers, sklearn, scipy.stats, rouge_score.rouge_scorer, "
               "sacrebleu; from transformers import GPT2LMHeadModel, LlamaForCausalLM")
    subprocess.run([sys.executable, "-c", imports], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def measure(run_dir: Path, args) -> dict:
    from protege.systems.lm_irl.evaluate import evaluate_lm, generate
    model, tokenizer, config, task, cfg, fixed = load(run_dir, args)
    kind, examples = config["task"]["kind"], task.eval

    def evaluate(impl):
        torch.manual_seed(args.seed)
        return evaluate_lm(model, tokenizer, kind, examples, cfg, config["model"]["context"],
                           config["objective"]["gamma"], impl=impl)
    evaluate("batched")  # warm-up: first-call costs (lazy imports, allocator) fall on neither path
    times = {impl: {"wall": [], "cpu": []} for impl in IMPLS}
    metrics = {}
    for r in range(args.rounds):
        for impl in IMPLS:
            metrics[impl], wall, cpu = timed(lambda impl=impl: evaluate(impl))
            times[impl]["wall"].append(wall)
            times[impl]["cpu"].append(cpu)
            print(f"{run_dir.name} round {r + 1} {impl}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    prompts = [e.prompt for e in examples[:cfg.prompts]]
    greedy = {impl: generate(model, tokenizer, prompts, cfg, impl=impl) for impl in IMPLS}
    same = sum(a == b for a, b in zip(greedy["transformers"], greedy["batched"]))
    row = {"run": str(run_dir), "task": kind, "model": _model_line(model, config),
           "max_new_tokens": cfg.max_new_tokens, "batch_size": cfg.batch_size,
           "greedy_identical": f"{same}/{len(prompts)}", "import_cpu_s": round(import_cpu_s(), 2),
           **{k: round(v, 2) if isinstance(v, float) else v for k, v in fixed.items()}}
    for impl in IMPLS:
        row[f"{impl}_wall_s"] = round(statistics.median(times[impl]["wall"]), 2)
        row[f"{impl}_cpu_s"] = round(statistics.median(times[impl]["cpu"]), 2)
        row[f"{impl}_rounds_cpu_s"] = [round(t, 2) for t in times[impl]["cpu"]]
        row[f"{impl}_metrics"] = {k.split("/")[1]: round(v, 4) for k, v in metrics[impl].items()}
    for clock in ("wall", "cpu"):
        old, new = row[f"transformers_{clock}_s"], row[f"batched_{clock}_s"]
        row[f"speedup_evaluate_{clock}"] = round(old / new, 2)
    # the whole command: imports (CPU only: wall time of a child is not this process's), load,
    # baselines, evaluate_lm
    totals = {impl: row["import_cpu_s"] + row["load_cpu_s"] + row[f"{impl}_baselines_cpu_s"] + row[f"{impl}_cpu_s"]
              for impl in IMPLS}
    row.update({f"{impl}_eval_lm_cpu_s": round(t, 2) for impl, t in totals.items()})
    row["speedup_eval_lm_cpu"] = round(totals["transformers"] / totals["batched"], 2)
    return row


def _model_line(model, config) -> str:
    from protege.nn.lm import parameter_count
    m = config["model"]
    return f"{model.config.model_type} {m.get('n_layer')}x{m.get('n_embd')}, {parameter_count(model) / 1e6:.2f}M params"


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    start = machine_info("fp32")
    rows = [measure(run_dir, args) for run_dir in args.runs]
    for row in rows:
        print(f"{row['task']}: evaluate_lm {row['transformers_cpu_s']} -> {row['batched_cpu_s']} s CPU "
              f"({row['speedup_evaluate_cpu']}x; wall {row['speedup_evaluate_wall']}x); whole eval lm "
              f"{row['transformers_eval_lm_cpu_s']} -> {row['batched_eval_lm_cpu_s']} s CPU "
              f"({row['speedup_eval_lm_cpu']}x); greedy identical {row['greedy_identical']}")
    print(json.dumps({"benchmark": "lm_eval_speed", "settings": {k: v for k, v in vars(args).items() if k != "runs"},
                      "rows": rows, "machine": start, "load_avg_1m_end": machine_info("fp32")["load_avg_1m"]}))


if __name__ == "__main__":
    main()
