"""Bad invocations of every command group: each exits 2 with exactly one line on stderr, no
traceback, and leaves the workspace as it found it (no run directory or output folder left behind,
no earlier output or input touched).

The CLI runs in-process (`protege.cli.main.main(argv)`) so the table is fast; the workspace of
inputs is built once and compared file by file (path, size, mtime) before and after every case.
"""

import json
import os
from pathlib import Path

import pytest

from protege.cli.main import main

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"
LATIN1 = '{"prompt": "caf\xe9", "completion": "cr\xe8me"}\n'.encode("latin-1")


def _text_dataset(folder: Path, change=None):
    from protege.data.manifest import MANIFEST
    from protege.data.text import TextExample, save_text_dataset
    save_text_dataset([TextExample("1+1=", "2"), TextExample("2+2=", "4")], folder)
    if change is not None:
        manifest = json.loads((folder / MANIFEST).read_text())
        (folder / MANIFEST).write_text(json.dumps(change(manifest)))


def _truncated_safetensors(path: Path):
    import torch
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.zeros(64)}, str(path))
    path.write_bytes(path.read_bytes()[:-30])


def _build_workspace(w: Path) -> None:
    """Every bad input the table points at, each in its own file or folder."""
    import torch
    from safetensors.torch import save_file

    from protege.worlds.graphs.builders import build
    # recipes
    (w / "recipe_dir").mkdir()
    (w / "binary.yaml").write_bytes(PNG)
    (w / "latin1.yaml").write_bytes("experiment: lm\nname: caf\xe9\n".encode("latin-1"))
    (w / "empty.yaml").write_text("")
    (w / "list.yaml").write_text("- experiment\n- lm\n")
    (w / "broken.yaml").write_text("experiment: lm\ntrainer: [1,\n")
    (w / "noexp.yaml").write_text("name: x\n")
    (w / "listexp.yaml").write_text("experiment: [lm]\nname: x\n")
    # text data
    (w / "afile.txt").write_text("just a file\n")
    (w / "data.jsonl").write_text('{"prompt": "1+1=", "completion": "2"}\n')
    (w / "latin1.jsonl").write_bytes(LATIN1)
    (w / "empty.jsonl").write_text("\n")
    (w / "badjson.jsonl").write_text('{"prompt": "a", "completion": "b"}\n{oops\n')
    (w / "nofield.jsonl").write_text('{"prompt": "a"}\n')
    (w / "foreign").mkdir()
    (w / "foreign" / "keep.txt").write_text("someone's work\n")
    _text_dataset(w / "ds_nofiles", lambda m: {k: v for k, v in m.items() if k != "files"})
    _text_dataset(w / "ds_fileslist", lambda m: {**m, "files": list(m["files"])})
    _text_dataset(w / "ds_toplist", lambda m: [m])
    _text_dataset(w / "ds_emptied", lambda m: {**m, "files": {}})
    _text_dataset(w / "ds_dotdot", lambda m: {**m, "files": {
        **m["files"], "../afile.txt": {"bytes": 12, "sha256": "0" * 64}}})
    _text_dataset(w / "ds_extra")
    (w / "ds_extra" / "planted.jsonl").write_text('{"prompt": "p", "completion": "planted"}\n')
    # graphs
    site = w / "site"
    site.mkdir()
    (site / "index.html").write_text('<title>Home</title><a href="a.html">a</a>')
    (site / "a.html").write_text('<title>A</title><a href="index.html">home</a>')
    build("html", site, w / "graph")
    build("html", site, w / "graph_corrupt")
    with open(w / "graph_corrupt" / "targets.npy", "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x7f")
    (w / "edges_empty.txt").write_text("# nothing\n")
    (w / "edges_selfloop.txt").write_text("A A\n")
    (w / "edges_latin1.txt").write_bytes("A B\ncaf\xe9 A\n".encode("latin-1"))
    (w / "edges.txt").write_text("A B\nB A\n")
    # runs that cannot be read back
    lm = w / "lm_trunc"
    (lm / "model").mkdir(parents=True)
    (lm / "config.yaml").write_text("experiment: lm\nname: lm_trunc\n")
    (lm / "model" / "config.json").write_text("{}")
    _truncated_safetensors(lm / "model" / "model.safetensors")
    (w / "lm_noconfig" / "model").mkdir(parents=True)
    (w / "lm_noconfig" / "model" / "config.json").write_text("{}")
    empty = w / "lm_emptymodel"
    (empty / "model").mkdir(parents=True)
    (empty / "config.yaml").write_text("experiment: lm\nname: lm_emptymodel\n")
    (empty / "model" / "config.json").write_text("")
    save_file({"w": torch.zeros(2)}, str(empty / "model" / "model.safetensors"))
    (w / "lm_emptyconfig").mkdir()
    (w / "lm_emptyconfig" / "config.yaml").write_text("")
    babyai = w / "babyai_trunc"
    (babyai / "config.yaml").parent.mkdir()
    (babyai / "config.yaml").write_text("experiment: babyai_bc\nlevel: BabyAI-GoToRedBall-v0\n")
    _truncated_safetensors(babyai / "checkpoints" / "step-00000001" / "model.safetensors")
    (babyai / "checkpoints" / "latest").write_text("step-00000001")
    nav = w / "nav_trunc"
    nav.mkdir()
    (nav / "policy.json").write_text(json.dumps({"graph": str(w / "graph"), "encoder": "tfidf",
                                                 "policy": {}}))
    _truncated_safetensors(nav / "policy.safetensors")
    (w / "nav_badjson").mkdir()
    (w / "nav_badjson" / "policy.json").write_bytes(PNG)
    for name, summary in (("run_badsummary", "{"), ("run_ok", "{}")):
        (w / name).mkdir()
        (w / name / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.5}\n')
        (w / name / "summary.json").write_text(summary)


