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
