"""Agreement between annotators: chance-corrected agreement on labels, and timing agreement of
marks placed on a timeline.

Cohen's kappa (Cohen 1960) compares two raters on the same items, each with their own marginals:
    kappa = (p_o - p_e) / (1 - p_e),   p_o = fraction of items they agree on,
    p_e = sum_c p_a(c) p_b(c)          (chance agreement from each rater's label frequencies).
Fleiss' kappa (Fleiss 1971) generalises to n raters per item with pooled marginals: for N items,
n_ij raters putting item i in category j,
    P_i = (sum_j n_ij^2 - n) / (n (n - 1)),   P_bar = mean_i P_i,
    p_j = sum_i n_ij / (N n),                 P_e = sum_j p_j^2,
    kappa = (P_bar - P_e) / (1 - P_e).
Both are undefined (None) when chance agreement is already perfect (P_e = 1: one category only).
"""

from collections import Counter
from collections.abc import Hashable, Sequence


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters' labels of the same items (a[i], b[i] label item i)."""
    if len(a) != len(b):
        raise ValueError(f"two raters must label the same items: {len(a)} vs {len(b)} labels")
    if not a:
        return None
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    p_e = sum(count_a[c] * count_b[c] for c in count_a) / (n * n)
    return None if p_e == 1 else (p_o - p_e) / (1 - p_e)


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa of a table counts[i][j]: raters who put item i in category j; every item has
    the same number n >= 2 of raters."""
    if not counts:
        return None
    n = sum(counts[0])
    if n < 2 or any(sum(row) != n for row in counts):
        raise ValueError(f"every item needs the same number (>= 2) of raters; got {sorted({sum(r) for r in counts})}")
    items = len(counts)
    p_bar = sum((sum(x * x for x in row) - n) / (n * (n - 1)) for row in counts) / items
    p_j = [sum(row[j] for row in counts) / (items * n) for j in range(len(counts[0]))]
    p_e = sum(p * p for p in p_j)
    return None if p_e == 1 else (p_bar - p_e) / (1 - p_e)


def timing_agreement(a: Sequence[tuple[int, str]], b: Sequence[tuple[int, str]],
                     tolerance: int = 2) -> tuple[int, int]:
    """(matched, total): how many of rater a's marks (step, kind) have a mark of rater b of the same
    kind within `tolerance` steps, out of all of a's marks. Not symmetric; average both directions
    for a symmetric figure."""
    matched = sum(any(kb == ka and abs(sb - sa) <= tolerance for sb, kb in b) for sa, ka in a)
    return matched, len(a)
