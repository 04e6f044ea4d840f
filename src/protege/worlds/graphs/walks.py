"""Uniform first-order random walks (numba, parallel) and behavioural-cloning examples from them.

Each walk draws from its own SplitMix64 stream seeded by (seed, walk index), so the walks are the same
whatever the thread count; numba's `np.random` inside `prange` would depend on thread scheduling.
"""

from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from protege.core.errors import unknown_name
from protege.worlds.graphs import DEAD_END_HELP, DEFAULT_DEAD_END  # noqa: F401  (re-exported)

DEAD_END_POLICIES = {"stop": 0, "restart": 1, "jump": 2}
NO_ACTION = -1  # a stop (padding) or a restart/jump: no link was taken
WALKS_KIND = "protege.worlds.graphs.walks"
"""The manifest kind of a folder of saved walks (`nav walks --out`)."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(inline="always")
def _splitmix(x):
    """One SplitMix64 step: returns (new state, 64 random bits)."""
    x = x + _GOLDEN
    z = x
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x, z ^ (z >> np.uint64(31))


@njit(inline="always")
def _bounded(r, n):
    """Uniform integer in [0, n) from 64 random bits: Lemire's multiply-shift on the top 32 bits
    (no 64-bit division, which dominated the step cost) while n < 2^32, modulo beyond."""
    if n < 4294967296:
        return np.int64(((r >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))
    return np.int64(r % np.uint64(n))


@njit(inline="always")
def _stream(seed, index):
    state = np.uint64(seed) * np.uint64(0xD1B54A32D192ED03) + np.uint64(index) * _GOLDEN
    state, _ = _splitmix(state)
    return state


_LANES = 16  # walks advanced in lockstep per thread


@njit(parallel=True, cache=True)
def _walk_kernel(offsets, targets, starts, length, policy, seed, nodes, actions):
    """Each thread advances `_LANES` walks in lockstep: their memory reads are independent, so the
    CPU overlaps the cache misses (two per step on a graph larger than the cache) instead of
    waiting for each in turn -- one walk at a time is latency-bound."""
    num_nodes = len(offsets) - 1
    num_walks = len(starts)
    for block in prange((num_walks + _LANES - 1) // _LANES):
        first = block * _LANES
        lanes = min(_LANES, num_walks - first)
        state = np.empty(_LANES, np.uint64)
        cur = np.empty(_LANES, np.int64)
        alive = np.zeros(_LANES, np.bool_)
        for j in range(lanes):
            state[j] = _stream(seed, first + j)
            cur[j] = starts[first + j]
            nodes[first + j, 0] = cur[j]
            alive[j] = True
        for t in range(length):
            for j in range(lanes):
                if not alive[j]:
                    continue
                w = first + j
                c = cur[j]
                lo = offsets[c]
                deg = offsets[c + 1] - lo
                if deg == 0:
                    if policy == 0:
                        alive[j] = False
                        continue
                    if policy == 1:
                        c = np.int64(starts[w])
                    else:
                        state[j], r = _splitmix(state[j])
                        c = _bounded(r, num_nodes)
                else:
                    state[j], r = _splitmix(state[j])
                    k = _bounded(r, deg)
                    c = np.int64(targets[lo + k])
                    actions[w, t] = k
                cur[j] = c
                nodes[w, t + 1] = c


@dataclass(frozen=True)
class Walks:
    """A batch of random walks.

    nodes: int32/int64 [W, L+1], the pages visited; -1 after a walk stopped at a dead end.
    actions: int32 [W, L], index (within the CSR row of nodes[:, t]) of the link taken at step t,
        or -1 where no link was taken (stopped, restarted or jumped).
    """
    nodes: np.ndarray
    actions: np.ndarray

    def __post_init__(self):
        w, l1 = self.nodes.shape
        if self.actions.shape != (w, l1 - 1):
            raise ValueError(f"actions {self.actions.shape} do not match nodes {self.nodes.shape}")


def random_walks(graph, starts: np.ndarray, length: int, dead_end: str = "stop",
                 seed: int = 0, threads: int | None = None) -> Walks:
    """`length` steps from each start; `dead_end` is stop | restart (to the start) | jump (uniform)."""
    if dead_end not in DEAD_END_POLICIES:
        raise unknown_name("dead-end policy", dead_end, DEAD_END_POLICIES)
    if threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    starts = np.ascontiguousarray(starts, dtype=graph.targets.dtype)
    nodes = np.full((len(starts), length + 1), -1, dtype=graph.targets.dtype)
    actions = np.full((len(starts), length), NO_ACTION, dtype=np.int32)
    _walk_kernel(graph.offsets, graph.targets, starts, length, DEAD_END_POLICIES[dead_end],
                 seed, nodes, actions)
    return Walks(nodes, actions)


@dataclass(frozen=True)
class BCExamples:
    """Behavioural-cloning examples: at page `current`, heading for `goal`, the walk took link `action`.

    current, goal: int64 [M] page ids; action: int32 [M] index into current's CSR row;
    distance: int32 [M] walk steps from current to goal (1..horizon).
    """
    current: np.ndarray
    goal: np.ndarray
    action: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return len(self.current)


@njit(cache=True)
def _bc_kernel(nodes, actions, horizon, goals_per_step, seed, out_cur, out_goal, out_act, out_dist):
    count = 0
    num_walks, length = actions.shape
    for w in range(num_walks):
        state = _stream(seed, w)
        end = length  # first index >= t where no link was taken: the jump-free segment ends there
        for t in range(length - 1, -1, -1):
            if actions[w, t] < 0:
                end = t
                continue
            span = min(end, t + horizon) - t  # goals nodes[t+1 .. t+span] lie on this segment
            for _ in range(goals_per_step):
                state, r = _splitmix(state)
                j = 1 + _bounded(r, span)
                goal = nodes[w, t + j]
                if goal == nodes[w, t]:
                    continue  # the walk came back: no link choice to imitate
                out_cur[count] = nodes[w, t]
                out_goal[count] = goal
                out_act[count] = actions[w, t]
                out_dist[count] = j
                count += 1
    return count


def bc_examples(walks: Walks, horizon: int = 20, goals_per_step: int = 1, seed: int = 0) -> BCExamples:
    """Hindsight goals: for every link the walk took at step t, a goal drawn uniformly from the next
    `horizon` pages of the same walk (never across a restart/jump, which is not a link)."""
    size = int((walks.actions >= 0).sum()) * goals_per_step
    cur = np.empty(size, np.int64)
    goal = np.empty(size, np.int64)
    act = np.empty(size, np.int32)
    dist = np.empty(size, np.int32)
    n = _bc_kernel(walks.nodes, walks.actions, horizon, goals_per_step, seed, cur, goal, act, dist)
    return BCExamples(cur[:n], goal[:n], act[:n], dist[:n])


def walk_stats(graph_folder, walks_per_page: int, length: int, dead_end: str, horizon: int,
               seed: int, out=None) -> dict:
    """Walk from every page with links, build BC examples, optionally save them; timing included."""
    import time
    from pathlib import Path

    from protege.core.errors import UserError
    from protege.data.manifest import check_output_folder, output_folder, write_manifest
    from protege.worlds.graphs.store import open_graph
    for name, value in (("--walks-per-page", walks_per_page), ("--length", length),
                        ("--horizon", horizon)):
        if value < 1:
            raise UserError(f"{name} must be >= 1, got {value}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    if dead_end not in DEAD_END_POLICIES:
        raise unknown_name("dead-end policy", dead_end, DEAD_END_POLICIES)
    if out is not None:  # refuse before the work: never the graph itself, never a foreign folder
        check_output_folder(Path(out), WALKS_KIND, [graph_folder])
    t0 = time.perf_counter()
    graph = open_graph(Path(graph_folder))
    load_s = time.perf_counter() - t0
    starts = np.repeat(np.flatnonzero(graph.out_degree() > 0), walks_per_page)
    if not len(starts):
        raise UserError(f"{graph_folder}: no page has a link; no walk can start")
    random_walks(graph, starts[:1], 1, dead_end, seed)  # compile (or load the numba cache) first
    t0 = time.perf_counter()
    walks = random_walks(graph, starts, length, dead_end, seed)
    walk_s = time.perf_counter() - t0
    examples = bc_examples(walks, horizon, 1, seed + 1)
    steps = int((walks.nodes[:, 1:] >= 0).sum())
    if out is not None:
        with output_folder(Path(out), WALKS_KIND, [graph_folder]) as tmp:
            np.save(tmp / "nodes.npy", walks.nodes)
            np.save(tmp / "actions.npy", walks.actions)
            np.savez(tmp / "bc_examples.npz", current=examples.current, goal=examples.goal,
                     action=examples.action, distance=examples.distance)
            write_manifest(tmp, {"kind": WALKS_KIND, "graph": str(graph_folder),
                                 "dead_end": dead_end, "seed": seed})
    return {"walks": len(starts), "steps": steps, "links_taken": int((walks.actions >= 0).sum()),
            "bc_examples": len(examples), "graph_load_s": round(load_s, 4),
            "walk_s": round(walk_s, 4), "steps_per_s": round(steps / max(walk_s, 1e-9)),
            "threads": numba.get_num_threads(), "saved_to": str(out) if out else None}


def describe(folder) -> tuple[str, dict]:
    """`load_walks` for `protege data validate`."""
    return "random walks", load_walks(folder)


def load_walks(folder) -> dict:
    """Check a folder written by `walk_stats(out=...)` (checksums, then array shapes); its counts."""
    from pathlib import Path

    from protege.core.errors import UserError
    from protege.data.manifest import verify_manifest
    folder = Path(folder)
    verify_manifest(folder)
    try:
        walks = Walks(np.load(folder / "nodes.npy"), np.load(folder / "actions.npy"))
        with np.load(folder / "bc_examples.npz") as f:
            sizes = {len(f[k]) for k in ("current", "goal", "action", "distance")}
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{folder}: saved walks do not fit together ({e})") from None
    if len(sizes) != 1:
        raise UserError(f"{folder / 'bc_examples.npz'}: arrays of different lengths {sorted(sizes)}")
    return {"walks": len(walks.nodes), "length": walks.actions.shape[1], "bc_examples": sizes.pop()}
