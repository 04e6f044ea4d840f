"""The nav commands end to end on the tiny dictd fixture (small trainable encoder, a few steps)."""

import json

from typer.testing import CliRunner

import protege.systems.wikinav.cli  # noqa: F401  registers `protege nav`
from protege.core.cli import app
from protege.core.errors import UserError


def invoke(*args):
    result = CliRunner().invoke(app, list(map(str, args)), catch_exceptions=True)
    return result


def test_build_walks_train_eval(dictd_path, tmp_path):
    r = invoke("nav", "build", "dictd", dictd_path, "--out", tmp_path / "g")
    assert r.exit_code == 0, r.output
    assert "links_dangling" in r.output
    r = invoke("nav", "walks", tmp_path / "g", "--walks-per-page", 5, "--out", tmp_path / "w")
    assert r.exit_code == 0, r.output
    assert "steps_per_s" in r.output and (tmp_path / "w" / "nodes.npy").exists()
    r = invoke("nav", "train", tmp_path / "g", "--out", tmp_path / "run", "--encoder", "tfidf",
               "--steps", 20, "--batch-size", 16)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "policy.safetensors").exists()
    r = invoke("nav", "eval", tmp_path / "run", "--pairs", 10, "--k-max", 2, "--min-pairs", 1)
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "run" / "eval.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"policy", "similarity", "random"}


def test_bad_names_are_user_errors(dictd_path, tmp_path):
    r = invoke("nav", "build", "dict", dictd_path, "--out", tmp_path / "g")
    assert isinstance(r.exception, UserError) and "dictd" in str(r.exception)
    invoke("nav", "build", "dictd", dictd_path, "--out", tmp_path / "g")
    r = invoke("nav", "train", tmp_path / "g", "--out", tmp_path / "run", "--encoder", "bert")
    assert isinstance(r.exception, UserError) and "minilm" in str(r.exception)


def test_search_follows_links_from_the_best_lexical_match(dictd_path, tmp_path):
    invoke("nav", "build", "dictd", dictd_path, "--out", tmp_path / "g")
    invoke("nav", "train", tmp_path / "g", "--out", tmp_path / "run", "--encoder", "tfidf",
           "--steps", 5, "--batch-size", 8)
    r = invoke("nav", "search", "gamma rays", "--policy", tmp_path / "run", "--steps", 3)
    assert r.exit_code == 0, r.output
    from protege.systems.wikinav.experiment import load_policy
    from protege.systems.wikinav.search import search
    model, graph = load_policy(tmp_path / "run")
    rows = search(model, graph, "tfidf", "unicode café", steps=3)
    assert rows[0]["page"] == "Café"
    titles = graph.titles()
    ids = [titles.index(r["page"]) for r in rows]
    for i, row in enumerate(rows[1:], 1):  # every page is reached by a link from an earlier one
        assert row["from step"] < i and ids[i] in graph.neighbors(ids[row["from step"]])
    assert len(set(ids)) == len(ids)    # never revisits


def test_nav_bc_experiment_runs_from_a_recipe(dictd_path, tmp_path):
    from protege.systems import start
    invoke("nav", "build", "dictd", dictd_path, "--out", tmp_path / "g")
    recipe = tmp_path / "nav.yaml"
    recipe.write_text(f"experiment: nav_bc\nname: r\ngraph: {tmp_path / 'g'}\nencoder: tfidf\n"
                      "walks_per_page: 3\ntrainer:\n  steps: 4\n  batch_size: 8\n  checkpoint_every: 2\n")
    run_dir, summary = start(str(recipe), ["seed=1"], run_dir=tmp_path / "run")
    assert summary["examples"] > 0 and (run_dir / "policy.safetensors").exists()
    assert (run_dir / "summary.json").exists()
