"""Scale of the graph store: build a synthetic power-law directed graph, open it by mmap, walk on it.

The paper's Wikipedia graph has 38M nodes and 387M edges (arXiv:2211.00177); the default here is a
scaled graph with the same mean out-degree (10.18); `--nodes 38000000 --edges 387000000` is the full
size. Reports build time, bytes per edge (on disk and peak resident memory of this process), open
time, checksum-verification time and walk throughput; with `--extrapolate` also a linear
extrapolation to the full size, labelled as such. The last line printed is one JSON object.

    nice -n 10 python benchmarks/nav_scale.py --nodes 2000000
    nice -n 10 python benchmarks/nav_scale.py --nodes 38000000 --edges 387000000 --out /tmp/wiki-scale

With `--policy` it instead trains and evaluates an inductive link scorer at that size: a topic graph
with synthetic text (protege.worlds.graphs.topic_graph), its page embeddings computed in chunks into a
float16 memory-mapped store (protege.worlds.graphs.page_store; resumes after a kill), behavioural
cloning on random walks for `--train-steps` steps, then success within 2k steps on k-step walk pairs
for the policy, greedy similarity and random choice, greedy and with backtracking (+bt). Reports peak
resident memory (memory-mapped pages touched included), time per stage and per training step.

    nice -n 10 python benchmarks/nav_scale.py --policy --nodes 2000000 --out /tmp/nav-topics-2m
    nice -n 10 python benchmarks/nav_scale.py --policy --nodes 38000000 --edges 387000000 --out /tmp/nav-topics-38m
"""

import argparse
import json
import resource
import shutil
import tempfile
import time
from dataclasses import asdict
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


# --policy: an inductive scorer trained and evaluated at scale ------------------------------------
def memory_now() -> dict:
    """This process's resident memory now, split into anonymous (its own arrays and tensors) and
    file-backed (pages of the memory-mapped graph and store it touched: the page cache's, which the
    kernel reclaims under pressure), in bytes."""
    fields = {"RssAnon:": "anon", "RssFile:": "file"}
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(maxsplit=1)[0] if line else ""
        if key in fields:
            out[fields[key]] = int(line.split()[1]) * 1024
    return out


def stage(result: dict, name: str, t0: float) -> None:
    now = memory_now()
    result[f"{name}_s"] = time.perf_counter() - t0
    result[f"{name}_peak_rss_bytes"] = peak_rss_bytes()
    result[f"{name}_end_anon_bytes"] = now.get("anon")
    result[f"{name}_end_file_bytes"] = now.get("file")
    print(f"[nav_scale] {name}: {result[f'{name}_s']:.1f} s, peak RSS {peak_rss_bytes() / 2**30:.2f} "
          f"GiB; now anon {now.get('anon', 0) / 2**30:.2f} GiB + file {now.get('file', 0) / 2**30:.2f} GiB",
          flush=True)


def open_or_build(folder: Path, nodes: int, edges: int, spec) -> dict:
    """Reuse `folder` when it is this topic graph already (a rerun after a kill), else build it."""
    from protege.core.progress import progress_bar
    from protege.worlds.graphs.topic_graph import build_topic_graph
    try:
        info = json.loads((folder / "summary.json").read_text())
        if info.get("nodes") == nodes and info.get("edges") == edges and info.get("topics") \
                and json.loads(json.dumps(info["topics"])) == json.loads(json.dumps(asdict(spec))):
            return {"graph_reused": True}
    except (OSError, ValueError):
        pass
    with progress_bar() as bar:
        task = bar.add_task("build graph (pages)", total=nodes)
        info = build_topic_graph(folder, nodes, edges, spec, progress=lambda n: bar.advance(task, n))
    return {"graph_reused": False, "graph_build_s": info["build_s"]}


def encode_embeddings(graph, spec, folder: Path, dim: int):
    from protege.core.progress import progress_bar
    from protege.worlds.graphs.page_store import encode_store, open_store
    from protege.worlds.graphs.topic_graph import TopicEmbedder
    embedder = TopicEmbedder(spec, dim)
    with progress_bar() as bar:
        task = bar.add_task("page embeddings (pages)", total=graph.num_nodes)
        encode_store(folder, graph.num_nodes, dim, embedder, embedder.source,
                     progress=lambda n: bar.advance(task, n))
    del embedder  # its 2^18 x dim hash table is not needed any more
    return open_store(folder, verify=False)


