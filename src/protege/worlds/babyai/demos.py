"""BabyAI bot demonstrations: generated in parallel processes, stored as a Minari dataset.

Layout of a demonstrations folder:
    DIR/data/                   a Minari dataset (arrow format, raw uint8 grids: no JPEG)
    DIR/protege-manifest.json   checksums of every file + meta: level, observation spec, seeds
    DIR/.chunks/chunk-*.npz     work in progress (one file per range of seeds, written atomically);
                                a rerun skips finished chunks, so an interrupted generation resumes.

The expert is minigrid's `BabyAIBot`. Per step we record the bot's current subgoal after `replan`
(`bot.stack[-1]`: its kind and target, e.g. "GoNextTo(red ball)", and its `reason`, e.g. "PutNext")
as Minari step infos `subgoal` / `subgoal_reason` (the entry beside the final observation is "").
Only episodes the bot finishes successfully are kept (as in the BabyAI papers); the others are counted.
"""

import contextlib
import functools
import io
import multiprocessing as mp
import shutil
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from protege.core.atomic import atomic_path
from protege.core.errors import UserError
from protege.core.workers import ignore_sigint
from protege.data.episodes import Episode, flatten
from protege.data.manifest import MANIFEST, verify_manifest, write_manifest
from protege.worlds.babyai.levels import (
    check_level,
    episode_ending,
    episode_success,
    make_env,
    observation_space,
    observation_spec,
)

FORMAT = "protege-babyai-demos-v1"


@dataclass(frozen=True)
class DemoConfig:
    level: str
    episodes: int
    out: Path
    workers: int = 2
    seed_start: int = 0
    chunk_size: int = 50
    """Episodes (consecutive seeds) per chunk: the unit of parallel work and of resumption."""


def describe_subgoal(subgoal) -> tuple[str, str]:
    """("GoNextTo(red ball)", "PutNext") for a bot subgoal; ("", "") for none."""
    if subgoal is None:
        return "", ""
    datum = subgoal.datum
    if hasattr(datum, "type"):
        target = f"{datum.color or ''} {datum.type or 'object'}".strip()
    elif isinstance(datum, tuple):
        target = ",".join(str(int(x)) for x in datum)
    else:
        target = ""
    kind = type(subgoal).__name__.removesuffix("Subgoal")
    return f"{kind}({target})", str(subgoal.reason or "")


def current_subgoal(bot) -> tuple[str, str]:
    """`describe_subgoal` of the subgoal the bot pursues now (the top of its stack; none when empty)."""
    return describe_subgoal(bot.stack[-1] if bot.stack else None)


def bot_episode(env, seed: int) -> dict | None:
    """Play one episode with the bot from `seed`; None if the bot fails (error or no success)."""
    from minigrid.utils.baby_ai_bot import BabyAIBot
    obs, _ = env.reset(seed=seed)
    bot = BabyAIBot(env.unwrapped)
    images, directions, actions, rewards, subgoals, reasons = [obs["image"]], [obs["direction"]], [], [], [], []
    mission, terminated, truncated = obs["mission"], False, False
    while not (terminated or truncated):
        try:
            action = int(bot.replan())
        except Exception:  # the bot's planner gives up on a few layouts; skip the seed
            return None
        subgoal, reason = current_subgoal(bot)
        obs, reward, terminated, truncated, _ = env.step(action)
        images.append(obs["image"]); directions.append(obs["direction"])
        actions.append(action); rewards.append(reward); subgoals.append(subgoal); reasons.append(reason)
    if not episode_success(terminated, rewards[-1]):  # keep the bot's successful episodes only
        return None
    return {"images": np.stack(images), "directions": np.asarray(directions, np.int64),
            "actions": np.asarray(actions, np.int64), "rewards": np.asarray(rewards, np.float64),
            "truncated": truncated, "mission": mission, "subgoals": subgoals, "reasons": reasons,
            "seed": seed}


@functools.lru_cache(maxsize=1)
def _worker_env(level: str):
    """One environment per process, reused across its chunks (every episode resets it with a seed)."""
    return make_env(level)


def run_chunk(args: tuple[str, int, int, str]) -> tuple[int, int, int]:
    """Worker: play seeds [start, start+count) and write one chunk file atomically."""
    import torch
    torch.set_num_threads(1)
    level, start, count, path = args
    env = _worker_env(level)
    # minigrid prints every rejected layout ("Sampling rejected: ...") on stdout; keep the bar clean
    with contextlib.redirect_stdout(io.StringIO()):
        episodes = [bot_episode(env, seed) for seed in range(start, start + count)]
    kept = [e for e in episodes if e is not None]
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **_pack(kept))
    return start, len(kept), sum(len(e["actions"]) for e in kept)


