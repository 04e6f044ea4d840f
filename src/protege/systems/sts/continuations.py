"""`protege sts run`: every agent continues every scenario for a step budget (format: `formats.py`).

Work is split into (agent, chunk of scenarios) jobs run by a spawned process pool (`workers`
processes, `core.workers.ignore_sigint` so Ctrl-C stops the parent once). Each finished job is one
file OUT/.chunks/<agent index>-<first scenario>.jsonl written atomically, beside OUT/.chunks/job.json
naming the inputs; a rerun of the same command skips finished jobs (resume after a kill), a rerun
with other inputs is refused. When all jobs are done the chunks are joined into
continuations.jsonl with a checksum manifest and .chunks is removed.

Randomness: the random agent and the noisy bot draw from a generator seeded by
`core.seeds.stream_seed(seed, "<agent>/<scenario id>")`, so a continuation does not depend on the
worker count, the chunking or a resume.
"""

import json
import multiprocessing as mp
import shutil
from pathlib import Path

import numpy as np

from protege.core.atomic import write_json_atomic, write_text_atomic
from protege.core.errors import UserError
from protege.core.progress import progress_bar
from protege.core.seeds import stream_seed
from protege.core.workers import ignore_sigint
from protege.data.manifest import (
    MANIFEST,
    check_output_folder,
    file_sha256,
    write_manifest,
)
from protege.systems.sts.agents import (
    Agent,
    continue_scenario,
    load_agent_policy,
    parse_agent,
)
from protege.systems.sts.formats import (
    CONTINUATIONS_FILE,
    CONTINUATIONS_KIND,
    SCENARIOS_FILE,
    read_scenarios,
    scenario_row,
)
from protege.worlds.babyai.levels import episode_success
from protege.worlds.babyai.scenarios import restore


def _job_file(out: Path, agent_index: int, start: int) -> Path:
    return out / ".chunks" / f"{agent_index:03d}-{start:06d}.jsonl"


def run_job(args) -> tuple[int, int, int]:
    """Worker: one agent on scenarios [start, start + count); writes its chunk file atomically."""
    import contextlib
    import io

    import torch
    torch.set_num_threads(1)
    agent_dict, agent_index, scenarios_dir, start, count, budget, seed, out = args
    agent = Agent(**agent_dict)
    _, scenarios = read_scenarios(Path(scenarios_dir))
    model = load_agent_policy(agent)[0] if agent.kind == "policy" else None
    rows, wins = [], 0
    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints rejected layouts
        for scenario in scenarios[start:start + count]:
            rng = np.random.default_rng(stream_seed(seed, f"{agent.name}/{scenario.id}"))
            played = continue_scenario(agent, scenario, budget, rng, model)
            success = bool(played["rewards"]) and episode_success(played["terminated"], played["rewards"][-1])
            wins += success
            row = {k: v for k, v in scenario_row(scenario).items() if k not in ("image", "direction", "source", "id")}
            rows.append({"agent": agent.name, "scenario": scenario.id, **row, "budget": budget, **played,
                         "success": success})
    write_text_atomic(_job_file(Path(out), agent_index, start), "".join(json.dumps(r) + "\n" for r in rows))
    return agent_index, count, wins


def _check_job(out: Path, job: dict) -> None:
    """Refuse to write over anything but an earlier (or interrupted) run of the same job."""
    marker = out / ".chunks" / "job.json"
    if marker.exists():
        if json.loads(marker.read_text()) != job:
            raise UserError(f"--out {out}: holds an interrupted run with other scenarios, agents, "
                            f"budget or seed; rerun that command to finish it, or choose another path")
        return
    check_output_folder(out, CONTINUATIONS_KIND, inputs=[job["scenarios"]])


def _check_restorable(scenarios_dir: Path, scenarios, budget: int) -> None:
    """Replay every prefix before any work, so a bad scenario is one line, not a failed worker."""
    import contextlib
    import io
    for s in scenarios:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                restore(s, budget)
        except UserError as e:
            raise UserError(f"{scenarios_dir / SCENARIOS_FILE}: {e}") from None


