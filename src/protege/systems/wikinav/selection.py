"""What a training run learns from and which of its weights it keeps.

- The shortest-path teacher: relabel a (current page, goal) example with a link on a shortest path to
  the goal (uniform among such links), found by a breadth-first search backwards from the goal that
  stops as soon as it reaches the current page. Imitating it is behavioural cloning of an expert
  (the BFS oracle) on the random walks' states, instead of cloning the walks' own links.
- Held-out pages: a seeded fraction of pages that training never sees (as current page, goal, taken
  link or candidate), to measure how a scorer does on pages it was not trained on.
- Checkpoint selection on the evaluation's own measure: backtracking navigation success on a
  validation set of pairs (walk and exact-distance pairs, budgets 2k and 4k), scored for the
  untrained scorer -- which ranks links exactly as the similarity baseline -- and at every
  checkpoint; the run keeps the best, so it never keeps weights that navigate worse than the
  baseline did on the validation pairs.
"""

from pathlib import Path

import numpy as np
from numba import njit

from protege.core.seeds import stream_seed
from protege.systems.wikinav.navigate import navigate, policy_scorer
from protege.systems.wikinav.pairs import NavEvalConfig, bfs_fill, eval_pairs

BEST_FILE = "best.safetensors"
HELD_OUT_FILE = "held_out_pages.npy"


def reverse_csr(graph) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, sources) of the graph with every link reversed."""
    offsets, targets = np.asarray(graph.offsets, np.int64), np.asarray(graph.targets, np.int64)
    src = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
    order = np.argsort(targets, kind="stable")
    rev_offsets = np.zeros(len(offsets), np.int64)
    np.cumsum(np.bincount(targets, minlength=len(offsets) - 1), out=rev_offsets[1:])
    return rev_offsets, src[order]


@njit(cache=True)
def shortest_links(offsets, targets, rev_offsets, rev_sources, cur, goal, rand, fallback):
    """For each (cur[i], goal[i]): the index within cur's links of a link on a shortest path to the
    goal, the rand[i]-th quantile among them; `fallback[i]` when the goal is unreachable."""
    n = len(offsets) - 1
    dist = np.full(n, -1, np.int32)
    queue = np.empty(n, np.int64)
    out = fallback.copy()
    for i in range(len(cur)):
        c = cur[i]
        # backwards from the goal, stopping once c is found: all pages one closer are known then
        tail = bfs_fill(rev_offsets, rev_sources, goal[i], dist, queue, c)
        if dist[c] > 0:
            count = 0
            for e in range(offsets[c], offsets[c + 1]):
                if dist[targets[e]] == dist[c] - 1:
                    count += 1
            pick = min(int(rand[i] * count), count - 1)
            for e in range(offsets[c], offsets[c + 1]):
                if dist[targets[e]] == dist[c] - 1:
                    if pick == 0:
                        out[i] = e - offsets[c]
                        break
                    pick -= 1
        for j in range(tail):  # reset only what this search touched
            dist[queue[j]] = -1
    return out


def held_out_pages(num_pages: int, fraction: float, seed: int) -> np.ndarray:
    """bool [N]: the pages training never sees (a seeded uniform `fraction` of them)."""
    if fraction <= 0:
        return np.zeros(num_pages, bool)
    return np.random.default_rng(stream_seed(seed, "nav/held-out")).random(num_pages) < fraction


def save_held_out(folder: Path, held: np.ndarray) -> None:
    from protege.core.atomic import atomic_path
    with atomic_path(Path(folder) / HELD_OUT_FILE) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.flatnonzero(held).astype(np.int64), allow_pickle=False)


def load_held_out(folder: Path) -> np.ndarray | None:
    """int64 ids of the pages a run held out, or None when it held none out."""
    path = Path(folder) / HELD_OUT_FILE
    return np.load(path, allow_pickle=False) if path.is_file() else None


class Validation:
    """Backtracking success of a scorer on fixed validation pairs, averaged over pair kinds, k and
    the budgets 2k and 4k (one navigation at 4k: a deterministic scorer's path to 2k is its prefix)."""

    def __init__(self, graph, pairs: int, ks: tuple[int, ...], seed: int, target_mask=None):
        self.graph = graph
        cfg = NavEvalConfig(ks=ks, pairs=pairs, min_pairs=1, budget_factors=(4.0,), bfs_sources=4 * pairs,
                            seed=stream_seed(seed, "nav/validation") % (2 ** 31))
        self.pairs = eval_pairs(graph, cfg, target_mask=target_mask)

    def score(self, model) -> dict:
        scorer = policy_scorer(model)
        rates = {}
        for (kind, k), (src, tgt) in self.pairs.items():
            steps = navigate(self.graph, scorer, src, tgt, 4 * k, backtrack=True)
            ok = steps >= 0
            rates[kind, k] = (float(ok.mean()) + float((ok & (steps <= 2 * k)).mean())) / 2
        out = {f"nav/val_{kind}_{k}": round(v, 4) for (kind, k), v in rates.items()}
        out["nav/val_success"] = float(np.mean(list(rates.values()))) if rates else 0.0
        return out