def _pack(episodes: list[dict]) -> dict:
    """Concatenate episodes into flat arrays (no Python objects, so loading needs no pickle)."""
    cat = lambda key, empty: np.concatenate([e[key] for e in episodes]) if episodes else empty  # noqa: E731
    n_steps = sum(len(e["actions"]) for e in episodes)

    def strings(key: str) -> np.ndarray:
        """Per-step strings flattened in one pass; [""] then [:n_steps] keeps an empty chunk's dtype str."""
        return np.asarray(list(chain.from_iterable(e[key] for e in episodes)) or [""], str)[:n_steps]

    return {"images": cat("images", np.zeros((0, 7, 7, 3), np.uint8)),
            "directions": cat("directions", np.zeros(0, np.int64)),
            "actions": cat("actions", np.zeros(0, np.int64)),
            "rewards": cat("rewards", np.zeros(0, np.float64)),
            "lengths": np.asarray([len(e["actions"]) for e in episodes], np.int64),
            "seeds": np.asarray([e["seed"] for e in episodes], np.int64),
            "truncated": np.asarray([e["truncated"] for e in episodes], bool),
            "missions": np.asarray([e["mission"] for e in episodes] or [""], str)[:len(episodes)],
            "subgoals": strings("subgoals"), "reasons": strings("reasons")}


def chunk_ranges(cfg: DemoConfig) -> list[tuple[int, int]]:
    starts = range(cfg.seed_start, cfg.seed_start + cfg.episodes, cfg.chunk_size)
    return [(s, min(cfg.chunk_size, cfg.seed_start + cfg.episodes - s)) for s in starts]


def generate_demos(cfg: DemoConfig, progress: bool = True) -> dict:
    """Generate (or resume) the demonstrations of `cfg` and write the Minari dataset; returns stats."""
    check_level(cfg.level)
    if cfg.episodes <= 0:
        raise UserError(f"--episodes must be positive, got {cfg.episodes}")
    if cfg.workers <= 0:
        raise UserError(f"--workers must be positive, got {cfg.workers}")
    if cfg.chunk_size <= 0:
        raise UserError(f"--chunk-size must be positive, got {cfg.chunk_size}")
    if cfg.seed_start < 0:
        raise UserError(f"--seed-start must be >= 0, got {cfg.seed_start}")
    out = Path(cfg.out)
    _check_out(out)
    if (out / MANIFEST).exists():
        meta = verify_manifest(out)["meta"]
        if meta.get("format") != FORMAT:
            raise UserError(f"--out {out} holds a {meta.get('kind') or 'foreign'} dataset, not BabyAI "
                            f"demonstrations; choose another path")
        if meta.get("level") == cfg.level and meta.get("seeds_tried") == [cfg.seed_start, cfg.episodes]:
            return {**meta["stats"], "resumed": "already complete",
                    "minari_dataset_id": minari_dataset_id(cfg.level)}
        raise UserError(f"{out}: holds a finished dataset of {meta.get('level')} "
                        f"(seeds {meta.get('seeds_tried')}); choose another --out")
    chunks_dir = out / ".chunks"
    chunks_dir.mkdir(parents=True, exist_ok=True)
    chunks = [(cfg.level, s, n, str(chunks_dir / f"chunk-{s:012d}-{n}.npz")) for s, n in chunk_ranges(cfg)]
    done_before = sum(Path(t[3]).exists() for t in chunks)
    stats = write_minari(cfg, _run_chunks(chunks, cfg, progress))
    shutil.rmtree(chunks_dir, ignore_errors=True)
    return {**stats, "resumed": f"{done_before} chunks reused"}


def _check_out(out: Path) -> None:
    """`out` may be new, empty, an earlier dataset of this command (with its manifest) or an
    interrupted one (its `.chunks` work in progress, perhaps its `data` written): anything else is
    someone's folder, refused before any work and never written into."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file, not a folder; choose another path")
    if not out.exists() or (out / MANIFEST).exists():
        return
    ours = {".chunks", "data"} if (out / ".chunks").is_dir() else set()
    foreign = [p.name for p in out.iterdir() if p.name not in ours]
    if foreign:
        raise UserError(f"--out {out} already exists and is not a demonstrations folder written "
                        f"before (it holds {foreign[0]}); choose another path")


def _run_chunks(chunks: list, cfg: DemoConfig, progress: bool):
    """Play the chunks not on disk yet; yield every chunk's path in seed order as soon as it exists."""
    from protege.core.progress import progress_bar
    reused = {t[3] for t in chunks if Path(t[3]).exists()}
    todo = [t for t in chunks if t[3] not in reused]
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(progress_bar(progress and bool(todo)))
        task = bar.add_task(f"bot demos {cfg.level}", total=sum(t[2] for t in todo))
        if cfg.workers == 1:
            played = map(run_chunk, todo)
        else:  # spawn, not fork: the parent may hold torch/arrow threads that fork would copy half-locked
            pool = stack.enter_context(mp.get_context("spawn").Pool(cfg.workers, initializer=ignore_sigint))
            played = pool.imap(run_chunk, todo)  # in order: the writer numbers episodes as they come
        for t in chunks:
            if t[3] not in reused:
                next(played)
                bar.advance(task, t[2])
            yield Path(t[3])


