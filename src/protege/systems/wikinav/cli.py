"""`protege nav ...`: build hyperlink graphs, sample random walks, train and evaluate navigators."""

from pathlib import Path

import typer

from protege.core.cli import app, print_summary
from protege.worlds.graphs import DEAD_END_HELP, DEFAULT_DEAD_END

nav_app = typer.Typer(help="Hyperlink navigation by cloning random walks (arXiv:2211.00177).",
                      no_args_is_help=True)
app.add_typer(nav_app, name="nav")


@nav_app.command("build")
def build(source_type: str = typer.Argument(..., help="dictd | html | edgelist"),
          path: Path = typer.Argument(..., help="dictd .index (or stem), HTML folder, or edge list"),
          out: Path = typer.Option(..., "--out", help="graph folder to write"),
          texts: Path = typer.Option(None, help="edgelist only: JSONL of {id, title, text}"),
          drop_common_links: float = typer.Option(
              None, help="html only: drop links to pages that more than this fraction of all pages "
                         "link to (navigation chrome: home, index, footer pages), e.g. 0.5"),
          base_url: str = typer.Option(None, help="html only: the site's address; a page's URL is "
                                                  "BASE_URL + its path (default: its file:// URI)")):
    """Build a graph folder (CSR arrays + Parquet pages + manifest) from a source."""
    from protege.core.errors import UserError
    from protege.core.progress import progress_bar
    from protege.worlds.graphs.builders import build as build_graph
    html_only = {"--drop-common-links": drop_common_links, "--base-url": base_url}
    for flag, value in html_only.items():
        if value is not None and source_type != "html":
            raise UserError(f"{flag} is for html sources only; got source type {source_type!r}")
    options = {"texts": texts, "drop_common_links": drop_common_links, "base_url": base_url}
    # the builder refuses --texts for a source other than an edge list
    with progress_bar(True) as bar:
        task = bar.add_task(f"reading {source_type} pages", total=None)
        def on_pages(done: int, total: int | None = None):
            bar.update(task, advance=done, **({"total": total} if total is not None else {}))
        summary = build_graph(source_type, path, out, progress=on_pages, **options)
    print_summary(f"nav build -> {out}", [{"field": k, "value": v} for k, v in summary.items()])


@nav_app.command("walks")
def walks(graph: Path = typer.Argument(..., help="graph folder"),
          walks_per_page: int = typer.Option(10, help="walks started from every page"),
          length: int = typer.Option(20, help="steps per walk"),
          dead_end: str = typer.Option(DEFAULT_DEAD_END, help=DEAD_END_HELP),
          horizon: int = typer.Option(20, help="BC goals: at most this many steps ahead"),
          seed: int = typer.Option(0),
          out: Path = typer.Option(None, help="folder for nodes.npy, actions.npy and BC examples")):
    """Sample uniform random walks and turn them into BC examples; report throughput."""
    from protege.worlds.graphs.walks import walk_stats
    stats = walk_stats(graph, walks_per_page, length, dead_end, horizon, seed, out)
    print_summary(f"nav walks on {graph}", [{"field": k, "value": v} for k, v in stats.items()])


