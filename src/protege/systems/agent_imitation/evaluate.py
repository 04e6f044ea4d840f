"""Held-out evaluation of BabyAI policies: parallel processes, each stepping a batch of environments.

Seeds start at `EVAL_SEED_START` (10^9) while demonstrations start at 0, so no evaluation layout was
seen in training. Each worker process evaluates a contiguous range of seeds with `envs_per_worker`
environments stepped in lockstep (one batched forward per step), and returns per-episode results.
"""

import contextlib
import io
import multiprocessing as mp
from pathlib import Path
from queue import Empty

import numpy as np
import torch

from protege.core.errors import UserError
from protege.core.progress import progress_bar
from protege.core.workers import ignore_sigint
from protege.eval.stats import mean_interval, wilson_interval
from protege.nn.babyai_policy import BabyAIPolicy, PolicyConfig
from protege.rl.babyai_rollout import load_policy, play_episodes
from protege.worlds.babyai.levels import (
    EVAL_SEED_START,
    check_level,
    episode_success,
    make_env,
)


def rollout(model: BabyAIPolicy, level: str, seeds: list[int], greedy: bool = True,
            n_envs: int = 16, sample_seed: int = 0, on_episode=None) -> list[dict]:
    """Play one episode per seed; returns [{seed, success, return, length}] in seed order.
    `on_episode()` is called after each finished episode (progress reporting)."""
    played = play_episodes(model, lambda: make_env(level), seeds, greedy, n_envs, sample_seed, on_episode)
    return [{"seed": p["seed"], "success": episode_success(p["terminated"], p["rewards"][-1]),
             "return": p["return"], "length": p["length"]} for p in played]


_progress_queue = None  # set in each worker process by `_init_worker`


def _init_worker(queue) -> None:
    global _progress_queue
    _progress_queue = queue
    ignore_sigint()


def _report_episode() -> None:
    if _progress_queue is not None:
        _progress_queue.put(1)


def _worker(args, on_episode=_report_episode) -> list[dict]:
    torch.set_num_threads(1)
    weights, policy_cfg, level, seeds, greedy = args
    model = BabyAIPolicy(PolicyConfig(**policy_cfg))
    model.load_state_dict(weights)
    model.eval()
    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints each rejected layout
        return rollout(model, level, seeds, greedy, sample_seed=seeds[0], on_episode=on_episode)


def evaluate_policy(model: BabyAIPolicy, policy_cfg: PolicyConfig, level: str, episodes: int,
                    workers: int = 2, greedy: bool = True, seed_start: int | None = None,
                    progress: bool = True) -> dict:
    """Success rate, mean return and episode length with 95% intervals over held-out seeds
    (a progress bar counts finished episodes across the worker processes)."""
    check_level(level)
    if episodes <= 0 or workers <= 0:
        raise UserError(f"episodes and workers must be positive (got {episodes}, {workers})")
    if seed_start is not None and seed_start < 0:
        raise UserError(f"--seed-start must be >= 0, got {seed_start}")
    start = EVAL_SEED_START if seed_start is None else seed_start
    seeds = list(range(start, start + episodes))
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    cfg = {"dim": policy_cfg.dim, "n_film": policy_cfg.n_film}
    parts = [p.tolist() for p in np.array_split(seeds, workers) if len(p)]
    jobs = [(weights, cfg, level, part, greedy) for part in parts]
    with progress_bar(progress) as bar:
        task = bar.add_task(f"eval {level}", total=episodes)
        if len(jobs) == 1:
            episodes_out = _worker(jobs[0], on_episode=lambda: bar.advance(task))
        else:
            episodes_out = _run_workers(jobs, lambda n: bar.advance(task, n))
    return summarise(level, episodes_out)


def _run_workers(jobs: list, advance) -> list[dict]:
    """The jobs in spawned processes; each finished episode arrives on a queue for the bar."""
    ctx = mp.get_context("spawn")
    queue, total, counted = ctx.Queue(), sum(len(job[3]) for job in jobs), 0
    with ctx.Pool(len(jobs), initializer=_init_worker, initargs=(queue,)) as pool:
        result = pool.map_async(_worker, jobs)
        while not result.ready():
            result.wait(0.5)
            counted += _drain(queue, advance)
        episodes = [e for part in result.get() for e in part]
        # a worker's queue feeder may flush after its result arrived: collect the rest (one per
        # episode) while the workers are still alive
        while counted < total:
            try:
                counted += queue.get(timeout=10)
            except Empty:
                break
            advance(1)
    return episodes


def _drain(queue, advance) -> int:
    n = 0
    try:
        while True:
            n += queue.get_nowait()
    except Empty:
        advance(n)
        return n


def summarise(level: str, results: list[dict]) -> dict:
    n = len(results)
    wins = sum(r["success"] for r in results)
    lo, hi = wilson_interval(wins, n)
    ret, ret_lo, ret_hi = mean_interval([r["return"] for r in results])
    length, len_lo, len_hi = mean_interval([r["length"] for r in results])
    return {"level": level, "episodes": n, "success": wins / n, "success_lo": lo, "success_hi": hi,
            "return": ret, "return_lo": ret_lo, "return_hi": ret_hi,
            "length": length, "length_lo": len_lo, "length_hi": len_hi,
            "seeds": f"{results[0]['seed']}..{results[-1]['seed']}"}


def evaluate_checkpoint(path: Path, level: str | None, episodes: int, workers: int,
                        greedy: bool = True, seed_start: int | None = None) -> list[dict]:
    # a run of another system's agent (e.g. a hierarchical one) is evaluated by that system
    from protege.core.registry import run_evaluator
    from protege.core.runs import read_run_config
    run_dir = Path(path) if (Path(path) / "config.yaml").exists() else Path(path).parent.parent
    if (run_dir / "config.yaml").exists():
        evaluator = run_evaluator(read_run_config(run_dir).get("experiment"))
        if evaluator is not None:
            return evaluator(path, level, episodes, workers, greedy, seed_start)
    model, policy_cfg, config = load_policy(path)
    level = level or config.get("level")
    if not level:
        raise UserError(f"{path}: the run's config names no level; pass --level")
    row = evaluate_policy(model, policy_cfg, level, episodes, workers, greedy, seed_start)
    # kept beside the run, with the settings used
    from protege.core.runs import save_eval
    path = Path(path)
    run_dir = path if (path / "config.yaml").exists() else path.parent.parent
    start = EVAL_SEED_START if seed_start is None else seed_start
    checkpoint = "" if run_dir == path else f"-{path.name}"
    name = f"babyai-{level}-{episodes}ep-{'greedy' if greedy else 'sampled'}-from{start}{checkpoint}"
    save_eval(run_dir, name, {"path": str(path), "level": level, "episodes": episodes,
                              "greedy": greedy, "seed_start": start}, row)
    return [{"run": path.name, **format_row(row)}]


def format_row(r: dict) -> dict:
    """One table row: each metric with its 95% interval."""
    return {"level": r["level"], "episodes": r["episodes"],
            "success (95% Wilson)": f"{r['success']:.3f} [{r['success_lo']:.3f}, {r['success_hi']:.3f}]",
            "return (95% t)": f"{r['return']:.3f} [{r['return_lo']:.3f}, {r['return_hi']:.3f}]",
            "length (95% t)": f"{r['length']:.1f} [{r['length_lo']:.1f}, {r['length_hi']:.1f}]",
            "seeds": r["seeds"]}