def _snapshot(w: Path) -> dict:
    return {p.relative_to(w).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "dir"
            for p in w.rglob("*")}


TINY_LM = ["task.train_size=40", "task.eval_size=4", "model.n_layer=1", "model.n_embd=16",
           "model.n_head=2", "vocab_size=300", "trainer.steps=2", "trainer.batch_size=4",
           "eval.prompts=2", "eval.sample_prompts=1", "eval.samples=2", "eval.max_new_tokens=4"]


def _train_runs(w: Path) -> None:
    """Tiny trained runs of each kind, for the cases whose bad input is a setting, not the run."""
    from protege.core.runs import Run
    from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
    cwd = os.getcwd()
    os.chdir(w)
    try:
        main(["run", LM, "name=lm_ok", *TINY_LM])
        main(["nav", "train", "graph", "--out", "nav_ok", "--encoder", "tfidf", "--steps", "2",
              "--batch-size", "4"])
    finally:
        os.chdir(cwd)
    cfg = {"experiment": "babyai_offline", "name": "babyai_ok", "level": BABYAI,
           "policy": {"dim": 16, "n_film": 1}}
    run = Run(w / "babyai_ok", cfg)
    run.save_checkpoint(1, BabyAIPolicy(PolicyConfig(dim=16, n_film=1)).state_dict(), {})
    run.close()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    w = tmp_path_factory.mktemp("bad_input")
    _build_workspace(w)
    _train_runs(w)
    return w


