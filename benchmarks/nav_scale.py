"""Scale of the graph store: build a synthetic power-law directed graph, open it by mmap, walk on it.

The paper's Wikipedia graph has 38M nodes and 387M edges (arXiv:2211.00177); the default here is a
scaled graph with the same mean out-degree (10.18); `--nodes 38000000 --edges 387000000` is the full
size. Reports build time, bytes per edge (on disk and peak resident memory of this process), open
time, checksum-verification time and walk throughput; with `--extrapolate` also a linear
extrapolation to the full size, labelled as such. The last line printed is one JSON object.

    nice -n 10 python benchmarks/nav_scale.py --nodes 2000000
    nice -n 10 python benchmarks/nav_scale.py --nodes 38000000 --edges 387000000 --out /tmp/wiki-scale
"""

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from protege.core.precision import machine_info
from protege.worlds.graphs.store import open_graph
from protege.worlds.graphs.synthetic import build_powerlaw
from protege.worlds.graphs.walks import random_walks

PAPER_NODES, PAPER_EDGES = 38_000_000, 387_000_000


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure(folder: Path, nodes: int, edges: int, walks: int, steps: int, seed: int) -> dict:
    rss0 = peak_rss_bytes()
    build = build_powerlaw(folder, nodes, edges, seed=seed)
    build_peak = peak_rss_bytes()
    disk = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    t0 = time.perf_counter()
    graph = open_graph(folder, verify=False)
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    open_graph(folder, verify=True)
    verify_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    random_walks(graph, np.zeros(1, graph.targets.dtype), 1)  # compile / load numba's cache
    starts = rng.integers(0, nodes, walks).astype(graph.targets.dtype)
    t0 = time.perf_counter()
    w = random_walks(graph, starts, steps, "jump", seed=seed)
    walk_s = time.perf_counter() - t0
    taken = int((w.actions >= 0).sum())
    return {"nodes": nodes, "edges": graph.num_edges, "targets_dtype": build["targets_dtype"],
            "build_s": build["build_s"], "open_s": open_s, "verify_s": verify_s,
            "disk_bytes": disk, "disk_bytes_per_edge": disk / graph.num_edges,
            "peak_rss_bytes": build_peak, "peak_rss_bytes_per_edge": (build_peak - rss0) / graph.num_edges,
            "walks": walks, "walk_steps": steps, "links_taken": taken, "walk_s": walk_s,
            "steps_per_s": walks * steps / walk_s, "threads": numba.get_num_threads()}


def extrapolate(r: dict) -> dict:
    """Linear in edges (build, verify, disk, memory); walk throughput assumed unchanged, which holds
    while the arrays (~1.9 GB at full size) stay in the page cache of a 24 GB machine."""
    scale = PAPER_EDGES / r["edges"]
    return {"extrapolated_to": f"{PAPER_NODES} nodes / {PAPER_EDGES} edges (linear, NOT measured)",
            "extrapolated_build_s": r["build_s"] * scale, "extrapolated_verify_s": r["verify_s"] * scale,
            "extrapolated_disk_bytes": 8 * (PAPER_NODES + 1) + 4 * PAPER_EDGES + 200,
            "extrapolated_peak_rss_bytes": r["peak_rss_bytes_per_edge"] * PAPER_EDGES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=2_000_000)
    ap.add_argument("--edges", type=int, default=None, help="default: nodes x 387/38")
    ap.add_argument("--walks", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="graph folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the graph folder")
    ap.add_argument("--extrapolate", action="store_true")
    args = ap.parse_args()
    edges = args.edges or round(args.nodes * PAPER_EDGES / PAPER_NODES)
    tmp = Path(tempfile.mkdtemp(prefix="nav-scale-"))
    folder = args.out or tmp / "graph"
    try:
        result = measure(folder, args.nodes, edges, args.walks, args.steps, args.seed)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.extrapolate and result["edges"] < PAPER_EDGES:
        result.update(extrapolate(result))
    result.update(machine_info())  # where it ran (precision: what auto resolves to; walks use none)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
