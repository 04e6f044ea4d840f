"""`protege lm ...`: language-model tools beyond `protege run`."""

from pathlib import Path
from typing import Optional

import typer

from protege.core.cli import app, console, data_app, eval_app, heavy_imports, print_summary

lm_app = typer.Typer(help="Language-model tools: reward extraction, sampling, merging adapters.", no_args_is_help=True)
app.add_typer(lm_app, name="lm")


def checked_device(name: str):
    """The torch device of a --device option; one that cannot be used here is a one-line UserError,
    raised before any model loads."""
    from protege.core.devices import device_problem, resolve_device
    from protege.core.errors import UserError
    problem = device_problem(name)
    if problem:
        raise UserError(f"--device: {problem}")
    return resolve_device(name)


@lm_app.command("reward")
def reward(run_dir: Path = typer.Argument(..., help="a finished `lm` run directory"),
           data: Path = typer.Option(..., help="prompt/completion dataset to score (.jsonl/.parquet/HF folder)"),
           out: Optional[Path] = typer.Option(None, help="write per-completion rewards as JSONL here")):
    """Score completions with the reward extracted from a trained model: sum_t Q(s_t,a_t) - gamma V(s_t+1)."""
    import json

    import numpy as np

    from protege.core.atomic import write_text_atomic
    from protege.data.text import load_text_dataset
    from protege.systems.lm_irl.evaluate import reward_table
    if out:
        from protege.data.manifest import check_output_file
        check_output_file(out, [data])
    rows = reward_table(run_dir, load_text_dataset(data))
    if out:
        write_text_atomic(out, "".join(json.dumps(r) + "\n" for r in rows))
        console.print(f"wrote {len(rows)} scores to {out}")
    rewards = np.asarray([r["reward"] for r in rows])
    summary = {"completions": len(rows), "mean reward": float(rewards.mean()),
               "std reward": float(rewards.std())}
    if "correct" in rows[0]:
        from scipy.stats import spearmanr
        correct = np.asarray([r["correct"] for r in rows])
        summary["accuracy"] = float(correct.mean())
        summary["Spearman(reward, correct)"] = float(spearmanr(rewards, correct).statistic) \
            if np.ptp(correct) > 0 else float("nan")
    print_summary(f"extracted reward under {run_dir}", [summary])


@lm_app.command("sample")
def sample(run_dir: Path, prompt: str, n: int = 4, temperature: float = 1.0, top_p: float = 1.0,
           beams: int = typer.Option(1, help="> 1: beam search (deterministic)"),
           greedy: bool = typer.Option(False, "--greedy", help="greedy decoding: one deterministic completion"),
           no_repeat_ngram: int = typer.Option(0, help="> 0: no n-gram of this length twice in a completion"),
           mbr: int = typer.Option(0, help="> 0: print the minimum-Bayes-risk choice among the greedy "
                                           "completion and this many samples at --temperature"),
           seed: int = typer.Option(0, help="seeds the sampling"),
           device: str = typer.Option("cpu", help="where the model decodes: cpu, cuda, cuda:N or auto"),
):
    """Print n completions of a prompt from a trained model (sampled unless --greedy, --mbr or --beams > 1)."""
    from protege.systems.lm_irl.evaluate import eval_config, generate, load_trained
    if n < 1:
        from protege.core.errors import UserError
        raise UserError(f"--n must be >= 1, got {n}")
    cfg = eval_config(temperature=temperature, top_p=top_p, num_beams=beams,  # before the model loads
                      no_repeat_ngram=no_repeat_ngram, mbr_samples=mbr, mbr_temperature=temperature)
    where = checked_device(device)
    model, tokenizer, config = load_trained(run_dir, inference_only=beams == 1)  # beam search: generate's
    model = model.to(where)
    if mbr:
        from protege.systems.lm_irl.mbr import mbr_completions
        chosen = mbr_completions(model, tokenizer, config.get("task", {}).get("kind", "text"), [prompt], cfg,
                                 seed=seed)[0]
        print_summary(f"MBR choice of {run_dir} (greedy + {mbr} samples)", [{"#": 0, "completion": chosen}])
        return
    import torch
    torch.manual_seed(seed)
    sampled = beams == 1 and not greedy
    outs = generate(model, tokenizer, [prompt], cfg, n=n if sampled else 1, sample=sampled)[0]
    print_summary(f"samples from {run_dir}", [{"#": i, "completion": c} for i, c in enumerate(outs)])