def write_minari(cfg: DemoConfig, chunk_paths, algorithm: str = "BabyAIBot",
                 meta: dict | None = None) -> dict:
    """Write the chunks (an iterable of paths in seed order, e.g. `_run_chunks` while it plays) into
    one Minari dataset (arrow) plus a checksum manifest, atomically. A writer process stores each
    chunk as soon as it is yielded (`babyai_minari.ChunkWriter`), so storing overlaps with the bot.
    `algorithm` names who acted (Minari's `algorithm_name`); `meta` adds keys to the manifest meta."""
    import minari
    from minari.dataset.minari_storage import MinariStorage

    from protege.data.minari_io import ChunkWriter
    out = Path(cfg.out).resolve()  # minari mis-joins relative paths when measuring the folder
    env = make_env(cfg.level)
    with atomic_path(out / "data", replace_folder=True) as tmp:  # `_check_out`: ours, if any
        storage = MinariStorage.new(tmp, observation_space=observation_space(),
                                    action_space=env.action_space, env_spec=env.spec,
                                    data_format="arrow", jpeg_encoding=False)
        writer = ChunkWriter(tmp, storage.observation_space, storage.action_space)
        try:
            for path in chunk_paths:
                writer.submit(path)
        except BaseException:  # interrupted or failed while playing: the folder is discarded
            writer.abort()
            raise
        episodes, steps = writer.close()
        if not episodes:
            raise UserError(f"{cfg.level}: the bot finished none of the {cfg.episodes} episodes")
        storage.update_metadata({"dataset_id": minari_dataset_id(cfg.level),
                                 "minari_version": minari.__version__, "algorithm_name": algorithm,
                                 "total_episodes": episodes, "total_steps": steps})
        # Minari's `get_size` stats every file again; the writer knows the bytes (Minari also
        # counts directory entries, so its figure is a little larger)
        storage.update_metadata({"dataset_size": round(sum(f["bytes"] for f in writer.files.values()) / 1e6, 1)})
    stats = {"level": cfg.level, "episodes": episodes, "steps": steps,
             "bot_failures": cfg.episodes - episodes, "mean_length": steps / episodes}
    write_manifest(out, {"format": FORMAT, "level": cfg.level, "observation_spec": observation_spec(),
                         "seeds_tried": [cfg.seed_start, cfg.episodes], "stats": stats, **(meta or {})},
                   known={f"data/{name}": entry for name, entry in writer.files.items()})
    # not in the manifest: they vary per run or per folder
    return {**stats, "writer_cpu_s": writer.cpu_seconds, "minari_dataset_id": minari_dataset_id(cfg.level)}


def minari_dataset_id(level: str) -> str:
    """The Minari id of a level's bot demonstrations (see `minari_io.minari_load_hint`)."""
    return f"babyai/{level.removeprefix('BabyAI-')}/bot-v0"


@dataclass(frozen=True)
class Demos:
    """Demonstrations as flat arrays. E episodes, S steps in all; episode i owns steps
    starts[i] : starts[i] + lengths[i].
        images [S, 7, 7, 3] uint8, directions [S], actions [S], rewards [S], subgoals [S] str:
            the observation at each step (final observations dropped) and what followed it;
        missions [E] str, seeds [E], lengths [E], starts [E], terminated [E] bool."""
    level: str
    images: np.ndarray
    directions: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    subgoals: np.ndarray
    missions: np.ndarray
    seeds: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray

    def __post_init__(self):
        s = int(self.lengths.sum())
        for name in ("images", "directions", "actions", "rewards", "subgoals"):
            if len(getattr(self, name)) != s:
                raise ValueError(f"Demos.{name} has {len(getattr(self, name))} rows, lengths sum to {s}")

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def subset(self, n: int) -> "Demos":
        """The first `n` episodes (for learning curves over 1k / 10k / 50k demonstrations)."""
        if n > len(self):
            raise UserError(f"asked for {n} demonstrations, the dataset holds {len(self)}")
        s = int(self.lengths[:n].sum())
        return Demos(self.level, self.images[:s], self.directions[:s], self.actions[:s],
                     self.rewards[:s], self.subgoals[:s], self.missions[:n], self.seeds[:n],
                     self.lengths[:n], self.terminated[:n])


