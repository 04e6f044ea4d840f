"""Paired bootstrap, McNemar, Connor's power formula and Kendall's tau against naive references."""

import itertools
import math

import numpy as np
import pytest

from protege.eval.ranking import (
    bootstrap_indices,
    kendall_tau,
    kendall_tau_interval,
    mcnemar,
    paired_bootstrap,
    pairwise,
    scenarios_needed,
)

OUTCOMES = np.array([[1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1],
                     [1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1],
                     [0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0]], bool)


def naive_bootstrap(outcomes, indices):
    """Loop over replicates: rates, ranks (1 best, ties share the best), pairwise wins."""
    A = len(outcomes)
    rates = [[sum(outcomes[a][j] for j in row) / len(row) for a in range(A)] for row in indices]
    rank = [[1 + sum(r[b] > r[a] for b in range(A)) for a in range(A)] for r in rates]
    win = [[sum((r[a] > r[b]) + 0.5 * (r[a] == r[b]) for r in rates) / len(rates) for b in range(A)]
           for a in range(A)]
    return rates, rank, win


def test_paired_bootstrap_matches_a_naive_loop():
    indices = bootstrap_indices(OUTCOMES.shape[1], 300, np.random.default_rng(3))
    got = paired_bootstrap(OUTCOMES, indices=indices)
    rates, rank, win = naive_bootstrap(OUTCOMES.tolist(), indices.tolist())
    np.testing.assert_allclose(got["replicate_rates"], rates)
    for a in range(3):
        ranks_a = sorted(r[a] for r in rank)
        assert got["rank_lo"][a] == ranks_a[math.floor(0.025 * (len(ranks_a) - 1))]
        assert got["rank_hi"][a] == ranks_a[math.ceil(0.975 * (len(ranks_a) - 1))]
        for b in range(3):
            if a != b:
                assert got["win"][a, b] == pytest.approx(win[a][b])
    assert list(got["rank"]) == [1, 2, 3]


def naive_binomial_p(k: int, n: int) -> float:
    """Two-sided exact binomial test at 1/2: sum of the outcomes no likelier than k."""
    pk = math.comb(n, k) / 2 ** n
    return min(1.0, sum(math.comb(n, i) / 2 ** n for i in range(n + 1) if math.comb(n, i) / 2 ** n <= pk * (1 + 1e-7)))


def test_mcnemar_exact_and_chi2_match_hand_computations():
    a, b = OUTCOMES[0], OUTCOMES[2]
    test = mcnemar(a, b)
    only_a, only_b = 7, 0
    assert (test["only_a"], test["only_b"], test["exact"]) == (only_a, only_b, True)
    assert test["p"] == pytest.approx(naive_binomial_p(only_a, only_a + only_b))
    rng = np.random.default_rng(1)
    x, y = rng.random(400) < 0.6, rng.random(400) < 0.5
    test = mcnemar(x, y)
    n10, n01 = int((x & ~y).sum()), int((~x & y).sum())
    statistic = (abs(n10 - n01) - 1) ** 2 / (n10 + n01)
    assert not test["exact"] and test["statistic"] == pytest.approx(statistic)
    assert test["p"] == pytest.approx(math.erfc(math.sqrt(statistic / 2)))  # chi2 sf, 1 dof
    assert mcnemar(a, a)["p"] == 1.0


def test_scenarios_needed_is_connors_formula_and_flags_underpowered_pairs():
    a = np.array([1] * 30 + [0] * 10 + [1] * 40 + [0] * 20, bool)
    b = np.array([0] * 30 + [1] * 10 + [1] * 40 + [0] * 20, bool)
    psi, delta = 0.4, 0.2
    expected = math.ceil((1.959964 * math.sqrt(psi) + 0.841621 * math.sqrt(psi - delta ** 2)) ** 2 / delta ** 2)
    assert scenarios_needed(a, b) == expected
    assert scenarios_needed(a, a) == math.inf
    small = pairwise(np.stack([a[::10], b[::10]]), ["a", "b"])[0]
    assert small["underpowered"] and small["needed"] > 10
    assert not pairwise(np.stack([a, b]), ["a", "b"])[0]["underpowered"]


def naive_tau(x, y) -> float:
    pairs = list(itertools.combinations(range(len(x)), 2))
    s = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in pairs)
    return s / len(pairs)


def test_kendall_tau_and_its_interval():
    x, y = np.array([0.9, 0.7, 0.5, 0.3, 0.1]), np.array([0.8, 0.75, 0.2, 0.4, 0.05])
    assert kendall_tau(x, y) == pytest.approx(naive_tau(x, y))
    rng = np.random.default_rng(0)
    x_rep = x + rng.normal(0, 0.05, (200, 5))
    y_rep = y + rng.normal(0, 0.05, (200, 5))
    tau, lo, hi = kendall_tau_interval(x, y, x_rep, y_rep)
    taus = sorted(naive_tau(a, b) for a, b in zip(x_rep, y_rep))
    assert lo == pytest.approx(np.quantile(taus, 0.025)) and hi == pytest.approx(np.quantile(taus, 0.975))
    assert lo <= tau <= hi