@lm_app.command("merge")
def merge(run_dir: Path = typer.Argument(..., help="a finished `lm` run directory (LoRA or full)"),
          out: Path = typer.Option(..., help="folder to write the merged Hugging Face model to")):
    """Write a run's model as one plain HF model folder (an adapter folded into its base weights)."""
    from protege.data.manifest import check_output_folder, output_folder, write_manifest
    from protege.nn.lm import merged
    from protege.systems.lm_irl.evaluate import load_trained
    kind = "lm-merged"
    check_output_folder(out, kind, [run_dir])  # before loading: a refusal costs nothing
    model, tokenizer, _ = load_trained(run_dir)
    model = merged(model)
    with output_folder(out, kind, [run_dir]) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        write_manifest(tmp, {"kind": kind, "run": str(Path(run_dir).resolve())})
    console.print(f"merged model of {run_dir}: {out}")


@eval_app.command("lm")
def eval_lm(run_dir: Path = typer.Argument(..., help="a finished `lm` run directory"),
            prompts: int = 200, samples: int = 8, sample_prompts: int = 50, temperature: float = 1.0,
            top_p: float = 1.0, beams: int = 1, seed: int = 0,
            no_repeat_ngram: int = typer.Option(0, help="> 0: no n-gram of this length twice in a completion"),
            mbr: int = typer.Option(0, help="> 0: also score the minimum-Bayes-risk choice among the greedy "
                                            "completion and this many samples (eval/mbr_score)"),
            mbr_temperature: float = typer.Option(0.7, help="the MBR samples' temperature"),
            device: str = typer.Option("cpu", help="where the model decodes: cpu, cuda, cuda:N or auto"),
):
    """Re-evaluate a trained language model on its task's held-out prompts (other sampling settings)."""
    with heavy_imports():
        import torch

        from protege.systems.lm_irl.evaluate import baselines, eval_config, evaluate_lm, load_trained
        from protege.worlds.text.tasks import TaskConfig, load_task
    decoding = {"no_repeat_ngram": no_repeat_ngram, "mbr_samples": mbr, "mbr_temperature": mbr_temperature}
    eval_config(prompts=prompts, samples=samples, sample_prompts=sample_prompts,  # fail before loading
                temperature=temperature, top_p=top_p, num_beams=beams, **decoding)
    where = checked_device(device)
    model, tokenizer, config = load_trained(run_dir, inference_only=beams == 1)  # beam search: generate's
    model = model.to(where)
    task_fields = {k: v for k, v in config["task"].items() if k in TaskConfig.__dataclass_fields__}
    task = load_task(TaskConfig(**task_fields), config["seed"])
    cfg = eval_config(prompts=prompts, samples=samples, sample_prompts=sample_prompts,
                      temperature=temperature, top_p=top_p, num_beams=beams,
                      max_new_tokens=config["eval"]["max_new_tokens"], **decoding)
    torch.manual_seed(seed)
    metrics = evaluate_lm(model, tokenizer, config["task"]["kind"], task.eval, cfg,
                          config["model"]["context"], config["objective"]["gamma"])
    # trivial baselines on the same held-out prompts, under the same metric, beside the model's score
    metrics.update(baselines(config["task"]["kind"], task.train, task.eval[:prompts], config["seed"]))
    print_summary(f"evaluation of {run_dir}", [{"key": k, "value": v} for k, v in metrics.items()])
    # kept beside the run, with the settings used
    from protege.core.runs import save_eval
    settings = {"prompts": prompts, "samples": samples, "sample_prompts": sample_prompts,
                "temperature": temperature, "top_p": top_p, "beams": beams, "seed": seed,
                "max_new_tokens": config["eval"]["max_new_tokens"]}
    name = f"lm-{prompts}p-{samples}x{sample_prompts}-T{temperature:g}-top_p{top_p:g}-beams{beams}-seed{seed}"
    if no_repeat_ngram or mbr:  # names of evaluations without these settings stay as they were
        settings.update(decoding)
        name += f"-norepeat{no_repeat_ngram}-mbr{mbr}T{mbr_temperature:g}"
    console.print(f"results: {save_eval(run_dir, name, settings, metrics)}")


