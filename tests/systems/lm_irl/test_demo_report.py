import json
import re

import pytest
import yaml

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
    # the terminal: one row per headline metric, with its paired interval and verdict
    for metric in ("held-out NLL", "accuracy", "held-out entropy"):
        assert re.search(rf"{metric} +│ [0-9.]+ ± [0-9.]+ +│ [0-9.]+ ± [0-9.]+ +│ [-+][0-9.]+ \[[-+][0-9.]+, "
                         rf"[-+][0-9.]+\] +│ [0-2]/2 seeds", out), out
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
    # beside: the samples' entropy, self-BLEU, distinct-2 and sampled accuracy, paired, each with its verdict
    beside = {row["metric"]: row for row in markdown_tables(text)[1]}
    assert set(beside) == {"entropy of samples", "self-BLEU", "distinct-2", "sampled acc"}
    assert all(row["verdict"] in {"IQLearn higher", "MLE higher", "no resolved difference"}
               for row in beside.values())
    rows = {row["run"]: row for row in markdown_tables(text)[2]}
    assert set(rows) == set(RUNS)
    for name, summary in summaries.items():
        shown = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
        assert set(rows[name]) == {"run", *shown}
        for key, value in shown.items():
            assert rows[name][key] == cell(value), (name, key)
    assert rows["iqlearn-s0"]["lam"] != "0" and rows["mle-s0"]["lam"] == "0"

    # every plot the report links exists and holds a PNG; the paired plot comes first
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert linked[0] == "paired_heldout.png"
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


def test_demo_refuses_to_reuse_a_run_of_the_other_mode_or_other_settings(tmp_path):
    from protege.core.errors import UserError
    from protege.systems.lm_irl.demo import QUICK, check_same_settings
    (tmp_path / "mle-s0").mkdir()
    (tmp_path / "mle-s0" / "config.yaml").write_text("trainer: {steps: 20}\ntask: {train_size: 500}\n")
    with pytest.raises(UserError, match="run mle-s0 has task.train_size=500, trainer.steps=20, "
                                        "eval.sample_prompts=None, this demo uses 400, 400, 25;"):
        check_same_settings(tmp_path, ["mle-s0", "iqlearn-s0"], quick=False)
    quick = {}
    for override in QUICK:  # a --quick run's config: every setting the quick demo overrides
        key, value = override.split("=")
        quick.setdefault(key.split(".")[0], {})[key.split(".")[1]] = int(value)
    (tmp_path / "mle-s0" / "config.yaml").write_text(yaml.safe_dump(quick))
    check_same_settings(tmp_path, ["mle-s0", "iqlearn-s0"], quick=True)
    # a run of the earlier demo setting (500 examples, 800 steps)
    (tmp_path / "mle-s0" / "config.yaml").write_text("trainer: {steps: 800}\ntask: {train_size: 500}\n"
                                                  "eval: {sample_prompts: 25}\n")
    with pytest.raises(UserError, match="run mle-s0 has task.train_size=500, trainer.steps=800, this demo uses "
                                        "400, 400;"):
        check_same_settings(tmp_path, ["mle-s0"], quick=False)
    # and of the 400-example / 600-step setting measured before this one
    (tmp_path / "mle-s0" / "config.yaml").write_text("trainer: {steps: 600}\ntask: {train_size: 400}\n"
                                                  "eval: {sample_prompts: 25}\n")
    with pytest.raises(UserError, match="run mle-s0 has trainer.steps=600, this demo uses 400;"):
        check_same_settings(tmp_path, ["mle-s0"], quick=False)
    (tmp_path / "mle-s0" / "config.yaml").write_text("trainer: {steps: 400}\ntask: {train_size: 400}\n"
                                                  "eval: {sample_prompts: 25}\n")
    check_same_settings(tmp_path, ["mle-s0"], quick=False)


def test_demo_refuses_finished_runs_made_before_the_headline_was_measured(tmp_path):
    from protege.core.errors import UserError
    from protege.systems.lm_irl.demo import check_headline_measured
    summaries = summaries_of({"eval/greedy_score": ACCURACY, **HELDOUT, **BESIDE})
    check_headline_measured(tmp_path, summaries)
    del summaries["iqlearn-s1"]["eval/heldout_entropy"], summaries["iqlearn-s1"]["eval/heldout_nll"]
    with pytest.raises(UserError, match="run iqlearn-s1 has no eval/heldout_nll, eval/heldout_entropy in its "
                                        "summary.json"):
        check_headline_measured(tmp_path, summaries)


