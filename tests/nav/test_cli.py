"""The nav commands end to end on the tiny dictd fixture (small trainable encoder, a few steps)."""

import json

from typer.testing import CliRunner

import protege.cli.nav  # noqa: F401  registers `protege nav`
from protege.cli.apps import app
from protege.errors import UserError


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
