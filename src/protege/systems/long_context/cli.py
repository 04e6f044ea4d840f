"""`protege longctx` (recall over a length x depth grid) and `protege serve` (a model over HTTP)."""

from pathlib import Path

import typer

from protege.core.cli import app, console, data_app, print_summary
from protege.core.errors import UserError


def _numbers(text: str, kind, option: str) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option} {text!r}: expected comma-separated {kind.__name__} values") from None
    if not values:
        raise UserError(f"{option}: give at least one value")
    return values


@app.command("longctx")
def longctx(
        model: str = typer.Argument(..., help="a finished lm run, a local Hugging Face causal-LM folder, "
                                              "or the http(s)://HOST:PORT/v1 of an OpenAI-compatible server"),
        out: Path = typer.Option(..., help="folder for the per-task JSONL, summary and heatmaps"),
        tasks: str = typer.Option("needle_single", help="comma-separated: needle_single, needle_multi, "
                                  "niah_single_1..3, niah_multikey_1..3, niah_multivalue, niah_multiquery, "
                                  "ruler_vt, ruler_cwe, ruler_fwe; or 'all'"),
        lengths: str = typer.Option("256,512", help="comma-separated prompt lengths in tokens"),
        depths: str = typer.Option("0,0.25,0.5,0.75,1", help="comma-separated needle depths in [0, 1]"),
        samples: int = typer.Option(4, help="samples per (task, length, depth) cell"),
        seed: int = 0,
        haystack: str = typer.Option("foldoc", help="foldoc, jargon, licenses, or a text file/folder"),
        needles: int = typer.Option(3, help="needles of needle_multi"),
        max_new_tokens: int = typer.Option(0, help="tokens per answer; 0 = RULER's for the task"),
        batch_size: int = typer.Option(8, help="prompts per model call"),
        tokenizer: Path | None = typer.Option(None, help="http models: the served model's tokenizer folder"),
        model_name: str | None = typer.Option(None, help="http models: the model id (default: the first listed)"),
        context: int = typer.Option(0, help="the model's context in tokens (http models that do not report "
                                            "it); for a local model, a lower limit to enforce"),
        timeout: float = typer.Option(300.0, help="http models: seconds to wait for an answer"),
        prompt_suffix: str | None = typer.Option(None, help="text ending every prompt, as the model was "
                                                    "trained (escapes such as \\n allowed); default: an lm "
                                                    "run's newline, nothing for other models")):
    """Needle-in-a-haystack and RULER-style recall of a model, scored as RULER scores (no judge)."""
    from protege.core.progress import progress_bar
    from protege.core.seeds import seed_everything
    from protege.data.manifest import check_output_folder, output_folder, write_manifest
    from protege.systems.long_context.evaluate import (
        OUTPUT_KIND,
        GridConfig,
        check_grid,
        evaluate,
        total_samples,
        write_results,
    )
    from protege.systems.long_context.models import load_model
    from protege.worlds.text.recall_tasks import TASKS
    names = list(TASKS) if tasks == "all" else _numbers(tasks, str, "--tasks")
    try:
        cfg = GridConfig([n.strip() for n in names], _numbers(lengths, int, "--lengths"),
                         _numbers(depths, float, "--depths"), samples, seed, haystack, needles,
                         max_new_tokens, batch_size)
    except ValueError as e:
        raise UserError(f"longctx: {e}") from None
    local = [Path(model)] if not model.startswith(("http://", "https://")) else []
    check_output_folder(out, OUTPUT_KIND, local)  # before loading anything: a refusal costs nothing
    seed_everything(seed)
    lm = load_model(model, tokenizer, model_name, context or None, timeout)
    if prompt_suffix is not None:
        lm.prompt_suffix = prompt_suffix.encode("utf-8").decode("unicode_escape")
    check_grid(lm, cfg)
    with progress_bar() as bar:
        job = bar.add_task(f"longctx {lm.name}", total=total_samples(cfg))
        rows = evaluate(lm, cfg, progress=lambda n: bar.advance(job, n))
    with output_folder(out, OUTPUT_KIND, local) as tmp:
        summary = write_results(tmp, rows, cfg, lm.name)
        write_manifest(tmp, {"kind": OUTPUT_KIND, "model": model})
    print_summary(f"recall of {lm.name} (RULER score, %)", summary["by_length"])
    console.print(f"results: {out}")


@app.command("serve")
def serve(run: str = typer.Argument(..., help="a finished lm run or a local Hugging Face causal-LM folder"),
          host: str = typer.Option("127.0.0.1", help="loopback address to listen on"),
          port: int = typer.Option(8000, help="TCP port")):
    """Serve a trained model over the OpenAI-compatible /v1/completions API (loopback only)."""
    from protege.systems.long_context.serve import serve as run_server
    run_server(run, host, port)


@data_app.command("longctx")
def data_longctx(
        out: Path = typer.Argument(..., help="dataset folder (or .jsonl file) to write"),
        tokenizer: Path = typer.Option(..., help="tokenizer folder (or run) whose token counts cut the prompts"),
        tasks: str = typer.Option("needle_single", help="comma-separated task names, or 'all'"),
        lengths: str = typer.Option("256", help="comma-separated prompt lengths in tokens"),
        depths: str = typer.Option("0,0.25,0.5,0.75,1", help="comma-separated needle depths in [0, 1]"),
        samples: int = typer.Option(100, help="samples per (task, length, depth) cell"),
        seed: int = typer.Option(1000, help="stream seed (keep it apart from the evaluation's seeds)"),
        haystack: str = typer.Option("foldoc", help="foldoc, jargon, licenses, or a text file/folder"),
        needles: int = typer.Option(3, help="needles of needle_multi")):
    """Recall prompts with their answers as a prompt/completion dataset (to fine-tune on)."""
    from protege.data.text import TextExample, save_text_dataset
    from protege.nn.tokenizer import load_tokenizer
    from protege.systems.long_context.evaluate import GridConfig
    from protege.worlds.text.recall_tasks import TASKS, make_sample
    names = list(TASKS) if tasks == "all" else _numbers(tasks, str, "--tasks")
    try:
        cfg = GridConfig([n.strip() for n in names], _numbers(lengths, int, "--lengths"),
                         _numbers(depths, float, "--depths"), samples, seed, haystack, needles)
    except ValueError as e:
        raise UserError(f"data longctx: {e}") from None
    tok = load_tokenizer(tokenizer / "tokenizer" if (tokenizer / "tokenizer").is_dir() else tokenizer)
    examples = [TextExample(s.input, " " + ", ".join(s.outputs) + ".")
                for task in cfg.tasks for length, depth in cfg.cells(task) for i in range(samples)
                for s in [make_sample(tok, task, i, length, depth, seed, haystack, needles)]]
    save_text_dataset(examples, out)
    print_summary(f"{out}", [{"examples": len(examples), "tasks": ",".join(cfg.tasks), "seed": seed}])
