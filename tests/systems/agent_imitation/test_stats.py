import math

import pytest

from protege.eval.stats import mean_interval, wilson_interval


def test_wilson_interval_known_values():
    assert wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    lo, hi = wilson_interval(0, 8)
    assert lo == 0.0 and hi == pytest.approx(0.3244, abs=1e-4)
    assert wilson_interval(8, 8)[1] == 1.0 and wilson_interval(0, 0) == (0.0, 1.0)


def test_mean_interval_is_student_t():
    mean, lo, hi = mean_interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182446 * math.sqrt(5 / 3) / 2  # t_{0.975, 3} * s / sqrt(n)
    assert mean == 2.5 and lo == pytest.approx(2.5 - half, abs=1e-5) and hi == pytest.approx(2.5 + half, abs=1e-5)