def read_episodes(folder: Path, level: str | None = None) -> list[Episode]:
    """Verify checksums and spec, then read the Minari dataset in `folder` as shared `Episode`s
    (with the bot's per-step `subgoal` and `subgoal_reason` annotations)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such demonstrations folder (make one with `protege data demos`)")
    meta = verify_manifest(folder)["meta"]
    if meta.get("format") != FORMAT:
        raise UserError(f"{folder / MANIFEST}: format {meta.get('format')!r} is not {FORMAT!r}")
    if level is not None and meta.get("level") != level:
        raise UserError(f"{folder}: demonstrations of {meta.get('level')}, but the run is on {level}")
    if meta.get("observation_spec") != observation_spec():
        raise UserError(f"{folder / MANIFEST}: observation spec {meta.get('observation_spec')} differs "
                        f"from this version's {observation_spec()}")
    from minari import MinariDataset
    try:
        dataset = MinariDataset(folder / "data")
        raw = list(dataset.iterate_episodes())
        seeds = [m.get("seed") for m in dataset.storage.get_episode_metadata(range(len(raw)))]
    except Exception as e:  # checksums matched, so this is a foreign or hand-edited dataset
        raise UserError(f"{folder / 'data'}: unreadable Minari dataset ({type(e).__name__}: {e})") from None
    if not raw:
        raise UserError(f"{folder}: the dataset holds no episodes")
    return [_as_episode(e, seed, meta["level"]) for e, seed in zip(raw, seeds)]


def _as_episode(e, seed: int, level: str) -> Episode:
    """One Minari episode of a demonstrations folder as an Episode."""
    terminated, truncated = episode_ending(e.terminations[-1], e.truncations[-1])
    return Episode(observations={"image": e.observations["image"].astype(np.uint8),
                                 "direction": np.asarray(e.observations["direction"], np.int64)},
                   actions=np.asarray(e.actions, np.int64), rewards=np.asarray(e.rewards, np.float32),
                   terminated=terminated, truncated=truncated,
                   instruction=str(e.observations["mission"][0]), env_id=level, seed=seed,
                   annotations={"subgoal": list(e.infos["subgoal"][:-1]),
                                "subgoal_reason": list(e.infos["subgoal_reason"][:-1])})


def describe(folder: Path) -> tuple[str, dict]:
    """Check a demonstrations folder record by record (`protege data validate`); a summary row."""
    episodes = read_episodes(folder)
    return "BabyAI demonstrations", {"level": episodes[0].env_id, "episodes": len(episodes),
                                     "steps": sum(len(e) for e in episodes)}


def load_demos(folder: Path, level: str | None = None) -> Demos:
    """`read_episodes` flattened (`protege.data.episodes.flatten`) into `Demos` arrays for training."""
    episodes = read_episodes(folder, level)
    steps = flatten(episodes)
    return Demos(
        level=episodes[0].env_id,
        images=steps.obs["image"],
        directions=steps.obs["direction"],
        actions=steps.acts,
        rewards=steps.rewards,
        subgoals=steps.infos["subgoal"].astype(str),
        missions=np.asarray([e.instruction for e in episodes], str),
        seeds=np.asarray([e.seed for e in episodes], np.int64),
        lengths=np.asarray([len(e) for e in episodes], np.int64),
        terminated=np.asarray([e.terminated for e in episodes]))


def write_episodes(episodes: list[Episode], out: Path, algorithm: str, meta: dict | None = None) -> dict:
    """Write finished BabyAI `Episode`s of one level (with seeds; e.g. people's plays in the
    studio) as a demonstrations folder that `read_episodes`/`load_demos` read and `protege run
    babyai_bc demos=DIR` trains on. Replaces only an earlier demonstrations folder."""
    out = Path(out)
    if not episodes:
        raise UserError(f"--demos {out}: no finished episodes to write")
    levels = sorted({e.env_id for e in episodes})
    if len(levels) != 1 or levels[0] is None:
        raise UserError(f"--demos {out}: a demonstrations folder holds one level; got {levels}")
    _check_out(out)
    if (out / MANIFEST).exists() and verify_manifest(out)["meta"].get("format") != FORMAT:
        raise UserError(f"--demos {out} holds another kind of dataset; choose another path")
    chunks = out / ".chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    path = chunks / f"episodes-{len(episodes)}.npz"
    packed = [{"images": e.observations["image"], "directions": e.observations["direction"],
               "actions": np.asarray(e.actions, np.int64), "rewards": np.asarray(e.rewards, np.float64),
               "truncated": bool(e.truncated), "mission": e.instruction or "", "seed": int(e.seed),
               "subgoals": [""] * len(e), "reasons": [""] * len(e)} for e in episodes]
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **_pack(packed))
    cfg = DemoConfig(levels[0], len(episodes), out, workers=1, seed_start=0)
    stats = write_minari(cfg, [path], algorithm=algorithm, meta={"source": algorithm, **(meta or {})})
    shutil.rmtree(chunks, ignore_errors=True)
    return stats
