import math

import pytest

from protege.eval.stats import wilson_interval


def test_wilson_interval():
    lo, hi = wilson_interval(96, 100)
    assert lo == pytest.approx(0.9016, abs=1e-3) and hi == pytest.approx(0.9843, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0 and 0 < wilson_interval(0, 10)[1] < 0.35
    assert wilson_interval(10, 10)[1] == 1 and wilson_interval(0, 0) == (0.0, 1.0)
    # it contains p and shrinks like 1/sqrt(n)
    a, b = wilson_interval(500, 1000)
    assert a < 0.5 < b and math.isclose(b - a, 2 * 1.96 * math.sqrt(0.25 / 1000), rel_tol=0.01)
    with pytest.raises(ValueError):
        wilson_interval(5, 3)
