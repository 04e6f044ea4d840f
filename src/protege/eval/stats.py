"""Small statistics shared by evaluators."""

import math


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial rate (95% for z = 1.96); (0, 1) when n == 0.

    Unlike the normal approximation p +- z sqrt(p(1-p)/n), it stays inside [0, 1] and does not
    collapse to a zero-width interval at p = 0 or 1 (Wilson 1927; Brown, Cai & DasGupta 2001).
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} outside [0, n={n}]")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval for the mean of `values` (normal for large n)."""
    import numpy as np
    from scipy import stats
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if len(x) == 1:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def spearman(x, y) -> float:
    """Spearman's rank correlation: Pearson's correlation of the average ranks (ties share the mean of
    their ranks); nan when either input is constant, has a nan, or has fewer than 2 values. The same
    steps as `scipy.stats.spearmanr(x, y).statistic` (its ranks, then numpy's corrcoef, the same
    matrix entry), so the same float; written here because importing scipy.stats costs more CPU
    than a small model's whole `eval lm` (tested against scipy, ties included)."""
    import numpy as np
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if len(x) != len(y):
        raise ValueError(f"spearman needs two sequences of one length, got {len(x)} and {len(y)}")
    if len(x) < 2 or (x == x[0]).all() or (y == y[0]).all() or np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    return float(np.corrcoef(np.column_stack((average_ranks(x), average_ranks(y))), rowvar=False)[1, 0])


def average_ranks(values):
    """Ranks from 1 (float64), tied values sharing the mean of the ranks they span."""
    import numpy as np
    values = np.asarray(values)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)  # ranks starts+1 .. ends, averaged
    return ranks
