"""Judged episodes for the learned success detector: a spread of agents plays a spread of levels and
the world's verifier labels every episode (arXiv:2205.13274's judged continuations; the splits of
SuccessVQA, arXiv:2303.07280, need several agents and several levels).

Agents (each plays its own seeds, so no two agents share a layout):
    random            a uniform random action every step (almost always a failure)
    bot               minigrid's BabyAIBot (almost always a success)
    bot-noise-E       the bot, but with probability E a uniform random action instead; the bot is
                      told the action taken (`replan(action_taken)`) and plans again from there
    bot-stop          the bot's successful episode cut 1-3 steps before its final step: it ends
                      early but short of success, the hard negative for "ended early means success"
    run:PATH          a trained BabyAI policy (e.g. a BC run of `protege run babyai_bc`), sampling
                      its actions (greedy play of a weak policy loops until the limit)
Every episode is cut at `max_steps` (the continuation budget), whatever the level's own limit.

Folder (kind `protege.sts.judged-episodes`, written by `data.manifest.output_folder`):
    episodes.npz        per observation (S = sum of T + 1): images [S, 7, 7, 3] uint8, directions [S];
                        per action (A = sum of T): actions [A], rewards [A];
                        per episode: level, agent, mission (str), seed, length T, terminated,
                        truncated, success (the verifier's label), max_steps
    .chunks/            work in progress, one file per (level, agent): a rerun skips finished ones
    protege-manifest.json
"""

import contextlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protege.core.atomic import atomic_path
from protege.core.errors import UserError
from protege.core.seeds import stream_seed
from protege.data.episodes import Episode
from protege.data.manifest import (
    MANIFEST,
    check_output_folder,
    read_kind,
    write_manifest,
)
from protege.worlds.babyai.levels import (
    N_ACTIONS,
    check_level,
    episode_success,
    make_env,
)

KIND = "protege.sts.judged-episodes"
AGENTS = ("random", "bot", "bot-noise-0.2", "bot-noise-0.5", "bot-noise-0.8", "bot-stop")
SEED_START = 3 * 10**9
"""first seed of judged episodes: above the demonstration (0) and evaluation (10^9) seeds"""
AGENT_SEED_STRIDE = 10**6
"""agent i plays seeds SEED_START + i * stride + j: no layout is shared between agents"""


def check_agent(agent: str) -> str:
    if agent in ("random", "bot", "bot-stop"):
        return agent
    if agent.startswith("run:"):
        if not (Path(agent.removeprefix("run:")) / "config.yaml").is_file():
            raise UserError(f"agent {agent!r}: {agent.removeprefix('run:')} is not a run directory")
        return agent
    if agent.startswith("bot-noise-"):
        try:
            noise = float(agent.removeprefix("bot-noise-"))
        except ValueError:
            noise = -1.0
        if 0 <= noise <= 1:
            return agent
    raise UserError(f"agent {agent!r}: valid agents are random, bot, bot-stop and bot-noise-E "
                    f"with 0 <= E <= 1 (e.g. {', '.join(AGENTS)})")


def agent_index(agent: str) -> int:
    """Where an agent's seeds start (in units of AGENT_SEED_STRIDE): fixed for the listed agents,
    from the name's CRC-32 for other noise levels."""
    return AGENTS.index(agent) if agent in AGENTS else 100 + zlib.crc32(agent.encode()) % 900


def play(env, agent: str, seed: int, rng: np.random.Generator) -> dict | None:
    """One episode of `agent` from `seed`: observations, actions, rewards and how it ended; None
    when `bot-stop` has nothing to cut (the bot failed or succeeded in one step)."""
    from minigrid.utils.baby_ai_bot import BabyAIBot
    obs, _ = env.reset(seed=seed)
    noise = float(agent.removeprefix("bot-noise-")) if agent.startswith("bot-noise-") else 0.0
    bot = None if agent == "random" else BabyAIBot(env.unwrapped)
    images, directions, actions, rewards = [obs["image"]], [int(obs["direction"])], [], []
    terminated = truncated = False
    taken = None
    while not (terminated or truncated):
        action = int(rng.integers(N_ACTIONS)) if bot is None else None
        if bot is not None:
            try:
                planned = int(bot.replan(taken))
            except Exception:  # the planner gives up on a few states (after noise): act at random
                planned, bot = int(rng.integers(N_ACTIONS)), None
            action = int(rng.integers(N_ACTIONS)) if rng.random() < noise else planned
        obs, reward, terminated, truncated, _ = env.step(action)
        images.append(obs["image"]); directions.append(int(obs["direction"]))
        actions.append(action); rewards.append(float(reward)); taken = action
    episode = {"images": np.stack(images), "directions": np.asarray(directions, np.int64),
               "actions": np.asarray(actions, np.int64), "rewards": np.asarray(rewards, np.float32),
               "terminated": bool(terminated), "truncated": bool(truncated), "mission": str(obs["mission"])}
    if agent == "bot-stop":
        return _cut_short(episode, int(rng.integers(1, 4)))
    return episode


