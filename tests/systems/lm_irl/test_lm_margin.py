"""scripts/lm_margin.py: the margin of a model over each trivial baseline, and two methods over seeds."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[3] / "scripts" / "lm_margin.py"


@pytest.fixture(scope="module")
def lm_margin():
    spec = importlib.util.spec_from_file_location("lm_margin", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_margin_row_pairs_prompts_and_picks_the_best_baseline_on_these_prompts(lm_margin):
    scores = {"model": [0.5, 0.2, 0.4, 0.1], "empty": [0.0] * 4, "most_common": [0.1, 0.1, 0.0, 0.1],
              "best_constant": [0.3, 0.3, 0.1, 0.2], "retrieval": [0.6, 0.0, 0.0, 0.0]}
    row = lm_margin.margin_row(scores)
    assert row["model"] == pytest.approx(0.3)
    assert row["best"] == "best_constant"  # mean 0.225, above retrieval's 0.15
    diffs = [0.2, -0.1, 0.3, -0.1]  # paired prompt by prompt, not mean minus mean with two spreads
    mean = sum(diffs) / 4
    sd = (sum((d - mean) ** 2 for d in diffs) / 3) ** 0.5
    half = 3.182446305284263 * sd / 2  # t(0.975, 3) * sd / sqrt(4)
    assert row["model-best"] == pytest.approx((mean, mean - half, mean + half))
    assert row["model-best"] == row["model-best_constant"]


def test_seed_table_differences_are_per_seed_with_a_t_interval_over_seeds(lm_margin):
    def row(model, best):
        return {"model": model, "best": "best_constant", "best_constant": best}
    first = [row(0.12, 0.10), row(0.14, 0.11), row(0.13, 0.10)]
    second = [row(0.11, 0.10), row(0.15, 0.11), row(0.12, 0.10)]
    lines, means = lm_margin.seed_table(first, second)
    assert len(lines) == 2 + 3 + 1
    assert lines[2] == "| 0 | 0.120 | 0.110 | -0.010 | 0.100 | 0.020 |"
    mean, low, high = means["second-first"]
    assert mean == pytest.approx(-0.01 / 3)
    assert low < mean < high
    assert means["first-best"][0] == pytest.approx((0.02 + 0.03 + 0.03) / 3)
    assert lines[-1].startswith("| mean [95% t] | 0.130 [")
