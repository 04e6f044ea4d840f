"""Marks at scale without people: simulated annotators on BabyAI episodes, written as a studio export.

Ground truth is the BabyAI bot's plan. For every frame f of an episode (the observation after f
actions) `remaining_steps` copies the environment together with a bot that has followed the
episode (`BabyAIBot.replan(action_taken)`, its DAgger use) and lets the copy finish the mission:
the number of steps it needs is d_f, the distance to the goal (0 at a success; -1 where the bot
cannot finish within `cap` steps, e.g. after the agent dropped an object where the bot's plan
breaks; a fresh bot is tried before giving up).

A simulated annotator watches d_f and, like a person who marks moments rather than every step,
marks *progress* when d has fallen by `stride` since its last mark (a subgoal done, the goal
nearer) and *regress* when it has risen by `stride`; it ends with a success or failure label.
Noise, each settable: `miss` drops a true mark, `false_rate` adds a spurious progress or regress
mark per frame, `jitter` moves a mark by a Gaussian number of frames, `delay` moves every mark
late by a fixed number of frames (a reaction time: the annotator's timing bias) and `optimism`
records a regress mark as progress (a lenient annotator's bias).

Episodes come from a spread of agents: `random` (uniform actions), `bot:EPS` (the bot, taking a
uniformly random action with probability EPS) and `policy:RUN` (a trained BabyAI run's policy,
sampling). The folder is the studio's export format (`systems/feedback/export.py`: marks.jsonl,
annotators.jsonl, episodes.jsonl, manifest), so `load_export`, `protege data validate` and the
ibt experiment read it as they read people's marks; `truth.jsonl` adds what only a simulation
knows (agent, d_f per frame), which the evaluation uses when present.
"""

import contextlib
import copy
import io
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protege.core.config_help import check_fields
from protege.core.errors import UserError
from protege.core.seeds import stream_seed
from protege.systems.feedback.episodes import episode_id
from protege.systems.feedback.export import KIND, MARKS_FORMAT, _write_jsonl, per_step

MARKS_SEED_START = 2 * 10**9
"""first episode seed of simulated marking data: above demonstrations (from 0) and evaluation
(from 10^9), below online training episodes (from 2^32)"""
UNKNOWN = -1
"""d_f where the bot could not finish from frame f"""
T0 = 1_767_225_600.0  # 2026-01-01T00:00Z: simulated marks get deterministic timestamps from here


@dataclass(frozen=True)
class Annotator:
    """A simulated annotator's marking rule and noise."""
    stride: int = 2
    """mark when the bot's remaining steps moved this far since the last mark"""
    miss: float = 0.0
    """probability of dropping a true progress/regress mark"""
    false_rate: float = 0.0
    """probability per frame of a spurious mark (progress or regress, even odds)"""
    jitter: float = 0.0
    """standard deviation (frames) of the Gaussian timing noise of each mark"""
    delay: int = 0
    """frames every mark comes late (a reaction time; negative: early)"""
    optimism: float = 0.0
    """probability of recording a regress mark as progress"""

    def __post_init__(self):
        check_fields(self, stride=">=1", miss="[0,1]", false_rate="[0,1]", jitter=">=0",
                     optimism="[0,1]")


# --- agents -------------------------------------------------------------------------------------

def parse_agents(spec: str) -> list[str]:
    """"random,bot:0.3,policy:runs/bc" -> checked agent names (the valid forms in the message)."""
    agents = [a.strip() for a in spec.split(",") if a.strip()]
    if not agents:
        raise UserError("--agents: give at least one of random, bot:EPS, policy:RUN_DIR")
    for a in agents:
        kind, _, arg = a.partition(":")
        if kind == "random" and not arg:
            continue
        if kind == "bot":
            try:
                if 0.0 <= float(arg) <= 1.0:
                    continue
            except ValueError:
                pass
            raise UserError(f"--agents {a}: bot:EPS needs EPS in [0, 1] (the random-action rate)")
        if kind == "policy" and arg:
            if not Path(arg).exists():
                raise UserError(f"--agents {a}: no run directory {arg}")
            continue
        raise UserError(f"--agents {a!r}: unknown agent; valid: random, bot:EPS, policy:RUN_DIR")
    return agents


def _bot(env):
    from minigrid.utils.baby_ai_bot import BabyAIBot
    return BabyAIBot(env.unwrapped)