@nav_app.command("train")
def train(graph: Path = typer.Argument(..., help="graph folder"),
          out: Path = typer.Option(..., "--out", help="run folder"),
          encoder: str = typer.Option("minilm", help="minilm | tfidf"),
          steps: int = typer.Option(3000), batch_size: int = typer.Option(256),
          lr: float = typer.Option(2e-3), walks_per_page: int = typer.Option(20),
          walk_length: int = typer.Option(20),
          dead_end: str = typer.Option(DEFAULT_DEAD_END, help=DEAD_END_HELP),
          warmup_frac: float = typer.Option(
              0.05, help="fraction of --steps in linear learning-rate warm-up, in [0, 1) (until this "
                         "option, a fixed 100 steps: the published 8000-step runs used 0.0125)"),
          page_vectors: bool = typer.Option(True, help="learn a vector per page (transductive); "
                                            "--no-page-vectors: inductive, from page text alone"),
          teacher: str = typer.Option("walk", help="walk: imitate the random walk's link (the paper); "
                                      "shortest: a link on a shortest path to the goal"),
          random_goals: float = typer.Option(0.0, help="with --teacher shortest: fraction of examples "
                                             "given a uniformly drawn goal page instead of the walk's"),
          candidates: int = typer.Option(32, help="links scored per example besides the imitated one "
                                         "(a uniform sample on pages with more; 0: all links)"),
          held_out: float = typer.Option(0.0, help="fraction of pages kept out of training "
                                         "(`nav eval --held-out` evaluates on them)"),
          val_pairs: int = typer.Option(100, help="validation pairs per kind and k for choosing the "
                                        "checkpoint by navigation success (0: keep the last weights)"),
          checkpoint_every: int = typer.Option(None, help="steps between checkpoints "
                                               "(default: min(200, steps // 5), at least 1)"),
          seed: int = typer.Option(0),
          resume: bool = typer.Option(False, help="continue a killed run in --out from its last checkpoint"),
          estimate: bool = typer.Option(False, "--estimate",
                                        help="time a few real steps and print the expected seconds per "
                                             "step and for the run; writes nothing")):
    """Behavioural cloning of random walks: a link scorer given current page and target
    (the `nav_bc` recipe with these options as overrides)."""
    from protege.systems.wikinav.experiment import run_from_cli
    options = {"encoder": encoder, "steps": steps, "batch_size": batch_size, "lr": lr,
               "walks_per_page": walks_per_page, "walk_length": walk_length, "dead_end": dead_end,
               "warmup_frac": warmup_frac, "page_vectors": page_vectors, "seed": seed,
               "checkpoint_every": checkpoint_every, "teacher": teacher, "candidates": candidates,
               "held_out": held_out, "val_pairs": val_pairs, "random_goals": random_goals}
    if estimate:
        from protege.systems.wikinav.estimate import from_cli
        summary = from_cli(graph, out, **options)
        print_summary("nav train --estimate (nothing written)",
                      [{"field": k, "value": v} for k, v in summary.items()])
        return
    summary = run_from_cli(graph, out, resume=resume, **options)
    print_summary(f"nav train -> {out}", [{"field": k, "value": v} for k, v in summary.items()])


@nav_app.command("eval")
def evaluate(policy: Path = typer.Argument(..., help="run folder of `protege nav train`"),
             pairs: int = typer.Option(300, help="pairs per k and pair kind"),
             k_max: int = typer.Option(20, help="evaluate k = 1..k_max"),
             budget_factor: list[float] = typer.Option(
                 [2.0, 4.0], help="step budget = ceil(factor * k); repeat for several budgets"),
             held_out: bool = typer.Option(False, "--held-out", help="only targets among the pages "
                                           "the run held out of training (`nav train --held-out`)"),
             min_pairs: int = typer.Option(30, help="report k only with this many pairs"),
             seed: int = typer.Option(1234),
             out: Path = typer.Option(None, help="JSON file for all rows (default POLICY/eval.json)"),
             markdown: Path = typer.Option(None, help="also write the tables as Markdown here")):
    """Success within the step budget for k = 1..k_max: policy vs similarity, random, BFS oracle."""
    from protege.core.atomic import write_text_atomic
    from protege.data.manifest import check_output_file
    from protege.systems.wikinav.evaluate import evaluate_policy, headline_rows, markdown_tables
    from protege.systems.wikinav.pairs import NavEvalConfig
    for path, flag in ((out, "--out"), (markdown, "--markdown")):
        if path is not None:
            check_output_file(path, flag=flag)
    from protege.core.errors import UserError
    if k_max < 1:
        raise UserError(f"--k-max must be >= 1, got {k_max}")
    try:
        cfg = NavEvalConfig(ks=tuple(range(1, k_max + 1)), pairs=pairs, min_pairs=min_pairs,
                            budget_factors=tuple(budget_factor), seed=seed)
    except ValueError as e:
        raise UserError(f"nav eval settings: {e}") from None
    rows = evaluate_policy(policy, cfg, out or policy / "eval.json", show_progress=True, held_out=held_out)
    if markdown is not None:
        write_text_atomic(markdown, markdown_tables(rows))
    headline = headline_rows(rows)
    if not headline:
        raise UserError(f"nav eval {policy}: no k in 1..{k_max} had --min-pairs {min_pairs} source-target "
                        f"pairs (the graph is too small or too sparse for these k)")
    print_summary(f"nav eval {policy} (success within budget, Wilson 95% CI)", headline)


