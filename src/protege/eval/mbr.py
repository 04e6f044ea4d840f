"""Minimum Bayes risk (MBR) selection: of a model's candidate outputs, the one that agrees most with
the others under the task's own metric.

With candidates y_1..y_n drawn from the model (and its greedy output among them), MBR decoding picks

    y* = argmax_i  sum_{j != i} u(y_i, y_j)

the Monte Carlo estimate of the candidate with the highest expected utility u when the reference is
distributed as the model believes (Kumar & Byrne 2004; for sampled candidates and a text metric as
utility, Freitag et al., arXiv:2111.09388, and Bertsch et al., arXiv:2310.01387). With exact-match
utility it is a majority vote over the candidates. Written here because it is a few lines over any
utility, and the libraries that offer it (e.g. `mbrs`) bring their own metric stacks.
"""

from collections import Counter
from collections.abc import Callable

Utility = Callable[[str, str], float]
"""u(hypothesis, pseudo-reference)"""


def expected_utilities(candidates: list[str], utility: Utility) -> list[float]:
    """For each candidate i, sum over the other candidates j (by position, j != i) of u(y_i, y_j).
    Each ordered pair of distinct texts is scored once: sampled candidates repeat, often many times."""
    counts = Counter(candidates)
    distinct = list(counts)
    total = {}
    for a in distinct:
        total[a] = sum(counts[b] * utility(a, b) for b in distinct) - utility(a, a)
    return [total[c] for c in candidates]


def mbr_pick(candidates: list[str], utility: Utility) -> int:
    """Index of the candidate with the highest expected utility against the others (the first among
    equals, so list the greedy output first to have it win ties)."""
    if not candidates:
        raise ValueError("MBR needs at least one candidate")
    scores = expected_utilities(candidates, utility)
    return max(range(len(candidates)), key=lambda i: (scores[i], -i))