def play_bot(env, seed: int, eps: float, rng: np.random.Generator) -> list[int]:
    """Actions of one episode of the bot taking a uniformly random action with probability eps
    (eps = 1 is the random agent). The bot follows what was actually done (replan(action_taken));
    a bot whose planner gives up is replaced by a fresh one (or a random action if that fails too)."""
    with contextlib.redirect_stdout(io.StringIO()):
        env.reset(seed=int(seed))
    bot, taken, actions, done = (_bot(env) if eps < 1 else None), None, [], False
    while not done:
        action = int(rng.integers(0, env.action_space.n))
        if bot is not None:
            try:
                suggested = int(bot.replan(taken))
            except Exception:  # the bot's planner gives up on odd states: start a fresh one
                bot, suggested = _bot(env), None
                with contextlib.suppress(Exception):
                    suggested = int(bot.replan())
            if suggested is not None and rng.random() >= eps:
                action = suggested
        _, _, terminated, truncated, _ = env.step(action)
        actions.append(action)
        taken, done = action, terminated or truncated
    return actions


def play_policy(run: str, level: str, seeds: list[int], sample_seed: int) -> list[list[int]]:
    from protege.rl.babyai_rollout import load_policy, play_episodes
    from protege.worlds.babyai.levels import make_env
    model, _, config = load_policy(Path(run))
    if config.get("level") != level:
        raise UserError(f"--agents policy:{run}: a policy of {config.get('level')}, not {level}")
    model.eval()
    with contextlib.redirect_stdout(io.StringIO()):
        played = play_episodes(model, lambda: make_env(level), seeds, greedy=False, sample_seed=sample_seed)
    return [p["actions"] for p in played]


# --- ground truth -------------------------------------------------------------------------------

def _finish(env, bot, taken, cap: int) -> int:
    """Steps the bot needs to finish from here (UNKNOWN if it fails or exceeds cap); works on copies."""
    env, bot = copy.deepcopy((env, bot))
    env.unwrapped.max_steps = env.unwrapped.step_count + cap + 1
    for n in range(1, cap + 1):
        action = bot.replan(taken)
        taken = None
        _, reward, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            return n if terminated and reward > 0 else UNKNOWN
    return UNKNOWN


def remaining_steps(env, seed: int, actions: list[int], cap: int = 100) -> list[int]:
    """d_f, the bot's steps to finish the mission from frame f = 0..T of (seed, actions)."""
    with contextlib.redirect_stdout(io.StringIO()):
        env.reset(seed=int(seed))
    bot, taken, out, ended, success = _bot(env), None, [], False, False
    for f in range(len(actions) + 1):
        if ended:  # the last frame of a terminated episode: done, or failed for good
            out.append(0 if success else UNKNOWN)
            break
        out.append(_distance(env, bot, taken, cap))
        if f == len(actions):
            break
        try:
            bot.replan(taken)
        except Exception:  # the planner gives up on odd states: a fresh bot follows from here
            bot = _bot(env)
        _, reward, ended, _, _ = env.step(int(actions[f]))
        success, taken = bool(ended and reward > 0), int(actions[f])
    return out


def _distance(env, bot, taken, cap: int) -> int:
    """The bot that followed the episode finishes from here; else a fresh one; else UNKNOWN."""
    for tracker, last in ((bot, taken), (None, None)):
        try:
            d = _finish(env, tracker if tracker is not None else _bot(env), last, cap)
        except Exception:  # the planner raises on states it cannot handle
            d = UNKNOWN
        if d != UNKNOWN:
            return d
    return UNKNOWN


# --- annotation ---------------------------------------------------------------------------------

def true_marks(remaining: list[int], stride: int) -> list[tuple[int, str]]:
    """(frame, kind) of the noise-free annotator: progress when d fell by `stride` since the last
    mark, regress when it rose by `stride`; frames where d is unknown are skipped."""
    marks, anchor = [], None
    for f, d in enumerate(remaining):
        if d == UNKNOWN:
            continue
        if anchor is None:
            anchor = d
        elif d <= anchor - stride:
            marks.append((f, "progress")); anchor = d
        elif d >= anchor + stride:
            marks.append((f, "regress")); anchor = d
    return marks