def _cut_short(episode: dict, k: int) -> dict | None:
    """The episode without its last k steps (k < T): neither terminated nor cut by the limit."""
    steps = len(episode["actions"])
    if not episode_success(episode["terminated"], episode["rewards"][-1]) or steps <= 1:
        return None
    keep = steps - min(k, steps - 1)
    return {**episode, "images": episode["images"][:keep + 1], "directions": episode["directions"][:keep + 1],
            "actions": episode["actions"][:keep], "rewards": episode["rewards"][:keep],
            "terminated": False, "truncated": True}


def play_policy(run: Path, level: str, seeds: list[int], max_steps: int, seed: int) -> list[dict]:
    """Episodes of a trained policy (sampled actions), observations rebuilt by replay."""
    from protege.rl.babyai_rollout import load_policy, play_episodes
    from protege.worlds.babyai.replay import replay
    model, _, _ = load_policy(run)
    model.eval()
    with contextlib.redirect_stdout(io.StringIO()):
        played = play_episodes(model, lambda: make_env(level, max_steps), seeds, greedy=False,
                               sample_seed=stream_seed(seed, f"{level}/{run}"))
    env, out = make_env(level, max_steps), []
    for p in played:
        r = replay(level, p["seed"], p["actions"], env=env)
        out.append({"images": r.images, "directions": r.directions, "actions": np.asarray(p["actions"], np.int64),
                    "rewards": r.rewards, "terminated": r.terminated, "truncated": r.truncated,
                    "mission": r.mission, "seed": p["seed"]})
    return out


def play_chunk(level: str, agent: str, agent_index: int, episodes: int, max_steps: int, seed: int) -> dict:
    """`episodes` episodes of `agent` on `level` (tried seeds until that many are kept)."""
    env = make_env(level, max_steps)
    kept, start = [], SEED_START + agent_index * AGENT_SEED_STRIDE
    if agent.startswith("run:"):
        seeds = list(range(start, start + episodes))
        return pack(play_policy(Path(agent.removeprefix("run:")), level, seeds, max_steps, seed), level, agent, max_steps)
    rng = np.random.default_rng(stream_seed(seed, f"{level}/{agent}"))
    for env_seed in range(start, start + 4 * episodes):
        if len(kept) == episodes:
            break
        with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints rejected layouts
            episode = play(env, agent, env_seed, rng)
        if episode is not None:
            kept.append({**episode, "seed": env_seed})
    return pack(kept, level, agent, max_steps)


def pack(episodes: list[dict], level: str, agent: str, max_steps: int) -> dict:
    """Flat arrays of a list of played episodes (the layout of episodes.npz; no Python objects)."""
    n = len(episodes)
    cat = lambda key, shape, dtype: np.concatenate([e[key] for e in episodes]) if n else np.zeros(shape, dtype)
    return {"images": cat("images", (0, 7, 7, 3), np.uint8), "directions": cat("directions", (0,), np.int64),
            "actions": cat("actions", (0,), np.int64), "rewards": cat("rewards", (0,), np.float32),
            "level": np.asarray([level] * n, dtype="U64"), "agent": np.asarray([agent] * n, dtype="U256"),
            "mission": np.asarray([e["mission"] for e in episodes], dtype="U256"),
            "seed": np.asarray([e["seed"] for e in episodes], np.int64),
            "length": np.asarray([len(e["actions"]) for e in episodes], np.int64),
            "terminated": np.asarray([e["terminated"] for e in episodes], bool),
            "truncated": np.asarray([e["truncated"] for e in episodes], bool),
            "success": np.asarray([episode_success(e["terminated"], e["rewards"][-1] if len(e["rewards"]) else 0.0)
                                   for e in episodes], bool),
            "max_steps": np.full(n, max_steps, np.int64)}


def concat(parts: list[dict]) -> dict:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


@dataclass(frozen=True)
class DataConfig:
    levels: tuple[str, ...]
    """BabyAI levels to play"""
    out: Path
    """the folder to write"""
    agents: tuple[str, ...] = AGENTS
    """who plays (see the module docstring)"""
    episodes: int = 100
    """episodes per (level, agent)"""
    max_steps: int = 64
    """step budget of every episode"""
    seed: int = 0
    """seeds the agents' random choices"""

    def __post_init__(self):
        if not self.levels:
            raise UserError("--level: give at least one BabyAI level")
        for level in self.levels:
            check_level(level)
        if not self.agents:
            raise UserError("--agent: give at least one agent")
        for agent in self.agents:
            check_agent(agent)
        if self.episodes <= 0:
            raise UserError(f"--episodes must be positive, got {self.episodes}")
        if self.max_steps <= 0:
            raise UserError(f"--max-steps must be positive, got {self.max_steps}")


