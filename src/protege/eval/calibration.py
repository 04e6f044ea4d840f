"""Binary classifiers judged like SuccessVQA (arXiv:2303.07280): balanced accuracy, and calibration
by the expected calibration error (Naeini et al. 2015; Guo et al. 2017, arXiv:1706.04599).

Balanced accuracy = (TPR + TNR) / 2: the mean of the recall of each class, so that a judge saying
"success" to everything scores 0.5 however rare failures are.

ECE of the predicted success probability p_i (binary form: the reliability of P(y = 1), not of the
top-class confidence): M equal-width bins B_m over [0, 1],
    ECE = sum_m |B_m| / n * | mean_{i in B_m} y_i - mean_{i in B_m} p_i |
(an empty bin contributes nothing; p = 1 falls in the last bin).
"""

import numpy as np


def balanced_accuracy(predicted, labels) -> float:
    """(TPR + TNR) / 2 of boolean predictions; a class absent from `labels` is left out of the
    mean (then it is the plain accuracy on the present class)."""
    predicted, labels = np.asarray(predicted, bool), np.asarray(labels, bool)
    if len(predicted) != len(labels):
        raise ValueError(f"{len(predicted)} predictions for {len(labels)} labels")
    if not len(labels):
        return float("nan")
    recalls = [float((predicted[labels == c] == c).mean()) for c in (True, False) if (labels == c).any()]
    return float(np.mean(recalls))


def expected_calibration_error(probabilities, labels, bins: int = 10) -> float:
    """ECE of success probabilities against boolean labels over `bins` equal-width bins."""
    p, y = np.asarray(probabilities, np.float64), np.asarray(labels, np.float64)
    if len(p) != len(y):
        raise ValueError(f"{len(p)} probabilities for {len(y)} labels")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if not len(p):
        return float("nan")
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for m in range(bins):
        inside = index == m
        if inside.any():
            total += inside.sum() / len(p) * abs(y[inside].mean() - p[inside].mean())
    return float(total)


def bootstrap_interval(statistic, *columns, resamples: int = 1000, seed: int = 0,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic(*columns)` resampling rows (items) with
    replacement; resamples where the statistic is undefined (nan) are dropped."""
    arrays = [np.asarray(c) for c in columns]
    n = len(arrays[0])
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        rows = rng.integers(0, n, n)
        values.append(statistic(*(a[rows] for a in arrays)))
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))
