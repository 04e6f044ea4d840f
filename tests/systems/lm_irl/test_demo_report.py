import json
import re

import pytest

RUNS = ("mle-s0", "iqlearn-s0", "mle-s1", "iqlearn-s1")  # the quick demo: 2 methods x 2 seeds


def markdown_tables(text: str) -> list[list[dict[str, str]]]:
    """Each markdown table in `text` as a list of {column: cell} rows."""
    tables, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip("|").split("|")])
        elif block:
            tables.append([dict(zip(block[0], row)) for row in block[2:]])
            block = []
    return tables


def cell(value) -> str:
    """How the report writes a summary value (4 significant digits for floats)."""
    return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))


@pytest.mark.slow
def test_quick_demo_trains_both_methods_over_paired_seeds_and_writes_a_report(cli, tmp_path):
    code, out = cli("demo", "--quick", "--out", "runs/demo")
    assert code == 0, out
    assert "IQLearn - MLE accuracy" in out and "mean ± 95% (t)" in out
    demo = tmp_path / "runs" / "demo"
    report = demo / "report" / "report.md"
    assert report.exists()
    text = report.read_text()

    # the headline: per seed, each method's held-out accuracy and the paired difference, from the
    # runs' own summary.json; the interval row is the t-interval of those differences
    summaries = {r: json.loads((demo / r / "summary.json").read_text()) for r in RUNS}
    assert {summaries[f"mle-s{s}"]["method"] for s in (0, 1)} == {"mle"}
    assert {summaries[f"iqlearn-s{s}"]["method"] for s in (0, 1)} == {"iqlearn"}
    assert summaries["mle-s0"]["train_examples"] == 500
    paired = {row["seed"]: row for row in markdown_tables(text)[0]}
    diffs = []
    for seed in (0, 1):
        mle, iq = (summaries[f"{m}-s{seed}"]["eval/greedy_score"] for m in ("mle", "iqlearn"))
        row = paired[str(seed)]
        assert row["MLE accuracy"] == f"{mle:.3f}" and row["IQLearn accuracy"] == f"{iq:.3f}"
        assert row["IQLearn - MLE accuracy"] == f"{iq - mle:.3f}"
        diffs.append(iq - mle)
    from protege.eval.stats import mean_interval
    mean, _, high = mean_interval(diffs)
    assert paired["mean ± 95% (t)"]["IQLearn - MLE accuracy"] == f"{mean:+.3f} ± {high - mean:.3f}"

    # the runs' table: one row per run, every number in it the run's own summary.json
    rows = {row["run"]: row for row in markdown_tables(text)[1]}
    assert set(rows) == set(RUNS)
    for name, summary in summaries.items():
        shown = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
        assert set(rows[name]) == {"run", *shown}
        for key, value in shown.items():
            assert rows[name][key] == cell(value), (name, key)
    assert rows["iqlearn-s0"]["lam"] != "0" and rows["mle-s0"]["lam"] == "0"

    # every plot the report links exists and holds a PNG; the paired plot comes first
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert linked[0] == "paired_accuracy.png"
    assert {"score_vs_diversity.png", "train_loss.png"} <= set(linked)
    for name in linked:
        data = (report.parent / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000, name

    # a second demo reuses the finished runs instead of training them again
    before = {r: (demo / r / "metrics.jsonl").read_text() for r in RUNS}
    stamps = {r: (demo / r / "summary.json").stat().st_mtime_ns for r in RUNS}
    code, out = cli("demo", "--quick", "--out", "runs/demo")
    assert code == 0, out
    assert {r: (demo / r / "metrics.jsonl").read_text() for r in RUNS} == before
    assert {r: (demo / r / "summary.json").stat().st_mtime_ns for r in RUNS} == stamps


def test_report_of_a_non_run_is_a_clear_error(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out = cli("report", "empty")
    assert code == 2 and "no metrics.jsonl" in out and "Traceback" not in out


def test_demo_refuses_a_file_or_a_foreign_folder_before_any_work(tmp_path):
    from protege.core.errors import UserError
    from protege.systems.lm_irl.demo import check_demo_folder
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        check_demo_folder(tmp_path / "file")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds other files \\(notes.txt\\)"):
        check_demo_folder(tmp_path / "other")
    (tmp_path / "again" / "mle-s1").mkdir(parents=True)
    (tmp_path / "again" / "report").mkdir()
    (tmp_path / "again" / "mle").mkdir()  # a single-seed run of an older demo
    check_demo_folder(tmp_path / "again")  # an earlier demo's output is fine
    check_demo_folder(tmp_path / "new")


def test_demo_refuses_to_reuse_a_run_of_the_other_mode(tmp_path):
    from protege.core.errors import UserError
    from protege.systems.lm_irl.demo import check_same_settings
    (tmp_path / "mle-s0").mkdir()
    (tmp_path / "mle-s0" / "config.yaml").write_text("trainer: {steps: 20}\n")
    with pytest.raises(UserError, match="run mle-s0 has trainer.steps=20, this demo trains 800"):
        check_same_settings(tmp_path, ["mle-s0", "iqlearn-s0"], quick=False)
    check_same_settings(tmp_path, ["mle-s0", "iqlearn-s0"], quick=True)


def test_paired_section_reports_each_seed_and_the_t_interval_of_the_differences(tmp_path):
    from protege.eval.stats import mean_interval
    from protege.systems.lm_irl.demo import paired_section, summary_rows
    mle, iq = [0.320, 0.385, 0.305], [0.420, 0.485, 0.365]
    summaries = {}
    for seed in range(3):
        summaries[f"mle-s{seed}"] = {"eval/greedy_score": mle[seed], "eval/sampled_score": 0.3,
                                     "train_examples": 500}
        summaries[f"iqlearn-s{seed}"] = {"eval/greedy_score": iq[seed], "eval/sampled_score": 0.4}
    rows = summary_rows(summaries, (0, 1, 2))
    assert [r["seed"] for r in rows] == ["0", "1", "2", "mean ± 95% (t)"]
    assert rows[1]["IQLearn - MLE accuracy"] == pytest.approx(0.100)
    mean, low, high = mean_interval([0.100, 0.100, 0.060])
    assert rows[-1]["IQLearn - MLE accuracy"] == f"{mean:+.3f} ± {high - mean:.3f}" == "+0.087 ± 0.057"
    assert rows[-1]["MLE accuracy"].startswith("0.337 ± ")

    lines = paired_section(tmp_path, summaries, (0, 1, 2))
    assert lines[0] == "## MLE against IQLearn, 3 paired seeds, 500 training examples"
    assert f"+0.087 (95% t-interval {low:+.3f} to {high:+.3f})" in lines[2]
    png = (tmp_path / "paired_accuracy.png").read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 5000
