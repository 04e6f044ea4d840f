import json
import re

import pytest

METHODS = ("mle", "iqlearn")


def markdown_rows(text: str) -> dict[str, dict[str, str]]:
    """{run name: {column: cell}} of the first markdown table in `text`."""
    lines = [l for l in text.splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in l.strip("|").split("|")))) for l in lines[2:]]
    return {row["run"]: row for row in rows}


def cell(value) -> str:
    """How the report writes a summary value (4 significant digits for floats)."""
    return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))


@pytest.mark.slow
def test_quick_demo_trains_both_methods_and_writes_a_report(cli, tmp_path):
    code, out = cli("demo", "--quick", "--out", "runs/demo")
    assert code == 0, out
    assert "Self-BLEU" in out and "iqlearn" in out and "mle" in out
    demo = tmp_path / "runs" / "demo"
    report = demo / "report" / "report.md"
    assert report.exists()
    text = report.read_text()

    # one row per method, and every number in it is the run's own summary.json
    rows = markdown_rows(text)
    assert set(rows) == set(METHODS)
    summaries = {m: json.loads((demo / m / "summary.json").read_text()) for m in METHODS}
    assert summaries["mle"]["method"] == "mle" and summaries["iqlearn"]["method"] == "iqlearn"
    for method, summary in summaries.items():
        shown = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
        assert set(rows[method]) == {"run", *shown}
        for key, value in shown.items():
            assert rows[method][key] == cell(value), (method, key)
    assert rows["iqlearn"]["lam"] != "0" and rows["mle"]["lam"] == "0"

    # every plot the report links exists and holds a PNG; the comparison plots are among them
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"score_vs_diversity.png", "train_loss.png"} <= set(linked)
    for name in linked:
        data = (report.parent / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000, name

    # a second demo reuses the finished runs instead of training them again
    before = {m: (demo / m / "metrics.jsonl").read_text() for m in METHODS}
    stamps = {m: (demo / m / "summary.json").stat().st_mtime_ns for m in METHODS}
    code, out = cli("demo", "--quick", "--out", "runs/demo")
    assert code == 0, out
    assert {m: (demo / m / "metrics.jsonl").read_text() for m in METHODS} == before
    assert {m: (demo / m / "summary.json").stat().st_mtime_ns for m in METHODS} == stamps


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
    (tmp_path / "again" / "mle").mkdir(parents=True)
    check_demo_folder(tmp_path / "again")  # an earlier demo's output is fine
    check_demo_folder(tmp_path / "new")