@nav_app.command("search")
def search(query: str = typer.Argument(..., help="free-text query"),
           policy: Path = typer.Option(..., "--policy", help="run folder of `protege nav train`"),
           steps: int = typer.Option(6, help="links to follow from the start page")):
    """Start at the page BM25 ranks first for QUERY and follow the policy towards the query, never
    revisiting a page; prints each page's title, source path and URL (evidence pages)."""
    import torch

    from protege.systems.wikinav.evaluate import json_encoder
    from protege.systems.wikinav.experiment import load_policy
    from protege.systems.wikinav.search import search as run_search
    if steps < 1 or not query.strip():
        from protege.core.errors import UserError
        raise UserError(f"nav search needs a non-empty query and --steps >= 1 (got {query!r}, {steps})")
    torch.set_num_threads(1)
    model, graph = load_policy(policy)
    rows = run_search(model, graph, json_encoder(policy), query, steps)
    print_summary(f"nav search {query!r}", rows)


@nav_app.command("search-eval")
def search_eval(policy: Path = typer.Argument(..., help="run folder of `protege nav train`"),
                queries: int = typer.Option(100, help="held-out pages, each queried by its first sentence"),
                seed: int = typer.Option(0, help="seed of the held-out page draw"),
                out: Path = typer.Option(None, help="JSON file for the rows (default POLICY/search-eval.json)"),
                markdown: Path = typer.Option(None, help="also write the table as Markdown here")):
    """success@k of finding held-out pages from their own first sentence (removed from the index and
    from the page's embedding): BM25 alone vs BM25's top page followed by the policy or similarity."""
    import json

    import torch

    from protege.core.errors import UserError
    from protege.core.progress import progress_bar
    from protege.core.atomic import write_text_atomic
    from protege.data.manifest import check_output_file
    from protege.systems.wikinav.evaluate import json_encoder
    from protege.systems.wikinav.experiment import load_policy
    from protege.systems.wikinav.search import search_eval as run_eval
    from protege.systems.wikinav.search import search_markdown
    if queries < 1:
        raise UserError(f"--queries must be >= 1, got {queries}")
    out = out or policy / "search-eval.json"
    for path, flag in ((out, "--out"), (markdown, "--markdown")):
        if path is not None:
            check_output_file(path, flag=flag)
    torch.set_num_threads(1)
    model, graph = load_policy(policy)
    with progress_bar(True) as bar:
        task = bar.add_task("held-out queries", total=queries)
        rows = run_eval(model, graph, json_encoder(policy), queries, seed=seed,
                        progress=lambda n: bar.advance(task, n))
    write_text_atomic(out, json.dumps(rows, indent=1) + "\n")
    if markdown is not None:
        write_text_atomic(markdown, search_markdown(rows))
    print_summary(f"nav search-eval {policy} (success@k, Wilson 95% CI)",
                  [{"method": r["method"], "k": r["k"], "success": f"{100 * r['success']:.1f}%",
                    "95% CI": f"[{100 * r['low']:.1f}, {100 * r['high']:.1f}]"} for r in rows])