def summaries_of(columns: dict[str, tuple[list[float], list[float]]], examples: int = 400) -> dict:
    """Hand-made summaries of 3 paired seeds: {summary key: (MLE per seed, IQLearn per seed)}."""
    summaries = {}
    for seed in range(3):
        for i, method in enumerate(("mle", "iqlearn")):
            summaries[f"{method}-s{seed}"] = {key: pair[i][seed] for key, pair in columns.items()}
    summaries["mle-s0"]["train_examples"] = examples
    return summaries


BESIDE = {"eval/token_entropy": ([0.128, 0.131, 0.125], [0.169, 0.168, 0.224]),
          "eval/sampled_score": ([0.3] * 3, [0.4] * 3), "eval/self_bleu": ([90.0, 89.0, 91.0], [88.0, 88.5, 90.0]),
          "eval/distinct_2": ([0.25, 0.24, 0.26], [0.27, 0.25, 0.26])}
ACCURACY = ([0.21, 0.27, 0.255], [0.275, 0.24, 0.215])  # paired -0.002, interval spans zero
# held-out NLL (interval spans zero) and entropy (clears it) like the 400-example demos
HELDOUT = {"eval/heldout_nll": ([0.451, 0.437, 0.427], [0.414, 0.383, 0.454]),
           "eval/heldout_entropy": ([0.100, 0.103, 0.098], [0.131, 0.132, 0.150])}


def test_paired_section_reports_each_seed_and_the_t_interval_of_the_differences(tmp_path):
    from protege.eval.stats import mean_interval
    from protege.systems.lm_irl.demo import paired_section, summary_rows
    mle, iq = [0.320, 0.385, 0.305], [0.420, 0.485, 0.365]
    summaries = summaries_of({"eval/greedy_score": (mle, iq), **HELDOUT, **BESIDE}, examples=500)
    rows = summary_rows(summaries, (0, 1, 2))
    assert [r["seed"] for r in rows] == ["0", "1", "2", "mean ± 95% (t)"]
    assert rows[1]["IQLearn - MLE accuracy"] == pytest.approx(0.100)
    assert rows[0]["IQLearn - MLE held-out entropy"] == pytest.approx(0.031)
    assert rows[2]["MLE held-out NLL"] == 0.427
    mean, low, high = mean_interval([0.100, 0.100, 0.060])
    assert rows[-1]["IQLearn - MLE accuracy"] == f"{mean:+.3f} ± {high - mean:.3f}" == "+0.087 ± 0.057"
    assert rows[-1]["MLE accuracy"].startswith("0.337 ± ")

    lines = paired_section(tmp_path, summaries, (0, 1, 2))
    assert lines[0] == "## MLE against IQLearn, 3 paired seeds, 500 training examples"
    assert (f"accuracy: +0.087 (95% t-interval {low:+.3f} to {high:+.3f}; IQLearn higher on 3/3 seeds): "
            f"IQLearn higher.") in "\n".join(lines)
    png = (tmp_path / "paired_heldout.png").read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 5000


HEADLINE = [("eval/heldout_nll", "held-out NLL"), ("eval/greedy_score", "accuracy"),
            ("eval/heldout_entropy", "held-out entropy")]