def noisy_marks(remaining: list[int], success: bool, a: Annotator,
                rng: np.random.Generator) -> list[tuple[int, str]]:
    """One simulated annotator's marks on an episode: true marks through the noise, plus a final
    success/failure label on the last frame."""
    T = len(remaining) - 1
    out = []
    for f, kind in true_marks(remaining, a.stride):
        if rng.random() < a.miss:
            continue
        if kind == "regress" and rng.random() < a.optimism:
            kind = "progress"
        out.append((f, kind))
    for f in range(1, T + 1):
        if rng.random() < a.false_rate:
            out.append((f, "progress" if rng.random() < 0.5 else "regress"))
    moved = []
    for f, kind in out:
        shift = a.delay + (int(round(rng.normal(0, a.jitter))) if a.jitter else 0)
        moved.append((int(min(max(f + shift, 1 if T else 0), T)), kind))
    moved.append((T, "success" if success else "failure"))
    return sorted(moved)


# --- the whole simulation -----------------------------------------------------------------------

@dataclass(frozen=True)
class SimulationConfig:
    level: str
    episodes: int
    agents: tuple[str, ...]
    annotator: Annotator
    annotators: int = 1
    seed: int = 0
    seed_start: int = MARKS_SEED_START
    cap: int = 100
    workers: int = 1
    """processes computing the ground truth (the costly part); the export does not depend on it"""


_WORKER_ENVS: dict = {}


def _remaining_job(job: tuple[str, int, list[int], int]) -> list[int]:
    """remaining_steps in a worker process (one environment per level, kept between jobs)."""
    from protege.worlds.babyai.levels import make_env
    level, seed, actions, cap = job
    if level not in _WORKER_ENVS:
        _WORKER_ENVS[level] = make_env(level)
    return remaining_steps(_WORKER_ENVS[level], seed, actions, cap)


def simulate(cfg: SimulationConfig, out: Path, progress: bool = True) -> dict:
    """Play cfg.episodes (split evenly over the agents, consecutive seeds), compute d_f, mark them
    with `annotators` independent simulated annotators and write a studio export to `out`.

    The episodes are played in one process (the agents share one random stream, so the export is
    the same for any `workers`); only the bot's ground truth, a copy-and-finish per frame, is spread
    over `workers` processes."""
    import multiprocessing as mp

    from protege.core.progress import progress_bar
    from protege.core.workers import ignore_sigint
    from protege.worlds.babyai.levels import check_level, episode_success, make_env
    from protege.worlds.babyai.replay import replay
    check_level(cfg.level)
    env = make_env(cfg.level)
    rng = np.random.default_rng(stream_seed(cfg.seed, "simulate/agents"))
    seeds = list(range(cfg.seed_start, cfg.seed_start + cfg.episodes))
    rows, truth = [], []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"played {cfg.level}", total=cfg.episodes)
        for agent, agent_seeds in zip(cfg.agents, np.array_split(seeds, len(cfg.agents))):
            agent_seeds = [int(s) for s in agent_seeds]
            kind, _, arg = agent.partition(":")
            if kind == "policy":
                played = play_policy(arg, cfg.level, agent_seeds, stream_seed(cfg.seed, "simulate/policy"))
            for i, seed in enumerate(agent_seeds):
                actions = played[i] if kind == "policy" else play_bot(env, seed, 1.0 if kind == "random" else float(arg), rng)
                r = replay(cfg.level, seed, actions, env=env)
                eid = episode_id(cfg.level, seed, actions)
                rows.append({"id": eid, "level": cfg.level, "seed": seed, "mission": r.mission,
                             "actions": [int(a) for a in actions], "rewards": [float(x) for x in r.rewards],
                             "terminated": r.terminated, "truncated": r.truncated})
                truth.append({"episode": eid, "agent": agent,
                              "success": episode_success(r.terminated, float(r.rewards[-1]) if len(r.rewards) else 0.0)})
                bar.advance(task)
        task = bar.add_task(f"bot ground truth {cfg.level}", total=cfg.episodes)
        jobs = [(cfg.level, row["seed"], row["actions"], cfg.cap) for row in rows]
        with contextlib.ExitStack() as stack:
            if cfg.workers == 1:
                results = (remaining_steps(env, *job[1:]) for job in jobs)
            else:
                pool = stack.enter_context(mp.get_context("spawn").Pool(cfg.workers, initializer=ignore_sigint))
                results = pool.imap(_remaining_job, jobs, chunksize=8)
            for known, remaining in zip(truth, results):
                known["remaining"] = remaining
                bar.advance(task)
    meta = {"level": cfg.level, "agents": list(cfg.agents), "seed_start": cfg.seed_start}
    return annotate(rows, truth, cfg.annotator, cfg.annotators, cfg.seed, out, meta)


