import json

from protege.systems.form.results import collect, mean_ci95, table


def test_ci95_is_the_student_t_interval():
    mean, half = mean_ci95([0.3, 0.5, 0.7])
    assert abs(mean - 0.5) < 1e-12
    assert abs(half - 4.302652729911275 * 0.2 / 3 ** 0.5) < 1e-9  # t_{0.975, 2} * s / sqrt(n)


def test_table_groups_by_method_and_distractors(tmp_path):
    for i, (method, dims, score) in enumerate([("form", 0, 0.2), ("form", 0, 0.4), ("gail", 8, 0.1)]):
        (tmp_path / f"r{i}").mkdir()
        (tmp_path / f"r{i}" / "summary.json").write_text(json.dumps(
            {"method": method, "distractors": dims, "seed": i, "normalised_return": score, "return": 100.0 * i}))
    markdown, rows = table(collect(tmp_path))
    assert [(r["method"].split()[0], r["distractor_dims"], r["seeds"]) for r in rows] == [("FORM", 0, 2), ("GAIL", 8, 1)]
    assert abs(rows[0]["normalised_return"] - 0.3) < 1e-9 and "FORM" in markdown


def test_table_keeps_tasks_apart(tmp_path):
    for i, task in enumerate(["reacher-easy", "cartpole-swingup", "cartpole-swingup"]):
        (tmp_path / f"r{i}").mkdir()
        (tmp_path / f"r{i}" / "summary.json").write_text(json.dumps(
            {"task": task, "method": "form", "distractors": 0, "seed": i, "normalised_return": 0.1 * i, "return": 1.0}))
    markdown, rows = table(collect(tmp_path))
    assert [(r["task"], r["seeds"]) for r in rows] == [("cartpole-swingup", 2), ("reacher-easy", 1)]
    assert markdown.count("| reacher-easy |") == 1


def test_control_table_command_keeps_its_table_beside_the_runs(tmp_path, capsys):
    from protege.cli.main import main
    for i, score in enumerate([0.2, 0.4]):
        (tmp_path / f"r{i}").mkdir()
        (tmp_path / f"r{i}" / "summary.json").write_text(json.dumps(
            {"method": "form", "distractors": 0, "seed": i, "normalised_return": score, "return": 1.0}))
    main(["eval", "control-table", str(tmp_path)])
    kept = json.loads((tmp_path / "control-table.json").read_text())
    assert kept["runs"] == ["r0", "r1"] and abs(kept["rows"][0]["normalised_return"] - 0.3) < 1e-9
    assert "FORM" in (tmp_path / "control-table.md").read_text()
