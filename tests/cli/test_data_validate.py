"""`protege data validate` reads any dataset protege writes (text, BabyAI and Control Suite
demonstrations, graphs, saved walks) by its manifest kind, without starting a run."""

import pytest

from protege.cli.main import main


def validate(capfd, path) -> tuple[int, str]:
    try:
        main(["data", "validate", str(path)])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capfd.readouterr()
    return code, " ".join((out + err).split())


def make_text(folder):
    from protege.data.text import TextExample, save_text_dataset
    save_text_dataset([TextExample("1+1=", "2")], folder)


def make_babyai(folder):
    from protege.worlds.babyai.demos import DemoConfig, generate_demos
    generate_demos(DemoConfig("BabyAI-GoToRedBall-v0", 2, folder, 1, 0, 2), progress=False)


def make_control(folder):
    from protege.worlds.control.demos import record_demos
    record_demos("cartpole-swingup", 1, folder, action_repeat=10, random_episodes=1)


def make_graph(folder):
    from protege.worlds.graphs.builders import build
    site = folder.parent / "site"
    site.mkdir()
    (site / "a.html").write_text('<a href="b.html">b</a>')
    (site / "b.html").write_text('<a href="a.html">a</a>')
    build("html", site, folder)


def make_walks(folder):
    from protege.worlds.graphs.walks import walk_stats
    make_graph(folder.parent / "g")
    walk_stats(folder.parent / "g", 2, 3, "stop", 2, 0, out=folder)


@pytest.mark.parametrize("make,kind,field", [
    (make_text, "prompt/completion dataset", "examples"), (make_babyai, "BabyAI demonstrations", "level"),
    (make_control, "Control Suite demonstrations", "transitions"), (make_graph, "graph", "pages"),
    (make_walks, "random walks", "bc_examples")])
def test_every_kind_validates_and_a_planted_file_fails(tmp_path, capfd, monkeypatch, make, kind, field):
    monkeypatch.chdir(tmp_path)
    make(tmp_path / "ds")
    code, out = validate(capfd, tmp_path / "ds")
    assert code == 0 and f"valid {kind}" in out and field in out, out
    assert not (tmp_path / "runs").exists()
    (tmp_path / "ds" / "planted.bin").write_bytes(b"\x00")
    code, out = validate(capfd, tmp_path / "ds")
    assert code == 2 and "planted.bin: not listed" in out, out