def embed_copy(graph, spec, args, main: Path) -> dict:
    """Encode the store again into `args.embed_to` (resuming a killed encoding there); its file's
    SHA-256 beside the main store's, which must be equal."""
    from protege.data.manifest import read_manifest
    from protege.worlds.graphs.page_store import ARRAY, PROGRESS
    progress = args.embed_to / PROGRESS
    committed = len(json.loads(progress.read_text())["done"]) if progress.exists() else 0
    t0 = time.perf_counter()
    encode_embeddings(graph, spec, args.embed_to, args.dim)
    sha = {name: (read_manifest(folder) or {"files": {}})["files"].get(ARRAY, {}).get("sha256")
           for name, folder in (("copy", args.embed_to), ("main", main))}
    return {"embed_s": time.perf_counter() - t0, "chunks_committed_before": committed,
            "copy_sha256": sha["copy"], "main_sha256": sha["main"],
            "identical": sha["copy"] is not None and sha["copy"] == sha["main"]}


def training_examples(graph, walks: int, seed: int, horizon: int = 20):
    from protege.worlds.graphs.walks import bc_examples
    rng = np.random.default_rng([seed, 1])
    starts = rng.integers(0, graph.num_nodes, walks).astype(graph.targets.dtype)
    w = random_walks(graph, starts, 20, "jump", seed=seed)
    return bc_examples(w, horizon=horizon, goals_per_step=1, seed=seed + 1)


def batch_maker(graph, ex, seed: int, limit: int = 64):
    """Batches with each page's taken link and up to `limit` sampled others (sampled softmax): a
    hub page's 10,000 links would otherwise dominate the step."""
    import torch

    from protege.nn.link_scorer import sample_candidates
    rng = np.random.default_rng([seed, 2])

    def make_batch(idx):
        cur = ex.current[idx]
        cand, seg, starts, logw = sample_candidates(graph.offsets, graph.targets, cur, ex.action[idx],
                                                    limit, rng)
        return {"cur": torch.from_numpy(cur), "goal": torch.from_numpy(ex.goal[idx]),
                "cand": torch.from_numpy(cand), "seg": torch.from_numpy(seg),
                "starts": torch.from_numpy(starts), "action": torch.zeros(len(idx), dtype=torch.int64),
                "log_weight": torch.from_numpy(logw)}
    return make_batch


class Keeper:
    """Checkpoint selection on navigation (`fit`'s on_checkpoint): +bt success within 2k on validation
    walk pairs (k = 5 and 20, their own seed), scored for the untrained scorer -- the similarity
    baseline's ranking -- first; the best weights are kept in best.safetensors (+ best.json), so
    the run never ends with weights that navigated worse than the baseline on those pairs. Walk
    pairs only: the exact-distance pairs of `wikinav.selection.Validation` need a BFS over all 38M
    pages per pair."""

    def __init__(self, model, graph, run_dir: Path, pairs: int, seed: int):
        from protege.systems.wikinav.pairs import walk_pairs
        self.model, self.graph, self.dir = model, graph, run_dir
        self.pairs = {k: walk_pairs(graph, k, pairs, seed + 100) for k in (5, 20)}
        best = run_dir / "best.json"
        self.best = json.loads(best.read_text()) if best.exists() else None
        if self.best is None:
            self._keep(0, self.score())

    def score(self) -> dict:
        from protege.systems.wikinav.navigate import navigate, policy_scorer
        rates = {k: float((navigate(self.graph, policy_scorer(self.model.eval()), s, t, 2 * k,
                                    backtrack=True) >= 0).mean()) for k, (s, t) in self.pairs.items()}
        self.model.train()
        return {**{f"nav/val_k{k}": r for k, r in rates.items()},
                "nav/val_success": float(np.mean(list(rates.values())))}

    def _keep(self, step: int, scores: dict) -> None:
        from safetensors.torch import save_file

        from protege.core.atomic import atomic_path, write_json_atomic
        with atomic_path(self.dir / "best.safetensors") as tmp:
            save_file({k: v.detach().clone().contiguous() for k, v in self.model.state_dict().items()},
                      str(tmp))
        baseline = scores["nav/val_success"] if step == 0 else self.best["val_success_baseline"]
        self.best = {"step": step, **scores, "val_success_baseline": baseline}
        write_json_atomic(self.dir / "best.json", self.best)

    def __call__(self, step: int) -> dict:
        scores = self.score()
        if scores["nav/val_success"] > self.best["nav/val_success"]:
            self._keep(step, scores)
        return scores

    def restore_best(self) -> dict:
        from protege.core.runs import load_weights
        self.model.load_state_dict(load_weights(self.dir / "best.safetensors"))
        return {"selected_step": self.best["step"], "val_success_selected": self.best["nav/val_success"],
                "val_success_baseline": self.best["val_success_baseline"]}