@app.command()
def demo(out: Path = typer.Option(Path("runs/demo"), help="where the demo's runs and report go"),
         quick: bool = typer.Option(False, help="a much shorter run, for smoke tests")):
    """The main job: MLE against offline IQLearn on 400 arithmetic word problems (where MLE over-fits), 5 paired seeds: held-out NLL, accuracy and entropy along the held-out answers, with a report."""
    from protege.systems.lm_irl.demo import run_demo
    rows, report = run_demo(out, quick=quick)
    print_summary("demo: MLE vs IQLearn, 400 arithmetic examples, 5 paired seeds: held-out NLL, accuracy, entropy", rows)
    console.print(f"report: {report}")


@data_app.command("arithmetic")
def data_arithmetic(out: Path, n: int = 1000, seed: int = 0):
    """Write built-in arithmetic word problems as a JSONL dataset folder (with checksum manifest)."""
    from protege.data.text import save_text_dataset
    from protege.worlds.text.arithmetic import generate
    save_text_dataset(generate(n, seed), out)
    print_summary(f"{out}", [{"examples": n, "seed": seed}])


@lm_app.command("rerank")
def rerank(policy_run: Path = typer.Argument(..., help="a finished `lm` run on the arithmetic task: whose samples to rerank"),
           reward: list[str] = typer.Option([], help="NAME=RUN: a `prm` run, or an `lm` run for its extracted reward (repeatable)"),
           prompts: int = typer.Option(200, help="held-out prompts of the policy's task"),
           samples: int = typer.Option(16, help="samples per prompt (every N must divide it)"),
           n: list[int] = typer.Option([1, 4, 16], help="best-of-N sizes (repeatable)"),
           seed: int = typer.Option(0, help="seeds the sampling"),
           out: Optional[Path] = typer.Option(None, help="write the summary (JSON) and the scored samples (JSONL beside it) here")):
    """Best-of-N accuracy of a policy's samples reranked by each reward, beside greedy, majority vote and pass@N."""
    import json

    from protege.core.errors import UserError
    from protege.core.atomic import write_json_atomic, write_text_atomic
    from protege.systems.lm_irl.best_of_n import rerank as rerank_samples
    if prompts < 1 or samples < 1:
        raise UserError(f"--prompts and --samples must be >= 1, got {prompts} and {samples}")
    named = {}
    for spec in reward:
        name, sep, run_dir = spec.partition("=")
        if not sep or not name or not run_dir:
            raise UserError(f"--reward {spec!r}: expected NAME=RUN_DIR (e.g. prm=runs/prm-arithmetic)")
        named[name] = Path(run_dir)
    if out:
        from protege.data.manifest import check_output_file
        check_output_file(out, [policy_run, *named.values()])
    summary, rows = rerank_samples(policy_run, named, prompts, samples, sorted(set(n)), seed)
    if out:
        write_json_atomic(out, {"policy": str(policy_run), "rewards": {k: str(v) for k, v in named.items()},
                                **summary})
        write_text_atomic(out.with_suffix(".samples.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
        console.print(f"wrote {out} and {out.with_suffix('.samples.jsonl')}")
    print_summary(f"best-of-N on {policy_run}", [{"key": k, "value": v} for k, v in summary.items()])


@data_app.command("arithmetic-marks")
def data_arithmetic_marks(out: Path = typer.Argument(..., help="the marks file to write (.jsonl)"),
                          prompts: int = 1000, solutions: int = 4, error_prob: float = 0.5,
                          miss: float = 0.0, flip: float = 0.0, seed: int = 0):
    """Arithmetic solutions (some with errors) whose steps a simulated annotator marked progress/regress."""
    from protege.core.errors import UserError
    from protege.worlds.text.step_marks import simulated_marks, write_marks
    if prompts < 1 or solutions < 1 or not all(0 <= p <= 1 for p in (error_prob, miss, flip)):
        raise UserError("--prompts and --solutions must be >= 1; --error-prob, --miss, --flip in [0, 1]")
    from protege.data.manifest import check_output_file
    check_output_file(out, flag="OUT")
    marked = simulated_marks(prompts, solutions, seed, error_prob, miss, flip)
    write_marks(marked, out)
    print_summary(f"{out}", [{"solutions": len(marked), "marks": sum(len(s.marks) for s in marked),
                              "regress": sum(m.kind == "regress" for s in marked for m in s.marks)}])
