def test_quick_demo_trains_both_methods_and_writes_a_report(cli, tmp_path):
    code, out = cli("demo", "--quick", "--out", "runs/demo")
    assert code == 0, out
    assert "Self-BLEU" in out and "iqlearn" in out
    report = tmp_path / "runs" / "demo" / "report"
    text = (report / "report.md").read_text()
    assert "score_vs_diversity.png" in text and "| mle |" in text and "| iqlearn |" in text
    assert (report / "score_vs_diversity.png").stat().st_size > 1000
    assert (report / "train_loss.png").exists()
    # a second demo reuses the finished runs instead of training again
    code, out = cli("demo", "--quick", "--out", "runs/demo")
    assert code == 0, out


def test_report_of_a_non_run_is_a_clear_error(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out = cli("report", "empty")
    assert code == 2 and "no metrics.jsonl" in out and "Traceback" not in out