def test_headline_is_read_off_the_three_intervals(tmp_path):
    from protege.eval.stats import mean_interval
    from protege.systems.lm_irl.demo import paired_section, paired_verdicts
    # entropy higher on every seed and tight: its interval clears zero; NLL and accuracy span it
    clear = summaries_of({"eval/greedy_score": ACCURACY, **HELDOUT, **BESIDE})
    nll, accuracy, entropy = paired_verdicts(clear, (0, 1, 2), HEADLINE)
    mean, low, high = mean_interval([0.031, 0.029, 0.052])
    assert entropy["IQLearn - MLE"] == pytest.approx(mean) and entropy["low"] == pytest.approx(low)
    assert low > 0 and entropy["verdict"] == "IQLearn higher"
    assert nll["verdict"] == accuracy["verdict"] == "no resolved difference"
    text = "\n".join(paired_section(tmp_path, clear, (0, 1, 2)))
    assert "IQLearn's policy stays less peaked on held-out answers, at equal held-out NLL and accuracy." in text
    assert (f"held-out entropy: {mean:+.3f} (95% t-interval {low:+.3f} to {high:+.3f}; IQLearn higher on 3/3 "
            f"seeds): IQLearn higher.") in text
    assert ("accuracy: -0.002 (95% t-interval -0.146 to +0.142; IQLearn higher on 1/3 seeds): no resolved "
            "difference.") in text
    assert "| mean ± 95% (t) |" in text and f"| {mean:+.3f} ± {high - mean:.3f} |" in text
    # the samples' entropy is reported beside, with its own verdict (here its interval spans zero)
    beside = next(line for line in text.splitlines() if line.startswith("| entropy of samples |"))
    assert beside.startswith("| entropy of samples | 0.059 |") and "| 3/3 seeds | no resolved difference |" in beside

    # NLL lower for IQLearn on every seed, interval below zero: lower is better, so "IQLearn lower"
    # and the sentence says MLE over-fits more
    lower_nll = summaries_of({"eval/greedy_score": ACCURACY, **BESIDE,
                              "eval/heldout_entropy": HELDOUT["eval/heldout_entropy"],
                              "eval/heldout_nll": ([0.392, 0.389, 0.373], [0.372, 0.359, 0.348])})
    nll = paired_verdicts(lower_nll, (0, 1, 2), HEADLINE)[0]
    assert nll["high"] < 0 and nll["verdict"] == "IQLearn lower" and nll["IQLearn higher on"] == "0/3 seeds"
    text = "\n".join(paired_section(tmp_path, lower_nll, (0, 1, 2)))
    assert ("MLE over-fits more: IQLearn keeps a lower NLL on held-out answers and a less peaked policy, at "
            "equal accuracy.") in text
    assert "held-out NLL: -0.025 (95% t-interval" in text and "): IQLearn lower." in text
    higher_nll = summaries_of({"eval/greedy_score": ACCURACY, **BESIDE,
                               "eval/heldout_entropy": HELDOUT["eval/heldout_entropy"],
                               "eval/heldout_nll": ([0.372, 0.359, 0.348], [0.392, 0.389, 0.373])})
    assert paired_verdicts(higher_nll, (0, 1, 2), HEADLINE)[0]["verdict"] == "MLE lower"
    text = "\n".join(paired_section(tmp_path, higher_nll, (0, 1, 2)))
    assert ("Held-out NLL: MLE lower; accuracy: no resolved difference; held-out entropy: IQLearn higher."
            in text)
    assert "over-fits" not in text and "less peaked" not in text

    # every seed higher but spread: the interval spans zero, so no verdict for IQLearn
    spread = summaries_of({"eval/greedy_score": ACCURACY, **HELDOUT, **BESIDE,
                           "eval/heldout_entropy": ([0.124, 0.149, 0.122], [0.188, 0.174, 0.176])})
    text = "\n".join(paired_section(tmp_path, spread, (0, 1, 2)))
    assert ("Held-out NLL: no resolved difference; accuracy: no resolved difference; held-out entropy: no "
            "resolved difference.") in text
    assert "less peaked" not in text

    # MLE higher when the interval lies below zero
    lower = summaries_of({"eval/greedy_score": ACCURACY, **HELDOUT, **BESIDE,
                          "eval/heldout_entropy": ([0.151, 0.141, 0.139], [0.103, 0.096, 0.110])})
    assert paired_verdicts(lower, (0, 1, 2), [("eval/heldout_entropy", "e")])[0]["verdict"] == "MLE higher"


def test_seed_labels_of_close_points_share_one_label():
    from protege.eval.report import _labels_apart
    assert _labels_apart([(0.23, 1), (0.23, 2), (0.195, 0)], span=0.06) == [(0.195, [0]), (0.23, [1, 2])]
    assert _labels_apart([(0.131, 0), (0.150, 2), (0.132, 1)], span=0.05) == [(pytest.approx(0.1315), [0, 1]),
                                                                             (0.150, [2])]
    assert _labels_apart([(1.0, 0), (1.0, 1)], span=0.0) == [(1.0, [0, 1])]
