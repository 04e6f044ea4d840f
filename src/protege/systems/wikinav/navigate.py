"""Navigate from source pages to target pages by following links chosen by a scorer, many pairs at once.

A scorer is `score(cur[B], goal[B], cand[M], seg[M]) -> float array [M]` over the concatenated
links of the B current pages (`seg` = row of each link, see `policy.candidates`); the navigator
takes the best-scoring link. Greedy mode may revisit pages (and so loop); backtracking mode never
revisits a page and, when every link of the current page is visited or it has none, steps back to
the previous page of its path (a step, counted against the budget) -- a depth-first search ordered
by the scorer.
"""

import numpy as np
import torch

from protege.nn.link_scorer import candidates


def navigate(graph, score, sources: np.ndarray, goals: np.ndarray, budget: int,
             backtrack: bool = False) -> np.ndarray:
    """Steps each pair took to reach its goal, or -1 when it failed within `budget` steps."""
    offsets, targets = graph.offsets, graph.targets
    n = graph.num_nodes
    cur = np.asarray(sources, dtype=np.int64).copy()
    goals = np.asarray(goals, dtype=np.int64)
    steps = np.where(cur == goals, 0, -1)
    active = cur != goals
    paths = [[int(s)] for s in cur]
    visited = {int(i) * n + int(s) for i, s in enumerate(cur)}  # (pair, page) as pair * N + page
    for t in range(1, budget + 1):
        ids = np.flatnonzero(active)
        if len(ids) == 0:
            break
        cand, seg, starts = candidates(offsets, targets, cur[ids])
        allowed = np.ones(len(cand), bool)
        if backtrack:
            allowed = ~np.isin(ids[seg] * n + cand, np.fromiter(visited, np.int64, len(visited)))
        scores = np.where(allowed, score(cur[ids], goals[ids], cand, seg), -np.inf)
        nxt, has = _best_per_row(scores, cand, seg, starts)
        for row, i in enumerate(ids):
            if has[row]:
                cur[i] = nxt[row]
                paths[i].append(int(nxt[row]))
                visited.add(int(i) * n + int(nxt[row]))
            elif backtrack and len(paths[i]) > 1:
                paths[i].pop()
                cur[i] = paths[i][-1]
            else:
                active[i] = False  # stuck: a dead end (greedy) or the whole reachable tree (DFS)
        reached = active & (cur == goals)
        steps[reached] = t
        active &= ~reached
    return steps


def _best_per_row(scores, cand, seg, starts):
    """(best link of each row, whether the row has an allowed link): sort by (row, -score) and
    take each row's first entry."""
    rows = len(starts) - 1
    if len(cand) == 0:
        return np.zeros(rows, np.int64), np.zeros(rows, bool)
    order = np.lexsort((-scores, seg))
    best = order[np.minimum(starts[:-1], len(cand) - 1)]
    has = (np.diff(starts) > 0) & np.isfinite(scores[best])
    return cand[best], has


TABLE_PAGES = 2_000_000
"""graphs up to this many pages navigate with every page's vector x(p) computed once (N x dim floats)"""


def policy_scorer(model):
    """A scorer from a trained `LinkScorer` (its weights as they are now: make a new scorer after
    training further)."""
    table = model.page_table() if len(model.embeddings) <= TABLE_PAGES else None

    def score(cur, goal, cand, seg):
        cur, goal, cand, seg = (torch.from_numpy(a) for a in (cur, goal, cand, seg))
        with torch.inference_mode():
            logits = model.baseline(goal, cand, seg) + model.correction(cur, goal, cand, seg, table=table)
            # a link to the target is always taken: the exact-hit term is fixed but the learned correction
            # is not bounded, and on real sites it outbid the target 1-2% of the time at k = 1
            logits = torch.where(cand == goal[seg], GOAL_LINK_SCORE, logits)
        return logits.numpy()
    return score


GOAL_LINK_SCORE = 1e30
"""the score of a link to the target page under a trained policy (finite: the navigator reads an infinite
score as a disallowed link)"""


def similarity_scorer(embeddings: np.ndarray):
    """Greedy embedding similarity (no learning): the link whose page text is closest to the goal's."""
    def score(cur, goal, cand, seg):
        return np.einsum("md,md->m", embeddings[cand], embeddings[goal[seg]])
    return score


def random_scorer(seed: int = 0):
    """Uniformly random link choice: greedy mode is a uniform random walk."""
    rng = np.random.default_rng(seed)

    def score(cur, goal, cand, seg):
        return rng.random(len(cand))
    return score
