"""Write many BabyAI demonstration episodes into a Minari arrow dataset with one arrow write per group.

Why not `MinariStorage.update_episodes`: in minari 0.5.4 its arrow backend calls `write_dataset` once
per episode and then rewrites three JSON files (the episode's metadata and, twice, the dataset's), so
a 5-step GoToLocal episode costs ~3-6 ms to store, more than the bot takes to play it. Here a whole
chunk of episodes becomes ONE record batch with an `episode_id` column, and pyarrow's partitioned
writer splits it into the very same layout Minari writes (`<data>/<episode_id>/part-0.arrow`, plus
`<data>/<episode_id>/metadata.json`). The columns are encoded with Minari's own encoders, so
`minari.MinariDataset` / `minari.load_dataset` read the result as one of theirs
(tests/babyai/test_demos.py compares both writers file by file).
"""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

# Minari's private column encoders: reusing them keeps our files byte-compatible with its reader
# (minari is pinned in constraints.txt).
from minari.dataset._storages.arrow_storage import _encode_info, _encode_space

MAX_EPISODES_PER_WRITE = 1000
"""pyarrow keeps at most 1024 partition files open per write; beyond that it would split an
episode into several files, which Minari's reader (one record batch per episode) cannot take."""


def chunk_columns(chunk: dict, first_id: int, observation_space, action_space) -> dict:
    """The arrow columns of the episodes of one chunk (flat arrays, see `babyai_demos._pack`).
    Rows are frames: episode i has lengths[i] + 1 rows (its observations); actions, rewards,
    terminations and truncations are padded with one zero row at each episode's end, as Minari does."""
    lengths = chunk["lengths"].astype(np.int64)
    frames = int(lengths.sum() + len(lengths))
    last_frame = np.cumsum(lengths + 1) - 1                   # row of each episode's final observation
    is_step = np.ones(frames, bool)
    is_step[last_frame] = False
    last_step = last_frame - 1                                # row of each episode's last action
    pad = lambda values, dtype: _scatter(values, is_step, frames, dtype)  # noqa: E731
    terminations, truncations = np.zeros(frames, bool), np.zeros(frames, bool)
    terminations[last_step] = ~chunk["truncated"]
    truncations[last_step] = chunk["truncated"]
    missions = np.repeat(chunk["missions"], lengths + 1).tolist()
    return {
        "episode_id": np.repeat(np.arange(first_id, first_id + len(lengths), dtype=np.int32), lengths + 1),
        "observations": _encode_space(observation_space, {"image": chunk["images"],
                                                          "direction": chunk["directions"],
                                                          "mission": missions}, jpeg_encoding=False),
        "actions": _encode_space(action_space, pad(chunk["actions"], np.int64), jpeg_encoding=False),
        "rewards": pad(chunk["rewards"], np.float64), "terminations": terminations,
        "truncations": truncations,
        "infos": _encode_info({"subgoal": pad(chunk["subgoals"], object).tolist(),
                               "subgoal_reason": pad(chunk["reasons"], object).tolist()}),
    } if frames else {}


def _scatter(values: np.ndarray, is_step: np.ndarray, frames: int, dtype) -> np.ndarray:
    out = np.full(frames, "" if dtype is object else 0, dtype=dtype)
    out[is_step] = values
    return out


def write_episodes(data_path: Path, chunk: dict, first_id: int, observation_space, action_space) -> None:
    """Append the episodes of `chunk` as episodes first_id, first_id + 1, ... of the dataset at
    `data_path` (made with `MinariStorage.new(..., data_format="arrow")`): arrow files and the
    per-episode metadata.json files. The dataset's own totals are set once at the end (`finish`)."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    n = len(chunk["lengths"])
    for lo in range(0, n, MAX_EPISODES_PER_WRITE):
        part = _slice(chunk, lo, min(n, lo + MAX_EPISODES_PER_WRITE))
        columns = chunk_columns(part, first_id + lo, observation_space, action_space)
        if not columns:
            continue
        ds.write_dataset(pa.RecordBatch.from_pydict(columns), data_path, format="arrow",
                         partitioning=["episode_id"], existing_data_behavior="overwrite_or_ignore",
                         preserve_order=True, max_partitions=MAX_EPISODES_PER_WRITE + 1)
    for i in range(n):  # the same keys, in the same order, as minari's ArrowStorage.update_episodes
        meta = {"id": first_id + i, "total_steps": int(chunk["lengths"][i]), "seed": int(chunk["seeds"][i])}
        (Path(data_path) / str(first_id + i) / "metadata.json").write_text(json.dumps(meta))


def _slice(chunk: dict, lo: int, hi: int) -> dict:
    """Episodes lo..hi-1 of a flat chunk."""
    lengths = chunk["lengths"]
    s0, s1 = int(lengths[:lo].sum()), int(lengths[:hi].sum())
    f0, f1 = s0 + lo, s1 + hi
    per_step = ("actions", "rewards", "subgoals", "reasons")
    per_episode = ("lengths", "seeds", "truncated", "missions")
    return {**{k: chunk[k][s0:s1] for k in per_step}, **{k: chunk[k][lo:hi] for k in per_episode},
            "images": chunk["images"][f0:f1], "directions": chunk["directions"][f0:f1]}


class ChunkWriter:
    """Writes chunk files into a Minari arrow folder on one background thread, in submission order,
    numbering episodes 0, 1, ... as they come. Storing costs two files and a folder per episode;
    file system calls and pyarrow's writer release the GIL, so this overlaps with the bot's
    stepping instead of following it."""

    def __init__(self, data_path: Path, observation_space, action_space, load):
        self.data_path, self.spaces, self.load = Path(data_path), (observation_space, action_space), load
        self.episodes = self.steps = 0
        self._pool, self._futures = ThreadPoolExecutor(1, thread_name_prefix="minari-writer"), []

    def submit(self, chunk_path: Path) -> None:
        for future in self._futures:  # stop early if a write already failed (disk full, ...)
            if future.done() and future.exception() is not None:
                self.close()
        self._futures.append(self._pool.submit(self._write, chunk_path))

    def _write(self, chunk_path: Path) -> None:  # runs on the writer thread, one chunk at a time
        chunk = self.load(chunk_path)
        write_episodes(self.data_path, chunk, self.episodes, *self.spaces)
        self.episodes += len(chunk["lengths"])
        self.steps += int(chunk["lengths"].sum())

    def close(self) -> tuple[int, int]:
        """Wait for every write (re-raising the first error); returns (episodes, steps) written."""
        self._pool.shutdown(wait=True)
        for future in self._futures:
            future.result()
        return self.episodes, self.steps