def reannotate(source: Path, out: Path, annotator: Annotator, annotators: int, seed: int) -> dict:
    """Mark the episodes of an earlier simulated export again with other annotators (other noise):
    no episode is played again and no bot runs (its remaining steps are in truth.jsonl)."""
    from protege.systems.feedback.export import _check, _rows
    source = Path(source)
    meta = _check(source)
    if not (source / "truth.jsonl").exists() or "simulated" not in meta:
        raise UserError(f"--reannotate {source}: not a simulated export (no truth.jsonl); "
                        f"only `protege studio simulate` folders can be marked again")
    keys = ("id", "level", "seed", "mission", "actions", "rewards", "terminated", "truncated")
    rows = [{k: row[k] for k in keys} for _, row in _rows(source, "episodes.jsonl")]
    truth = {row["episode"]: row for _, row in _rows(source, "truth.jsonl")}
    base = {k: meta["simulated"][k] for k in ("level", "agents", "seed_start")}
    return annotate(rows, [truth[r["id"]] for r in rows], annotator, annotators, seed, out,
                    {**base, "reannotated_from": str(source.resolve())})


def annotate(rows: list[dict], truth: list[dict], a: Annotator, annotators: int, seed: int,
             out: Path, meta: dict) -> dict:
    """Mark every episode (rows as the studio's episodes.jsonl without the mark fields; truth:
    agent, success, remaining) with `annotators` simulated annotators; write the export."""
    mark_rng = np.random.default_rng(stream_seed(seed, "simulate/annotators"))
    marks, per_user = [], {f"sim-{k}": 0 for k in range(annotators)}
    for row, known in zip(rows, truth):
        ep_marks = [(f"sim-{k}", frame, kind) for k in range(annotators)
                    for frame, kind in noisy_marks(known["remaining"], known["success"], a, mark_rng)]
        row.update({"annotators": sorted({u for u, _, _ in ep_marks}),
                    "labels": {u: k for u, _, k in ep_marks if k in ("success", "failure")},
                    "annotations": per_step(len(row["actions"]), [(f, k) for _, f, k in ep_marks])})
        for user, frame, kind in ep_marks:
            stamp = _iso(T0 + len(marks))
            marks.append({"uuid": str(uuid.UUID(int=int(mark_rng.integers(0, 2**63)) << 64
                                                | int(mark_rng.integers(0, 2**63)), version=4)),
                          "episode": row["id"], "user": user, "step": frame, "kind": kind,
                          "comment": "", "created_at": stamp, "updated_at": stamp})
            per_user[user] += 1
    settings = {**meta, "seed": seed, "annotators": annotators, "stride": a.stride, "miss": a.miss,
                "false_rate": a.false_rate, "jitter": a.jitter, "delay": a.delay, "optimism": a.optimism}
    _write(out, rows, truth, marks, per_user, settings)
    return {"episodes": len(rows), "marks": len(marks), "successes": sum(bool(t["success"]) for t in truth),
            "progress_marks": sum(m["kind"] == "progress" for m in marks),
            "regress_marks": sum(m["kind"] == "regress" for m in marks)}


def _iso(t: float) -> str:
    from protege.systems.feedback.db import iso
    return iso(t)


def _write(out: Path, rows: list, truth: list, marks: list, per_user: dict, settings: dict) -> None:
    """The studio's export layout (episodes by id, marks by episode, user, step), plus truth.jsonl."""
    from protege.data.manifest import output_folder, write_manifest
    order = {eid: i for i, eid in enumerate(sorted(r["id"] for r in rows))}
    pairs = sorted({r["id"]: (r, t) for r, t in zip(rows, truth)}.values(), key=lambda p: p[0]["id"])
    marks.sort(key=lambda m: (order[m["episode"]], m["user"], m["step"], m["created_at"], m["uuid"]))
    with output_folder(Path(out), KIND) as tmp:
        _write_jsonl(tmp / "marks.jsonl", [MARKS_FORMAT, *marks])
        _write_jsonl(tmp / "annotators.jsonl", (
            {"user": u, "role": "annotator", "assigned": len(pairs), "done": len(pairs), "marks": n}
            for u, n in sorted(per_user.items())))
        _write_jsonl(tmp / "episodes.jsonl", (r for r, _ in pairs))
        _write_jsonl(tmp / "truth.jsonl", (t for _, t in pairs))
        write_manifest(tmp, {"kind": KIND, "version": MARKS_FORMAT["version"], "marks": len(marks),
                             "episodes": len(pairs), "annotators": len(per_user), "simulated": settings})