def generate(cfg: DataConfig, progress: bool = True) -> dict:
    """Play (or resume) every (level, agent) chunk and write the judged-episodes folder."""
    from protege.core.progress import progress_bar
    out = Path(cfg.out)
    interrupted = out.is_dir() and (out / ".chunks").is_dir() and not (out / MANIFEST).exists()
    if not interrupted:  # an interrupted run of this command resumes from its chunks
        check_output_folder(out, KIND)
    chunks = out / ".chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    parts = []
    jobs = [(level, agent) for level in cfg.levels for agent in cfg.agents]
    with progress_bar(progress) as bar:
        task = bar.add_task("judged episodes", total=len(jobs))
        for level, agent in jobs:
            name = agent if not agent.startswith("run:") else f"run-{zlib.crc32(agent.encode()):08x}"
            path = chunks / f"{level}--{name}--{cfg.episodes}-{cfg.max_steps}-{cfg.seed}.npz"
            if not path.exists():
                packed = play_chunk(level, agent, agent_index(agent), cfg.episodes, cfg.max_steps, cfg.seed)
                with atomic_path(path) as tmp, open(tmp, "wb") as f:
                    np.savez(f, **packed)
            with np.load(path) as z:
                parts.append({k: z[k] for k in z.files})
            bar.advance(task)
    data = concat(parts)
    with atomic_path(out / "episodes.npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **data)
    stats = summary(data)
    write_manifest(out, {"kind": KIND, "levels": list(cfg.levels), "agents": list(cfg.agents),
                         "episodes_per_pair": cfg.episodes, "max_steps": cfg.max_steps, "seed": cfg.seed,
                         "seed_start": SEED_START, **stats})
    for path in chunks.glob("*.npz"):
        path.unlink()
    chunks.rmdir()
    return stats


def summary(data: dict) -> dict:
    return {"episodes": len(data["length"]), "successes": int(data["success"].sum()),
            "steps": int(data["length"].sum())}


def load(folder: Path) -> dict:
    """The arrays of a judged-episodes folder (checksums verified)."""
    folder = Path(folder)
    read_kind(folder, KIND, "judged-episodes folder", "protege sts detector-data")
    with np.load(folder / "episodes.npz") as z:
        return {k: z[k] for k in z.files}


def obs_starts(lengths: np.ndarray) -> np.ndarray:
    """Index of each episode's first observation in the flat observation arrays (T + 1 each)."""
    return np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)


def to_episodes(data: dict) -> list[Episode]:
    """The folder's episodes as shared `Episode`s (agent and verifier label as metadata lost:
    read them from the arrays)."""
    starts, act_starts = obs_starts(data["length"]), np.concatenate([[0], np.cumsum(data["length"])[:-1]])
    out = []
    for i, (s, a, t) in enumerate(zip(starts, act_starts, data["length"])):
        out.append(Episode(observations={"image": data["images"][s:s + t + 1],
                                         "direction": data["directions"][s:s + t + 1]},
                           actions=data["actions"][a:a + t], rewards=data["rewards"][a:a + t],
                           terminated=bool(data["terminated"][i]), truncated=bool(data["truncated"][i]),
                           instruction=str(data["mission"][i]), env_id=str(data["level"][i]),
                           seed=int(data["seed"][i])))
    return out


def from_episodes(episodes: list[Episode], agent: str = "") -> dict:
    """The arrays of episodes.npz for shared `Episode`s (BabyAI observations with "image" and
    "direction"); the verifier's label from how each ended; max_steps unknown (0)."""
    if not episodes:
        raise UserError("no episodes to judge")
    played = [{"images": np.asarray(e.observations["image"], np.uint8),
               "directions": np.asarray(e.observations["direction"], np.int64),
               "actions": np.asarray(e.actions, np.int64), "rewards": np.asarray(e.rewards, np.float32),
               "terminated": bool(e.terminated), "truncated": bool(e.truncated),
               "mission": e.instruction or "", "seed": -1 if e.seed is None else int(e.seed)} for e in episodes]
    parts = [pack([p], str(e.env_id or ""), agent, 0) for p, e in zip(played, episodes)]
    return concat(parts)


def describe(folder: Path) -> tuple[str, dict]:
    """Check a judged-episodes folder (`protege data validate`): checksums, then a summary row."""
    data = load(folder)
    return "judged episodes (success detector data)", {
        **summary(data), "levels": len(set(data["level"].tolist())), "agents": len(set(data["agent"].tolist()))}
