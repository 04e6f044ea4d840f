"""Progress bars with totals, one --dead-end default, warm-up as a fraction, public file modes."""

import os
import stat
from typing import ClassVar

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import protege.systems.wikinav.cli  # noqa: F401  registers `protege nav`
from protege.core.cli import app
from protege.core.errors import UserError
from protege.worlds.graphs import DEFAULT_DEAD_END


def invoke(*args):
    return CliRunner().invoke(app, list(map(str, args)), catch_exceptions=True)


def nav_option_default(command: str, option: str):
    nav = typer.main.get_command(app).commands["nav"]
    return next(p.default for p in nav.commands[command].params if p.name == option)


def test_walks_train_and_recipe_share_one_dead_end_default():
    from protege.core.registry import resolve
    from protege.systems.wikinav.experiment import RECIPE, Config
    assert DEFAULT_DEAD_END == "jump"  # what docs/results/wikinav.md's runs trained on
    assert nav_option_default("walks", "dead_end") == DEFAULT_DEAD_END
    assert nav_option_default("train", "dead_end") == DEFAULT_DEAD_END
    assert Config().dead_end == DEFAULT_DEAD_END
    for recipe in RECIPE.parent.glob("*.yaml"):
        assert resolve(str(recipe), [])[1].dead_end == DEFAULT_DEAD_END


def test_warmup_is_a_fraction_of_the_run():
    from protege.rl.fit import TrainerConfig
    from protege.systems.wikinav.experiment import Config
    assert Config(warmup_frac=0.05, trainer=TrainerConfig(steps=1000)).trainer.warmup_steps == 50
    assert Config(warmup_frac=0.05, trainer=TrainerConfig(steps=20)).trainer.warmup_steps == 1
    assert Config(warmup_frac=0.0, trainer=TrainerConfig(steps=20, warmup_steps=7)).trainer.warmup_steps == 0
    assert Config(trainer=TrainerConfig(steps=20, warmup_steps=7)).trainer.warmup_steps == 7  # None: kept
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="warmup_frac"):
            Config(warmup_frac=bad)
    assert nav_option_default("train", "warmup_frac") == 0.05


def test_nav_train_warmup_frac_reaches_the_saved_config(dictd_path, tmp_path):
    import yaml
    assert invoke("nav", "build", "dictd", dictd_path, "--out", tmp_path / "g").exit_code == 0
    r = invoke("nav", "train", tmp_path / "g", "--out", tmp_path / "run", "--encoder", "tfidf",
               "--steps", 40, "--batch-size", 8, "--warmup-frac", 0.25)
    assert r.exit_code == 0, r.output
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["warmup_frac"] == 0.25 and saved["trainer"]["warmup_steps"] == 10
    r = invoke("nav", "train", tmp_path / "g", "--out", tmp_path / "bad", "--encoder", "tfidf",
               "--warmup-frac", 1)
    assert isinstance(r.exception, UserError) and "warmup_frac" in str(r.exception)
    assert not (tmp_path / "bad").exists()


class Recorder:
    """Stands in for the rich progress bar: records each task's total and what it advanced."""
    tasks: ClassVar[list] = []

    def __init__(self, enabled=True, console=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, description, total=None):
        Recorder.tasks.append({"description": description, "total": total, "done": 0})
        return len(Recorder.tasks) - 1

    def advance(self, task, n=1):
        Recorder.tasks[task]["done"] += n

    def update(self, task, completed=None, total=None):
        if completed is not None:
            Recorder.tasks[task]["done"] = completed


@pytest.fixture
def recorder(monkeypatch):
    import protege.core.progress
    Recorder.tasks = []
    monkeypatch.setattr(protege.core.progress, "progress_bar", Recorder)
    return Recorder


def test_encoding_progress_has_the_page_count_as_total(dictd_path, tmp_path, recorder):
    from protege.nn.text_encoders import load_or_encode
    from protege.worlds.graphs.builders import build
    from protege.worlds.graphs.store import open_graph
    build("dictd", dictd_path, tmp_path / "g")
    graph = open_graph(tmp_path / "g")
    load_or_encode(graph, "tfidf")
    assert recorder.tasks == [{"description": "encoding pages (tfidf)", "total": graph.num_nodes,
                               "done": graph.num_nodes}]
    load_or_encode(graph, "tfidf")  # cached: nothing to show
    assert len(recorder.tasks) == 1


