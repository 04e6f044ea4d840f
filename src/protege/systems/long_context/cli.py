"""`protege longctx` (recall over a length x depth grid) and `protege serve` (a model over HTTP)."""

from pathlib import Path

import typer

from protege.core.cli import app, console, print_summary
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
        timeout: float = typer.Option(300.0, help="http models: seconds to wait for an answer")):
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
