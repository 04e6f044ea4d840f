"""`protege eval lm` before and after the speed work (issue 16 item 5), on the same trained runs and settings.

    PYTHONPATH=src .venv/bin/python benchmarks/lm_eval_speed.py RUN [RUN ...] \
        [--prompts 200 --samples 8 --sample-prompts 25 --rounds 3 --old-commit e16fab8]

The whole command, as a user runs it: for each finished `lm` run, `protege eval lm RUN` is started
as a fresh process `--rounds` times with the earlier code (a temporary `git worktree` of
`--old-commit`, the last commit before the speed work, removed afterwards) and with this checkout,
taking turns, each on its own copy of the run (so each writes its own results file). Process CPU
time (user + system, from the child's rusage) and wall-clock time are recorded; on a shared machine
the CPU time is the steadier. The two results files are compared: greedy score and baselines must
be equal, the sampled metrics differ by sampling noise only (the paths draw in another order).

Then a breakdown in this process: loading (the transformers model as before, the plain GPT-2 as
now), `evaluate_lm` by each path (earlier: `generate` on length buckets and a second forward pass
for rewards; now: batched KV-cached decoding, the sampling pass's logits reused), and the greedy
completions of both paths compared text for text. The last line printed is one JSON object, with
where it ran (`protege.core.precision.machine_info`).

Each round also times a "floor" process: the CLI started, the libraries the new command imports, the
run's tokenizer loaded, nothing evaluated. No change to decoding or scoring can make the command
cheaper than that, so earlier / floor is the most any such change could give. The floor fell when
the command stopped importing transformers, scikit-learn, scipy and all of nltk (see
docs/results/lm_eval_speed.md).
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from protege.core.precision import machine_info

REPO = Path(__file__).resolve().parents[1]
OLD_COMMIT = "e16fab8"
"""the commit before batched decoding (e943525) and everything after it for eval lm's speed"""
IMPLS = ("transformers", "batched")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="finished `lm` run directories")
    p.add_argument("--prompts", type=int, default=200, help="greedy prompts (eval lm --prompts)")
    p.add_argument("--samples", type=int, default=8, help="samples per prompt (eval lm --samples)")
    p.add_argument("--sample-prompts", type=int, default=25, help="sampled prompts (eval lm --sample-prompts)")
    p.add_argument("--max-new-tokens", type=int, help="set the run copies' eval.max_new_tokens (default: the run's)")
    p.add_argument("--rounds", type=int, default=3, help="timed commands per version, interleaved")
    p.add_argument("--old-commit", default=OLD_COMMIT, help="the earlier code to compare against")
    p.add_argument("--also", action="append", default=[], metavar="COMMIT_OR_SRC",
                   help="also time the command at this commit, or from this src folder (e.g. a worktree with a patch "
                        "applied) (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run_copy(run_dir: Path, into: Path, max_new_tokens: int | None) -> Path:
    """A copy of the run without checkpoints, logs or earlier evaluations (eval lm reads config.yaml,
    model/ and tokenizer/), with eval.max_new_tokens set when asked."""
    copy = into / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints", "tb", "eval"))
    if max_new_tokens:
        config = yaml.safe_load((copy / "config.yaml").read_text())
        config["eval"]["max_new_tokens"] = max_new_tokens
        (copy / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return copy


def eval_lm_command(src: Path, run_dir: Path, args) -> tuple[dict, float, float]:
    """(results, wall s, CPU s) of `protege eval lm` in a fresh process importing protege from `src`."""
    cmd = [sys.executable, "-c", "import sys; from protege.cli.main import main; main(sys.argv[1:])",
           "eval", "lm", str(run_dir), "--prompts", str(args.prompts), "--samples", str(args.samples),
           "--sample-prompts", str(args.sample_prompts), "--seed", str(args.seed)]
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    (path,) = (run_dir / "eval").iterdir()
    return json.loads(path.read_text())["results"], wall, cpu


def floor_command(run_dir: Path, kind: str) -> tuple[float, float]:
    """(wall s, CPU s) of a fresh process that only starts the CLI, imports the libraries the new
    `eval lm` imports (torch, tokenizers, safetensors, sacrebleu, and for text tasks rouge-score's
    stemming tokenizer as ROUGE-L loads it) and loads the run's tokenizer: what no change to
    decoding or scoring can remove."""
    code = ("from protege.cli.main import load_commands; load_commands(); import torch, safetensors.torch, sacrebleu; "
            f"from protege.nn.tokenizer import load_inference_tokenizer; load_inference_tokenizer({str(run_dir / 'tokenizer')!r})"
            + ("; from protege.eval.text_metrics import rouge_l; rouge_l('a b', 'a')" if kind != "arithmetic" else ""))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def measure_command(run_dir: Path, args, old_src: Path, tmp: Path, kind: str, also: dict) -> dict:
    srcs = {"earlier": old_src, **{f"at_{commit}": src for commit, src in also.items()}, "new": REPO / "src"}
    copies = {v: run_copy(run_dir, tmp / v, args.max_new_tokens) for v in srcs}
    times = {v: {"wall": [], "cpu": []} for v in (*srcs, "floor")}
    results = {}
    for r in range(args.rounds):
        for version, src in srcs.items():
            shutil.rmtree(copies[version] / "eval", ignore_errors=True)
            results[version], wall, cpu = eval_lm_command(src, copies[version], args)
            times[version]["wall"].append(wall)
            times[version]["cpu"].append(cpu)
            print(f"{run_dir.name} round {r + 1} eval lm {version}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
        wall, cpu = floor_command(run_dir, kind)
        times["floor"]["wall"].append(wall)
        times["floor"]["cpu"].append(cpu)
    row = {"command_floor_cpu_s": round(statistics.median(times["floor"]["cpu"]), 2),
           "command_floor_wall_s": round(statistics.median(times["floor"]["wall"]), 2),
           "command_floor_rounds_cpu_s": [round(t, 2) for t in times["floor"]["cpu"]]}
    for version in srcs:
        row[f"command_{version}_cpu_s"] = round(statistics.median(times[version]["cpu"]), 2)
        row[f"command_{version}_wall_s"] = round(statistics.median(times[version]["wall"]), 2)
        row[f"command_{version}_rounds_cpu_s"] = [round(t, 2) for t in times[version]["cpu"]]
        row[f"command_{version}_results"] = {k: round(v, 4) for k, v in results[version].items()}
    for clock in ("cpu", "wall"):
        row[f"speedup_command_{clock}"] = round(row[f"command_earlier_{clock}_s"] / row[f"command_new_{clock}_s"], 2)
    for version in srcs:
        if version.startswith("at_"):
            row[f"speedup_command_cpu_{version}"] = round(row["command_earlier_cpu_s"] / row[f"command_{version}_cpu_s"], 2)
    deterministic = [k for k in results["new"] if k == "eval/greedy_score" or k.startswith("baseline/")]
    row["speedup_command_cpu_at_most"] = round(row["command_earlier_cpu_s"] / row["command_floor_cpu_s"], 2)
    # a metric only one side reports (a baseline added since) is not compared
    row["command_deterministic_equal"] = all(abs(results["new"][k] - results["earlier"][k]) < 1e-9
                                             for k in deterministic if k in results["earlier"])
    # against the other versions of this work: every metric, the sampled ones too (same draws)
    row["command_all_metrics_equal_to"] = {v: all(abs(results["new"][k] - results[v][k]) <= 1e-6 * max(1, abs(results[v][k]))
                                                  for k in results["new"] if k in results[v]) for v in srcs if v.startswith("at_")}
    return row


def measure_in_process(run_dir: Path, args) -> dict:
    """Loading and `evaluate_lm` by the earlier and the new path, in this process."""
    from protege.systems.lm_irl.evaluate import eval_config, evaluate_lm, generate, load_trained
    from protege.worlds.text.tasks import TaskConfig, load_task
    models = {}
    (models["transformers"], tokenizer, config), wall, cpu = timed(lambda: load_trained(run_dir))
    (models["batched"], _, _), _, plain_cpu = timed(lambda: load_trained(run_dir, inference_only=True))
    fields = {k: v for k, v in config["task"].items() if k in TaskConfig.__dataclass_fields__}
    task = load_task(TaskConfig(**fields), config["seed"])
    kind, examples = config["task"]["kind"], task.eval
    cfg = eval_config(prompts=args.prompts, samples=args.samples, sample_prompts=args.sample_prompts,
                      max_new_tokens=args.max_new_tokens or config["eval"]["max_new_tokens"])

    def evaluate(impl):
        torch.manual_seed(args.seed)
        return evaluate_lm(models[impl], tokenizer, kind, examples, cfg, config["model"]["context"],
                           config["objective"]["gamma"], impl=impl)
    for impl in IMPLS:  # warm-up: first-call costs (lazy imports, allocator) fall on neither round
        evaluate(impl)
    times = {impl: [] for impl in IMPLS}
    metrics = {}
    for _ in range(args.rounds):
        for impl in IMPLS:
            metrics[impl], _, t = timed(lambda impl=impl: evaluate(impl))
            times[impl].append(t)
    prompts = [e.prompt for e in examples[:cfg.prompts]]
    greedy = {impl: generate(models[impl], tokenizer, prompts, cfg, impl=impl) for impl in IMPLS}
    same = sum(a == b for a, b in zip(greedy["transformers"], greedy["batched"]))
    row = {"run": str(run_dir), "task": kind, "model": _model_line(models["transformers"], config),
           "max_new_tokens": cfg.max_new_tokens, "greedy_identical": f"{same}/{len(prompts)}",
           "load_transformers_cpu_s (in-process, imports included)": round(cpu, 2),
           "load_plain_cpu_s (after)": round(plain_cpu, 2)}
    for impl in IMPLS:
        row[f"evaluate_{impl}_cpu_s"] = round(statistics.median(times[impl]), 2)
        row[f"evaluate_{impl}_metrics"] = {k.split("/")[1]: round(v, 4) for k, v in metrics[impl].items()}
    row["speedup_evaluate_cpu"] = round(row["evaluate_transformers_cpu_s"] / row["evaluate_batched_cpu_s"], 2)
    return row


def _model_line(model, config) -> str:
    from protege.nn.lm import parameter_count
    m = config["model"]
    return f"{model.config.model_type} {m.get('n_layer')}x{m.get('n_embd')}, {parameter_count(model) / 1e6:.2f}M params"


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    start = machine_info("fp32")
    rows = []
    with tempfile.TemporaryDirectory(prefix="lm_eval_speed_") as tmp:
        tmp = Path(tmp)
        folders = {name: Path(name) for name in args.also if Path(name).is_dir()}
        trees = {commit: tmp / f"tree_{commit}" for commit in (args.old_commit, *args.also) if commit not in folders}
        try:
            for commit, tree in trees.items():
                subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit],
                               check=True, capture_output=True)
            also = {name: folders[name] if name in folders else trees[name] / "src" for name in args.also}
            also = {(Path(name).parent.name if name in folders else name): src for name, src in also.items()}
            for run_dir in args.runs:
                row = measure_in_process(run_dir, args)
                rows.append({**row, **measure_command(run_dir, args, trees[args.old_commit] / "src", tmp,
                                                      row["task"], also)})
        finally:
            for tree in trees.values():
                if tree.exists():
                    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=True)
    for row in rows:
        print(f"{row['task']}: eval lm {row['command_earlier_cpu_s']} -> {row['command_new_cpu_s']} s CPU "
              f"({row['speedup_command_cpu']}x; wall {row['speedup_command_wall']}x; imports and tokenizer alone "
              f"{row['command_floor_cpu_s']} s, so at most {row['speedup_command_cpu_at_most']}x); evaluate_lm "
              f"{row['evaluate_transformers_cpu_s']} -> {row['evaluate_batched_cpu_s']} s CPU "
              f"({row['speedup_evaluate_cpu']}x); greedy identical {row['greedy_identical']}")
    print(json.dumps({"benchmark": "lm_eval_speed", "settings": {k: v for k, v in vars(args).items() if k != "runs"},
                      "rows": rows, "machine": start, "load_avg_1m_end": machine_info("fp32")["load_avg_1m"]}))


if __name__ == "__main__":
    main()