def run_continuations(scenarios_dir: Path, agent_specs: list[str], out: Path, budget: int | None = None,
                      workers: int = 2, seed: int = 0, chunk_size: int = 25, progress: bool = True) -> list[dict]:
    """Continue every scenario with every agent; returns a summary row per agent."""
    scenarios_dir, out = Path(scenarios_dir), Path(out)
    if not agent_specs:
        raise UserError("name at least one agent; " + "random, bot, bot:noise=P or a run directory")
    if workers < 1 or chunk_size < 1:
        raise UserError(f"--workers and --chunk-size must be >= 1 (got {workers}, {chunk_size})")
    header, scenarios = read_scenarios(scenarios_dir)
    agents = [parse_agent(s) for s in agent_specs]
    names = [a.name for a in agents]
    if len(set(names)) != len(names):
        raise UserError(f"agents named twice: {names}; give each agent once")
    for agent in agents:
        if agent.kind == "policy":
            load_agent_policy(agent)  # a broken run fails here, in one line, before any work
    budget = int(budget or header.get("budget") or 64)
    if budget < 1:
        raise UserError(f"--budget must be >= 1, got {budget}")
    _check_restorable(scenarios_dir, scenarios, budget)
    job = {"scenarios": str(scenarios_dir.resolve()), "scenarios_sha256": file_sha256(scenarios_dir / SCENARIOS_FILE),
           "agents": [a.__dict__ for a in agents], "budget": budget, "seed": seed}
    _check_job(out, job)
    write_json_atomic(out / ".chunks" / "job.json", job)
    jobs = [(a.__dict__, i, str(scenarios_dir), start, min(chunk_size, len(scenarios) - start), budget, seed, str(out))
            for i, a in enumerate(agents) for start in range(0, len(scenarios), chunk_size)
            if not _job_file(out, i, start).exists()]
    with progress_bar(progress) as bar:
        task = bar.add_task("continuations", total=len(agents) * len(scenarios))
        bar.advance(task, len(agents) * len(scenarios) - sum(j[4] for j in jobs))
        if workers == 1 or len(jobs) <= 1:
            for j in jobs:
                bar.advance(task, run_job(j)[1])
        else:
            with mp.get_context("spawn").Pool(min(workers, len(jobs)), initializer=ignore_sigint) as pool:
                for _, count, _ in pool.imap_unordered(run_job, jobs):
                    bar.advance(task, count)
    return _join(out, job, agents, scenarios)


def _join(out: Path, job: dict, agents: list[Agent], scenarios) -> list[dict]:
    """Join the finished chunks (agent order, scenario order) into continuations.jsonl + manifest."""
    header = {"format": CONTINUATIONS_KIND, "version": 1, "scenarios": job["scenarios"],
              "scenarios_sha256": job["scenarios_sha256"], "budget": job["budget"],
              "seed": job["seed"], "agents": [a.name for a in agents]}
    lines = [json.dumps(header) + "\n"]
    summary = []
    for i, agent in enumerate(agents):
        rows = [json.loads(line) for path in sorted((out / ".chunks").glob(f"{i:03d}-*.jsonl"))
                for line in path.read_text().splitlines() if line.strip()]
        lines += [json.dumps(r) + "\n" for r in rows]
        wins = sum(r["success"] for r in rows)
        summary.append({"agent": agent.name, "scenarios": len(rows), "verifier success": wins / len(rows)})
    for stale in (CONTINUATIONS_FILE, MANIFEST):  # an earlier finished run of this job is replaced
        (out / stale).unlink(missing_ok=True)
    write_text_atomic(out / CONTINUATIONS_FILE, "".join(lines))
    write_manifest(out, {"kind": CONTINUATIONS_KIND, "agents": header["agents"], "budget": job["budget"],
                         "scenarios": len(scenarios)})
    shutil.rmtree(out / ".chunks")
    return summary