def train(model, ex, graph, args, run_dir: Path) -> dict:
    from protege.core.runs import Run
    from protege.nn.link_scorer import bc_loss
    from protege.rl.fit import TrainerConfig, fit
    cfg = TrainerConfig(steps=args.train_steps, batch_size=args.batch, lr=args.lr,
                        warmup_steps=args.train_steps // 20, schedule="cosine", log_every=50,
                        checkpoint_every=max(args.train_steps // 5, 1), precision="fp32")
    resume = (run_dir / "config.yaml").is_file()
    run = Run(run_dir, {"benchmark": "nav_scale", "steps": cfg.steps, "batch": cfg.batch_size,
                        "lr": cfg.lr, "horizon": args.horizon, "seed": args.seed}, resume=resume)
    keeper = Keeper(model, graph, run_dir, args.val_pairs, args.seed)
    t0 = time.perf_counter()
    last = fit(model, bc_loss, len(ex), batch_maker(graph, ex, args.seed), cfg, run, args.seed,
               on_checkpoint=keeper)
    wall = time.perf_counter() - t0
    run.finish({k: v for k, v in last.items() if isinstance(v, (int, float))})
    rows = run.metrics()
    losses = [r["nav/bc_loss"] for r in rows if "nav/bc_loss" in r]
    step_s = [r["time/step_s"] for r in rows if "time/step_s" in r]
    chosen = keeper.restore_best()
    return {"train_steps": cfg.steps, "batch": cfg.batch_size, "lr": cfg.lr, "train_s": wall,
            "ms_per_step_wall": 1000 * wall / cfg.steps,
            "ms_per_step_median": 1000 * float(np.median(step_s)) if step_s else None,
            "train_resumed": resume, "bc_loss_first_logged": losses[0] if losses else None,
            "bc_loss_mean_last_10_logged": float(np.mean(losses[-10:])) if losses else None,
            **chosen}


class Float32Rows:
    """float16 store rows read as float32 (the similarity baseline's dot products)."""
    def __init__(self, rows):
        self.rows = rows

    def __getitem__(self, ids):
        return np.asarray(self.rows[ids], dtype=np.float32)


def evaluate_scale(graph, model, rows, ex, pairs: int, seed: int) -> list[dict]:
    import torch

    from protege.core.progress import progress_bar
    from protege.eval.stats import wilson_interval
    from protege.systems.wikinav.pairs import walk_pairs
    from protege.systems.wikinav.navigate import (
        navigate,
        policy_scorer,
        random_scorer,
        similarity_scorer,
    )
    torch.set_num_threads(1)
    scorers = {"policy": policy_scorer(model.eval()), "sim": similarity_scorer(Float32Rows(rows)),
               "random": random_scorer(seed)}
    seen = np.zeros(graph.num_nodes, bool)
    seen[ex.current] = seen[ex.goal] = True
    out = []
    with progress_bar() as bar:
        task = bar.add_task("navigation episodes", total=2 * pairs * len(scorers) * 2)
        for k in (5, 20):
            src, tgt = walk_pairs(graph, k, pairs, seed)
            for name, score in scorers.items():
                for bt in (False, True):
                    t0 = time.perf_counter()
                    steps = navigate(graph, score, src, tgt, 2 * k, backtrack=bt)
                    ok = int((steps >= 0).sum())
                    lo, hi = wilson_interval(ok, len(steps))
                    unseen = ~seen[tgt]
                    out.append({"k": k, "method": name + ("+bt" if bt else ""), "budget": 2 * k,
                                "n": len(steps), "success": ok / len(steps), "ci_low": lo, "ci_high": hi,
                                "n_unseen_targets": int(unseen.sum()),
                                "success_unseen_targets": float((steps[unseen] >= 0).mean())
                                if unseen.any() else None,
                                "s": time.perf_counter() - t0})
                    bar.advance(task, len(src))
    return out


def run_policy(args, edges: int) -> dict:
    """Build (or reuse) the topic graph and its embedding store, train, evaluate; every stage's
    time and the peak resident memory so far."""
    import torch

    from protege.core.seeds import seed_everything
    from protege.nn.link_scorer import LinkScorer, PolicyConfig
    from protege.worlds.graphs.topic_graph import TopicSpec
    torch.set_num_threads(1)
    seed_everything(args.seed)
    root = args.out or Path(tempfile.mkdtemp(prefix="nav-scale-"))
    spec = TopicSpec(seed=args.seed)
    result: dict = {"mode": "policy", "nodes": args.nodes, "requested_edges": edges, "dim": args.dim,
                    "numba_threads": numba.get_num_threads()}
    t0 = time.perf_counter()
    result.update(open_or_build(root / "graph", args.nodes, edges, spec))
    graph = open_graph(root / "graph", verify=False)
    result["edges"] = graph.num_edges
    stage(result, "graph", t0)
    if args.embed_to:
        return {**result, **embed_copy(graph, spec, args, root / "embeddings")}
    t0 = time.perf_counter()
    store = encode_embeddings(graph, spec, root / "embeddings", args.dim)
    result["store_bytes"] = (root / "embeddings" / "embeddings.npy").stat().st_size
    stage(result, "embed", t0)
    if args.stop_after == "embed":
        return {**result, "peak_rss_bytes": peak_rss_bytes()}
    t0 = time.perf_counter()
    ex = training_examples(graph, args.train_walks, args.seed, args.horizon)
    result["bc_examples"] = len(ex)
    stage(result, "walks", t0)
    model = LinkScorer(store.rows, PolicyConfig(page_vectors=False))
    result["parameters"] = sum(p.numel() for p in model.parameters())
    t0 = time.perf_counter()
    result.update(train(model, ex, graph, args, root / "run"))
    stage(result, "train", t0)
    if args.stop_after == "train":
        return {**result, "peak_rss_bytes": peak_rss_bytes()}
    t0 = time.perf_counter()
    result["eval"] = evaluate_scale(graph, model, store.rows, ex, args.pairs, args.seed)
    stage(result, "eval", t0)
    result["peak_rss_bytes"] = peak_rss_bytes()
    return result


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
    ap.add_argument("--policy", action="store_true", help="train and evaluate a scorer (see above)")
    ap.add_argument("--dim", type=int, default=64, help="--policy: embedding dims")
    ap.add_argument("--train-walks", type=int, default=200_000, help="--policy: walks for BC examples")
    ap.add_argument("--train-steps", type=int, default=1500, help="--policy: optimiser steps")
    ap.add_argument("--batch", type=int, default=256, help="--policy: BC examples per step")
    ap.add_argument("--pairs", type=int, default=500, help="--policy: evaluation pairs per k")
    ap.add_argument("--val-pairs", type=int, default=200, help="--policy: validation pairs per k")
    ap.add_argument("--lr", type=float, default=2e-3, help="--policy: peak learning rate")
    ap.add_argument("--horizon", type=int, default=20,
                    help="--policy: hindsight goals are 1..horizon steps ahead on the walk")
    ap.add_argument("--embed-to", type=Path, default=None,
                    help="--policy: only encode the graph's embeddings into this store folder (resuming "
                         "it) and report its checksum beside the main store's: kill it and run it again")
    ap.add_argument("--stop-after", choices=("embed", "train"), default=None,
                    help="--policy: end after this stage (a later run with the same --out reuses the "
                         "graph and store and resumes training), to split the work between runs")
    args = ap.parse_args()
    edges = args.edges or round(args.nodes * PAPER_EDGES / PAPER_NODES)
    if args.policy:
        result = run_policy(args, edges)
        result.update(machine_info())
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))
        return
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