def test_length_batches_cover_every_text_once_in_similar_lengths():
    from protege.nn.text_encoders import _length_batches
    texts = ["x" * n for n in np.random.default_rng(0).integers(1, 500, 1000)]
    batches = _length_batches(texts, 64)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    spans = [max(len(texts[i]) for i in b) - min(len(texts[i]) for i in b) for b in batches]
    assert max(spans) < 100  # sorted by length: each batch pads little
    firsts = [min(len(texts[i]) for i in b) for b in batches]
    assert firsts != sorted(firsts)  # but not visited shortest first (the ETA would be optimistic)


def test_eval_progress_total_is_the_number_of_navigation_episodes(recorder):
    from protege.systems.wikinav.evaluate import evaluate
    from protege.systems.wikinav.pairs import NavEvalConfig, eval_pairs
    from protege.systems.wikinav.navigate import random_scorer
    from tests.systems.wikinav.test_eval import random_graph
    g = random_graph()
    cfg = NavEvalConfig(ks=(1, 2, 3), pairs=20, min_pairs=5, bfs_sources=50)
    rows = evaluate(g, {"a": random_scorer(0), "b": random_scorer(1)}, cfg, show_progress=True)
    expected = sum(len(s) for s, _ in eval_pairs(g, cfg).values()) * 2 * 2
    assert expected == sum(r["n"] for r in rows if r["budget_factor"] == 2.0) > 0  # one run per episode
    assert recorder.tasks == [{"description": "navigation episodes", "total": expected, "done": expected}]


def _modes(folder, outputs):
    return {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for out in outputs for p in [folder / out, *(folder / out).rglob("*")] if p.is_file()}


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_file_build_walks_train_and_eval_write_follows_the_umask(dictd_path, tmp_path, umask):
    old = os.umask(umask)
    try:
        assert invoke("nav", "build", "dictd", dictd_path, "--out", tmp_path / "g").exit_code == 0
        assert invoke("nav", "walks", tmp_path / "g", "--walks-per-page", 2,
                      "--out", tmp_path / "w").exit_code == 0
        r = invoke("nav", "train", tmp_path / "g", "--out", tmp_path / "run", "--encoder", "tfidf",
                   "--steps", 4, "--batch-size", 8, "--checkpoint-every", 2)
        assert r.exit_code == 0, r.output
        r = invoke("nav", "eval", tmp_path / "run", "--pairs", 5, "--k-max", 2, "--min-pairs", 1,
                   "--markdown", tmp_path / "eval.md")
        assert r.exit_code == 0, r.output
    finally:
        os.umask(old)
    modes = _modes(tmp_path, ["g", "w", "run", "eval.md"])
    for name in ("g/embeddings-tfidf.safetensors", "run/policy.safetensors", "run/eval.json",
                 "eval.md", "w/nodes.npy", "run/checkpoints/step-00000004/model.safetensors"):
        assert name in modes
    wanted = 0o666 & ~umask
    assert {name: mode for name, mode in modes.items() if mode != wanted} == {}


def test_estimate_times_real_steps_and_writes_nothing(dictd_path, tmp_path):
    from protege.systems.wikinav.estimate import from_cli
    assert invoke("nav", "build", "dictd", dictd_path, "--out", tmp_path / "g").exit_code == 0
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    r = invoke("nav", "train", tmp_path / "g", "--out", tmp_path / "run", "--encoder", "tfidf",
               "--steps", 500, "--batch-size", 8, "--estimate")
    assert r.exit_code == 0, r.output
    assert "step_s" in r.output and "train_s" in r.output and "--estimate" in r.output
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before
    options = {"encoder": "tfidf", "steps": 500, "batch_size": 8, "lr": 2e-3, "walks_per_page": 2,
               "walk_length": 5, "dead_end": DEFAULT_DEAD_END, "page_vectors": True, "seed": 0,
               "checkpoint_every": None}
    est = from_cli(tmp_path / "g", tmp_path / "run", **options)
    assert est["step_s"] > 0 and est["train_s"] == pytest.approx(500 * est["step_s"], rel=0.01, abs=0.1)
    assert est["encode_from"] == f"{est['pages']}-page sample"  # not cached yet: timed on a sample
    from protege.nn.text_encoders import load_or_encode
    from protege.worlds.graphs.store import open_graph
    load_or_encode(open_graph(tmp_path / "g"), "tfidf", show_progress=False)
    est = from_cli(tmp_path / "g", tmp_path / "run", **options)
    assert est["encode_from"] == "cache" and est["encode_s"] == 0
    with pytest.raises(UserError, match="warmup_frac"):  # the run's own validation, before any work
        from_cli(tmp_path / "g", tmp_path / "run", **options, warmup_frac=2.0)
