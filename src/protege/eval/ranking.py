"""Ranking agents evaluated on the same items (scenarios): paired bootstrap, McNemar, power, Kendall.

Outcomes are a boolean matrix [A agents, S scenarios]; column s is one scenario judged for every
agent, so comparisons are paired. The paired bootstrap (Efron & Tibshirani 1993, ch. 6) resamples
scenarios (columns) with replacement, the same columns for every agent, and recomputes every
agent's success rate; from B replicates come each agent's rank interval (2.5 and 97.5 percentiles
of its rank; rank 1 is best, ties share the best rank) and each pair's win probability
P(rate_a > rate_b) (ties count one half). McNemar's test (McNemar 1947) compares two agents on
their discordant scenarios only: b = a succeeded where b failed, c = the reverse; exact binomial
test of b ~ Bin(b + c, 1/2) when b + c < 25, else chi-square with continuity correction
(|b - c| - 1)^2 / (b + c) on 1 degree of freedom (scipy). The number of scenarios a paired
comparison needs for power 1 - beta at level alpha is Connor's (1987) formula
    n = (z_{1-alpha/2} sqrt(psi) + z_{1-beta} sqrt(psi - delta^2))^2 / delta^2,
with psi = p10 + p01 the discordant proportion and delta = p10 - p01 the observed difference.
Kendall's tau between two rankings (scipy.stats.kendalltau, tau-b) gets a bootstrap interval from
replicates of both rankings' scores.
"""

import math

import numpy as np

RESAMPLES = 2000
"""bootstrap replicates (the rank and tau intervals are stable to about 0.01 at this many)"""


def _check_outcomes(outcomes) -> np.ndarray:
    x = np.asarray(outcomes)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"outcomes must be [agents, scenarios] with both >= 1, got shape {x.shape}")
    return x.astype(bool)


def bootstrap_indices(n_items: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """[B, n] column indices drawn with replacement: one bootstrap replicate per row."""
    return rng.integers(0, n_items, size=(resamples, n_items))


def ranks(scores: np.ndarray) -> np.ndarray:
    """Rank of each column per row (1 = highest score; ties share the best rank): [B, A] -> [B, A].
    1 + the number of agents scoring strictly higher: scipy's rankdata(method="min") per row, but
    broadcast in one step (rankdata along an axis loops over rows in Python: seconds for B = 2000)."""
    x = np.asarray(scores, np.float64)
    return 1 + (x[..., None, :] > x[..., :, None]).sum(axis=-1)


def paired_bootstrap(outcomes, resamples: int = RESAMPLES, seed: int = 0,
                     indices: np.ndarray | None = None) -> dict:
    """Per agent: rate, rank, rank interval [lo, hi]; per pair: win probability. Returns
    {rates [A], rank [A], rank_lo [A], rank_hi [A], win [A, A] (P(row beats column)),
    replicate_rates [B, A]}."""
    x = _check_outcomes(outcomes)
    if indices is None:
        indices = bootstrap_indices(x.shape[1], resamples, np.random.default_rng(seed))
    replicate_rates = x[:, indices].mean(axis=2).T  # [B, A]
    replicate_ranks = ranks(replicate_rates)
    rates = x.mean(axis=1)
    a = replicate_rates[:, :, None]
    b = replicate_rates[:, None, :]
    win = ((a > b) + 0.5 * (a == b)).mean(axis=0)
    np.fill_diagonal(win, np.nan)
    return {"rates": rates, "rank": ranks(rates[None])[0],
            "rank_lo": np.quantile(replicate_ranks, 0.025, axis=0, method="lower").astype(np.int64),
            "rank_hi": np.quantile(replicate_ranks, 0.975, axis=0, method="higher").astype(np.int64),
            "win": win, "replicate_rates": replicate_rates}


def mcnemar(a, b, exact: bool | None = None) -> dict:
    """McNemar's test of paired binary outcomes a [S], b [S]: {only_a: successes of a alone (b),
    only_b: of b alone (c), statistic, p, exact}. `exact` None: exact when b + c < 25."""
    from scipy.stats import binomtest, chi2
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired outcomes need equal 1-D shapes, got {a.shape} and {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    exact = n < 25 if exact is None else exact
    if n == 0:
        return {"only_a": 0, "only_b": 0, "statistic": 0.0, "p": 1.0, "exact": exact}
    if exact:
        return {"only_a": only_a, "only_b": only_b, "statistic": float(min(only_a, only_b)),
                "p": float(binomtest(only_a, n, 0.5).pvalue), "exact": True}
    statistic = (abs(only_a - only_b) - 1) ** 2 / n
    return {"only_a": only_a, "only_b": only_b, "statistic": float(statistic), "p": float(chi2.sf(statistic, 1)),
            "exact": False}


def scenarios_needed(a, b, alpha: float = 0.05, power: float = 0.8) -> float:
    """Scenarios a paired comparison of a [S] and b [S] needs to detect the observed difference
    with McNemar's test (Connor 1987); inf when no difference was observed."""
    from scipy.stats import norm
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    p10, p01 = float((a & ~b).mean()), float((~a & b).mean())
    psi, delta = p10 + p01, p10 - p01
    if delta == 0:
        return math.inf
    z_a, z_b = norm.ppf(1 - alpha / 2), norm.ppf(power)
    return math.ceil((z_a * math.sqrt(psi) + z_b * math.sqrt(max(psi - delta * delta, 0.0))) ** 2 / delta ** 2)


def pairwise(outcomes, names: list[str], alpha: float = 0.05, power: float = 0.8) -> list[dict]:
    """McNemar for every pair of agents, with the scenarios needed when the difference is not
    significant at `alpha` and the set is smaller than what power `power` needs (underpowered)."""
    x = _check_outcomes(outcomes)
    rows = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            test = mcnemar(x[i], x[j])
            needed = scenarios_needed(x[i], x[j], alpha, power)
            underpowered = test["p"] >= alpha and needed > x.shape[1]
            rows.append({"a": names[i], "b": names[j], **test, "needed": needed,
                         "underpowered": underpowered})
    return rows


def kendall_tau(x, y) -> float:
    """Kendall's tau-b between two score vectors over the same agents (nan if either is constant)."""
    from scipy.stats import kendalltau
    return float(kendalltau(np.asarray(x, np.float64), np.asarray(y, np.float64)).statistic)


def kendall_tau_interval(x, y, x_replicates, y_replicates, confidence: float = 0.95) -> tuple[float, float, float]:
    """(tau, low, high): tau of the scores x [A] and y [A] with the percentile interval of tau over
    paired bootstrap replicates x_replicates [B, A], y_replicates [B, A] (replicates whose tau is
    undefined, a constant row, are left out)."""
    tau = kendall_tau(x, y)
    taus = np.asarray([kendall_tau(a, b) for a, b in zip(x_replicates, y_replicates)])
    taus = taus[~np.isnan(taus)]
    if len(taus) == 0:
        return tau, float("nan"), float("nan")
    tail = (1 - confidence) / 2
    return tau, float(np.quantile(taus, tail)), float(np.quantile(taus, 1 - tail))
