"""Random-walk throughput: protege's CSR store + numba walker vs PecanPy's FirstOrderUnweighted.

Both walk the same graph: PecanPy reads it from a tab-separated edge list (its documented input),
protege opens the graph folder by mmap. Walks: `--walks` per node of `--steps` steps (PecanPy's
`walk_length`: a walk holds walk_length + 1 nodes), stopping at dead ends on both sides; both use `--workers` numba threads.
End to end = load + walk, in each library's native output (PecanPy: lists of node-id strings;
protege: an int32 array). The last line printed is one JSON object.

    python benchmarks/random_walks.py                      # synthetic power-law, 100k nodes, 1M edges
    python benchmarks/random_walks.py --graph data/foldoc  # a built graph folder
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

# PecanPy imports nptyping 2.0, whose typing module names `np.bool8` and other aliases that numpy 2
# removed (`np.float_`, `np.object0`, ...). Restore them before importing PecanPy so it loads on
# numpy 2; nothing here uses them.
_REMOVED = {"bool8": np.bool_, "object0": np.object_, "int0": np.intp, "uint0": np.uintp,
            "void0": np.void, "bytes0": np.bytes_, "str0": np.str_, "float_": np.float64,
            "longfloat": np.longdouble, "singlecomplex": np.complex64, "complex_": np.complex128,
            "cfloat": np.complex128, "clongfloat": np.clongdouble, "longcomplex": np.clongdouble,
            "string_": np.bytes_, "unicode_": np.str_}
for _alias, _type in _REMOVED.items():
    if _alias not in np.__dict__:
        setattr(np, _alias, _type)

from pecanpy.pecanpy import FirstOrderUnweighted  # noqa: E402

from protege.core.precision import machine_info  # noqa: E402
from protege.worlds.graphs.store import open_graph  # noqa: E402
from protege.worlds.graphs.synthetic import build_powerlaw  # noqa: E402
from protege.worlds.graphs.walks import random_walks  # noqa: E402


def write_edg(graph, path: Path) -> None:
    src = np.repeat(np.arange(graph.num_nodes), graph.out_degree())
    np.savetxt(path, np.column_stack([src, np.asarray(graph.targets)]), fmt="%d", delimiter="\t")


def bench_protege(folder: Path, walks: int, steps: int, workers: int) -> dict:
    numba.set_num_threads(workers)
    t0, c0 = time.perf_counter(), time.process_time()
    graph = open_graph(folder, verify=False)
    load_s, load_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    starts = np.tile(np.arange(graph.num_nodes, dtype=graph.targets.dtype), walks)
    t0, c0 = time.perf_counter(), time.process_time()
    w = random_walks(graph, starts, steps, "stop", seed=0)
    walk_s, walk_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    taken = int((w.nodes[:, 1:] >= 0).sum())
    t0 = time.perf_counter()
    open_graph(folder, verify=True)
    return {"load_s": load_s, "walk_s": walk_s, "walk_cpu_s": walk_cpu_s, "load_cpu_s": load_cpu_s, "steps": taken,
            "steps_per_s": taken / walk_s,
            "load_verified_s": time.perf_counter() - t0}


def bench_pecanpy(edg: Path, walks: int, steps: int, workers: int) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    g = FirstOrderUnweighted(p=1, q=1, workers=workers, verbose=False)
    g.read_edg(str(edg), weighted=False, directed=True)
    load_s, load_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    out = g.simulate_walks(num_walks=walks, walk_length=steps)
    walk_s, walk_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    taken = sum(len(x) - 1 for x in out)
    return {"pecanpy_load_s": load_s, "pecanpy_walk_s": walk_s, "pecanpy_load_cpu_s": load_cpu_s,
            "pecanpy_walk_cpu_s": walk_cpu_s, "pecanpy_steps": taken,
            "pecanpy_steps_per_s": taken / walk_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graph", type=Path, help="graph folder (default: build a synthetic one)")
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--edges", type=int, default=1_000_000)
    ap.add_argument("--walks", type=int, default=10, help="walks per node")
    ap.add_argument("--steps", type=int, default=80, help="steps per walk (PecanPy's walk_length)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    steps = args.steps
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.graph
        if folder is None:
            folder = Path(tmp) / "graph"
            build_powerlaw(folder, args.nodes, args.edges, seed=0)
        graph = open_graph(folder, verify=False)
        edg = Path(tmp) / "graph.edg"
        write_edg(graph, edg)
        # Compile (or load from numba's cache) the protege walker on a one-step walk first; PecanPy
        # builds a fresh jitted closure inside every simulate_walks call, so its compile time is part
        # of each call and stays in its end-to-end number.
        random_walks(graph, np.zeros(1, graph.targets.dtype), 1)
        ours = bench_protege(folder, args.walks, steps, args.workers)
        theirs = bench_pecanpy(edg, args.walks, steps, args.workers)
    result = {"graph": str(args.graph or f"synthetic-powerlaw-{args.nodes}"), "nodes": graph.num_nodes,
              "edges": graph.num_edges, "walks_per_node": args.walks, "walk_steps": args.steps,
              "workers": args.workers, **ours, **theirs,
              "speedup_walk": ours["steps_per_s"] / theirs["pecanpy_steps_per_s"],
              "speedup_end_to_end": (theirs["pecanpy_load_s"] + theirs["pecanpy_walk_s"])
              / (ours["load_s"] + ours["walk_s"]),
              # CPU seconds (all threads) are less sensitive to other jobs on a shared machine
              "speedup_end_to_end_cpu": (theirs["pecanpy_load_cpu_s"] + theirs["pecanpy_walk_cpu_s"])
              / (ours["load_cpu_s"] + ours["walk_cpu_s"])}
    result.update(machine_info())  # where it ran (precision: what auto resolves to; walks use none)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