LM = "lm_arithmetic_mle"
BABYAI = "BabyAI-GoToRedBall-v0"
CASES = [
    # run: recipes that are not YAML text, configs that pass checks and fail later
    ("run", "recipe_dir"), ("run", "binary.yaml"), ("run", "latin1.yaml"), ("run", "empty.yaml"),
    ("run", "list.yaml"), ("run", "broken.yaml"), ("run", "noexp.yaml"), ("run", "listexp.yaml"),
    ("run", "no_such_recipe"), ("run", "missing.yaml"),
    ("run", LM, "trainer.lr=nan"), ("run", LM, "trainer.lr=inf"), ("run", LM, "trainer.lr=-.inf"),
    ("run", LM, "name="), ("run", LM, "name=a/b"), ("run", LM, "name=.."),
    ("run", LM, "trainer.log_every=0"), ("run", LM, "trainer.checkpoint_every=-1"),
    ("run", LM, "trainer.warmup_steps=-1"), ("run", LM, "trainer.batch_size=7", "trainer.grad_accum=2"),
    ("run", LM, "trainer.lrr=1"), ("run", LM, "trainer"), ("run", LM, "model=null"),
    ("run", LM, "model=3"), ("run", LM, "--resume"),
    ("run", LM, "name=t", "task.kind=file", "task.path=latin1.jsonl"),
    ("run", LM, "name=t", "task.kind=file", "task.path=ds_extra"),
    ("run", LM, "name=t", "task.kind=file", "task.path=empty.jsonl"),
    ("run", LM, "name=t", "runs_dir=afile.txt"), ("run",),
    # recipes
    ("recipes", "--show", "no_such_recipe"), ("recipes", "--show", "recipe_dir"), ("recipes", "--bogus"),
    # report
    ("report", "missing_run"), ("report", "afile.txt"), ("report", "run_badsummary"),
    ("report", "run_ok", "--out", "afile.txt"), ("report", "run_ok", "--out", "foreign"),
    ("report", "run_ok", "--out", "run_ok"), ("report", "run_ok", "--out", "graph"),
    # data validate
    ("data", "validate", "missing"), ("data", "validate", "latin1.jsonl"),
    ("data", "validate", "empty.jsonl"), ("data", "validate", "badjson.jsonl"),
    ("data", "validate", "nofield.jsonl"), ("data", "validate", "ds_nofiles"),
    ("data", "validate", "ds_fileslist"), ("data", "validate", "ds_toplist"),
    ("data", "validate", "ds_emptied"), ("data", "validate", "ds_dotdot"),
    ("data", "validate", "ds_extra"), ("data", "validate", "graph_corrupt"),
    ("data", "validate", "foreign"), ("data", "validate", "afile.txt"), ("data", "validate", "binary.yaml"),
    # data arithmetic
    ("data", "arithmetic", "foreign", "--n", "5"), ("data", "arithmetic", "afile.txt", "--n", "5"),
    ("data", "arithmetic", "graph", "--n", "5"), ("data", "arithmetic", "new_ds", "--n", "0"),
    ("data", "arithmetic", "new_ds", "--n", "-3"), ("data", "arithmetic"),
    # BabyAI and Control Suite demonstrations
    ("data", "demos", "--env", "BabyAI-Nope-v0", "--out", "new_demos"),
    ("data", "demos", "--env", BABYAI, "--out", "foreign", "--episodes", "1"),
    ("data", "demos", "--env", BABYAI, "--out", "afile.txt", "--episodes", "1"),
    ("data", "demos", "--env", BABYAI, "--out", "new_demos", "--episodes", "0"),
    ("data", "demos", "--env", BABYAI, "--out", "new_demos", "--workers", "0"),
    ("data", "demos", "--env", BABYAI, "--out", "graph", "--episodes", "1"),
    ("data", "control-demos", "--task", "nope-nope", "--out", "new_demos"),
    ("data", "control-demos", "--out", "foreign", "--episodes", "1"),
    ("data", "control-demos", "--out", "afile.txt", "--episodes", "1"),
    ("data", "control-demos", "--out", "new_demos", "--episodes", "0"),
    # evaluation and loading trained runs
    ("eval", "lm", "missing_run"), ("eval", "lm", "lm_trunc"), ("eval", "lm", "lm_noconfig"),
    ("eval", "lm", "lm_emptymodel"), ("eval", "lm", "lm_emptyconfig"),
    ("lm", "sample", "lm_trunc", "1+1="), ("lm", "sample", "lm_emptyconfig", "1+1="),
    ("lm", "reward", "lm_trunc", "--data", "data.jsonl"),
    ("lm", "reward", "lm_trunc", "--data", "latin1.jsonl"),
    ("lm", "reward", "lm_trunc", "--data", "data.jsonl", "--out", "data.jsonl"),
    ("lm", "reward", "lm_trunc", "--data", "data.jsonl", "--out", "foreign"),
    ("lm", "reward", "lm_trunc", "--data", "ds_extra", "--out", "ds_extra/scores.jsonl"),
    ("eval", "babyai", "babyai_trunc"), ("eval", "babyai", "missing_run"),
    ("eval", "babyai", "lm_emptyconfig"),
    # nav: build, walks, train, eval, search
    ("nav", "build", "html", "site", "--out", "site"), ("nav", "build", "html", "site", "--out", "site/g"),
    ("nav", "build", "html", "site", "--out", "."), ("nav", "build", "html", "site", "--out", "foreign"),
    ("nav", "build", "html", "site", "--out", "afile.txt"),
    ("nav", "build", "edgelist", "edges_empty.txt", "--out", "new_graph"),
    ("nav", "build", "edgelist", "edges_selfloop.txt", "--out", "new_graph"),
    ("nav", "build", "edgelist", "edges_latin1.txt", "--out", "new_graph"),
    ("nav", "build", "edgelist", "site", "--out", "new_graph"),
    ("nav", "build", "edgelist", "edges.txt", "--texts", "latin1.jsonl", "--out", "new_graph"),
    ("nav", "build", "wiki", "site", "--out", "new_graph"),
    ("nav", "build", "html", "missing", "--out", "new_graph"),
    ("nav", "build", "dictd", "missing", "--out", "new_graph"),
    ("nav", "build", "html", "site"),
    ("nav", "walks", "graph", "--out", "graph"), ("nav", "walks", "graph", "--out", "graph/walks"),
    ("nav", "walks", "graph", "--out", "foreign"), ("nav", "walks", "graph", "--walks-per-page", "0"),
    ("nav", "walks", "graph", "--dead-end", "nope"), ("nav", "walks", "missing"),
    ("nav", "walks", "graph_corrupt"), ("nav", "walks", "afile.txt"),
    ("nav", "walks", "graph", "--out", "afile.txt"),
    ("nav", "train", "missing", "--out", "new_run"), ("nav", "train", "graph", "--out", "foreign"),
    ("nav", "train", "graph", "--out", "afile.txt"),
    ("nav", "train", "graph", "--out", "new_run", "--steps", "0"),
    ("nav", "train", "graph", "--out", "new_run", "--lr", "nan"),
    ("nav", "train", "graph", "--out", "new_run", "--encoder", "nope"),
    ("nav", "train", "graph", "--out", "new_run", "--warmup-frac", "1"),
    ("nav", "train", "graph", "--out", "new_run", "--warmup-frac", "-0.1"),
    ("nav", "train", "graph", "--out", "new_run", "--warmup-frac", "nan"),
    ("nav", "train", "graph", "--out", "new_run", "--estimate", "--steps", "0"),
    ("nav", "train", "missing", "--out", "new_run", "--estimate"),
    ("nav", "train", "graph_corrupt", "--out", "new_run", "--steps", "2"),
    ("nav", "eval", "nav_trunc"), ("nav", "eval", "nav_badjson"), ("nav", "eval", "missing_run"),
    ("nav", "eval", "nav_trunc", "--out", "graph/eval.json"), ("nav", "eval", "nav_trunc", "--out", "foreign"),
    ("nav", "eval", "nav_trunc", "--markdown", "site"),
    ("nav", "search", "home", "--policy", "nav_trunc"), ("nav", "search", "home", "--policy", "missing"),
    # settings out of range, on runs that load
    ("run", LM, "name=lm_ok"), ("nav", "train", "graph", "--out", "nav_ok"),
    ("eval", "lm", "runs/lm_ok", "--prompts", "0"), ("eval", "lm", "runs/lm_ok", "--temperature", "nan"),
    ("eval", "lm", "runs/lm_ok", "--top-p", "2"), ("eval", "lm", "runs/lm_ok", "--beams", "0"),
    ("lm", "sample", "runs/lm_ok", "1+1=", "--n", "0"), ("lm", "sample", "runs/lm_ok", "1+1=", "--top-p", "0"),
    ("lm", "reward", "runs/lm_ok", "--data", "empty.jsonl"),
    ("lm", "reward", "runs/lm_ok", "--data", "nofield.jsonl"),
    ("eval", "babyai", "babyai_ok", "--episodes", "0"), ("eval", "babyai", "babyai_ok", "--workers", "0"),
    ("eval", "babyai", "babyai_ok", "--level", "BabyAI-Nope-v0"),
    ("eval", "babyai", "babyai_ok", "--seed-start", "-1"), ("eval", "babyai", "runs/lm_ok"),
    ("nav", "eval", "nav_ok", "--pairs", "0"), ("nav", "eval", "nav_ok", "--k-max", "0"),
    ("nav", "eval", "nav_ok", "--budget-factor", "nan"), ("nav", "eval", "nav_ok", "--seed", "-1"),
    ("nav", "eval", "nav_ok", "--pairs", "20"),
    ("nav", "eval", "nav_ok", "--min-pairs", "-1"),
    ("nav", "search", "", "--policy", "nav_ok"), ("nav", "search", "home", "--policy", "nav_ok", "--steps", "0"),
    ("data", "validate", "runs/lm_ok"), ("data", "arithmetic", "runs/lm_ok"),
    ("nav", "build", "html", "site", "--out", "graph", "--texts", "data.jsonl"),
    ("data", "control-demos", "--out", "new_demos", "--seed", "-1"),
    # demo
    ("demo", "--out", "afile.txt"), ("demo", "--bogus"),
    # studio: nothing is created (no database file, no media folder) when the input is bad
    ("studio", "add-user", "x", "--role", "boss", "--db", "new.db"),
    ("studio", "add-user", "bad name!", "--role", "annotator", "--db", "new.db"),
    ("studio", "add-user", "x", "--role", "annotator", "--db", "missing/s.db"),
    ("studio", "add-user", "x", "--role", "annotator", "--db", "mysql://u@h/d"),
    ("studio", "token", "x", "--db", "new.db"), ("studio", "token", "x", "--db", "afile.txt"),
    ("studio", "token", "x", "--db", "foreign"),
    ("studio", "import", "--db", "new.db"), ("studio", "import", "--db", "new.db", "--demos", "missing"),
    ("studio", "import", "--db", "new.db", "--demos", "foreign"),
    ("studio", "import", "--db", "new.db", "--demos", "ds_extra"),
    ("studio", "import", "--db", "new.db", "--demos", "foreign", "--run", "babyai_ok"),
    ("studio", "import", "--db", "new.db", "--run", "babyai_ok"),
    ("studio", "import", "--db", "new.db", "--run", "babyai_ok", "--episodes", "0"),
    ("studio", "import", "--db", "new.db", "--run", "babyai_trunc", "--episodes", "1"),
    ("studio", "import", "--db", "new.db", "--run", "lm_emptyconfig", "--episodes", "1"),
    ("studio", "import", "--db", "new.db", "--run", "babyai_ok", "--episodes", "1", "--overlap", "0"),
    ("studio", "assign", "x", "--db", "new.db"), ("studio", "assign", "x", "--db", "new.db", "--count", "0"),
    ("studio", "export", "--db", "new.db"), ("studio", "export", "--db", "new.db", "--out", "foreign"),
    ("studio", "export", "--db", "new.db", "--out", "afile.txt"),
    ("studio", "export", "--db", "new.db", "--demos", "foreign"),
    ("studio", "export", "--db", "postgresql://nobody:pw@127.0.0.1:1/none", "--out", "new_export"),
    ("studio", "serve", "--db", "new.db", "--port", "0"), ("studio", "serve", "--db", "foreign"),
]


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c) for c in CASES])
def test_bad_invocation_is_one_line_exit_2_and_changes_nothing(argv, workspace, monkeypatch, capfd):
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("COLUMNS", "200")
    before = _snapshot(workspace)
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert exit_info.value.code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in out + err
    assert _snapshot(workspace) == before, "the workspace changed"


def test_the_table_covers_every_command_group():
    groups = {c[0] if c[0] not in ("data", "eval", "lm", "nav") else " ".join(c[:2]) for c in CASES if c}
    assert {"run", "recipes", "report", "demo", "data validate", "data arithmetic", "data demos",
            "data control-demos", "eval lm", "eval babyai", "lm sample", "lm reward", "nav build",
            "nav walks", "nav train", "nav eval", "nav search"} <= groups
    assert len(CASES) >= 60
    assert os.environ.get("PROTEGE_TEST_MARKER") is None  # the table does not rely on the environment
