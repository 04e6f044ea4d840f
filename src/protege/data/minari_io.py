"""Write many BabyAI demonstration episodes into a Minari arrow dataset, a chunk of episodes at a time.

Why not `MinariStorage.update_episodes`: in minari 0.5.4 its arrow backend calls `write_dataset` once
per episode and then rewrites three JSON files (the episode's metadata and, twice, the dataset's), so
a 5-step GoToLocal episode costs ~3-6 ms to store, more than the bot takes to play it. pyarrow's
partitioned `write_dataset` over a whole chunk still cost ~0.8 ms of CPU per episode (grouping by
episode, its thread pool, one writer per partition). Here a chunk becomes one record batch, encoded
with Minari's own column encoders, and each episode is a zero-copy slice of it written as one arrow
IPC file: the layout Minari writes (`<data>/<episode_id>/part-0.arrow` and `metadata.json`) at
~0.2 ms per episode. The bytes are hashed while in memory, so the checksum manifest needs no
read-back. `minari.MinariDataset` / `minari.load_dataset` read the result as one of theirs
(tests/babyai/test_minari_writer.py compares both writers file by file).
"""

import hashlib
import json
from pathlib import Path

import numpy as np

# Minari's private column encoders: reusing them keeps our files byte-compatible with its reader
# (minari is pinned in constraints.txt).
from minari.dataset._storages.arrow_storage import _encode_info, _encode_space


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


def write_episodes(data_path: Path, chunk: dict, first_id: int, observation_space,
                   action_space) -> dict[str, dict]:
    """Append the episodes of `chunk` as episodes first_id, first_id + 1, ... of the dataset at
    `data_path` (made with `MinariStorage.new(..., data_format="arrow")`): one arrow file and one
    metadata.json per episode. The dataset's own totals are set once at the end. Returns the manifest
    entries ({"bytes", "sha256"}) of the files written, keyed by their path under `data_path`."""
    import pyarrow as pa
    columns = chunk_columns(chunk, first_id, observation_space, action_space)
    if not columns:
        return {}
    columns.pop("episode_id")  # Minari keeps the id in the folder name, not in the file
    batch = pa.RecordBatch.from_pydict(columns)
    frames = chunk["lengths"].astype(np.int64) + 1
    starts = np.concatenate([[0], np.cumsum(frames)[:-1]])
    written = {}
    for i, (start, n) in enumerate(zip(starts.tolist(), frames.tolist())):
        episode = str(first_id + i)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, batch.schema) as ipc:
            ipc.write_batch(batch.slice(start, n))
        # the same keys, in the same order, as minari's ArrowStorage.update_episodes
        meta = {"id": first_id + i, "total_steps": n - 1, "seed": int(chunk["seeds"][i])}
        (Path(data_path) / episode).mkdir()
        for name, data in (("part-0.arrow", sink.getvalue().to_pybytes()),
                           ("metadata.json", json.dumps(meta).encode())):
            (Path(data_path) / episode / name).write_bytes(data)
            written[f"{episode}/{name}"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return written


def read_chunk(path: Path) -> dict:
    """All arrays of a chunk file (`babyai_demos.run_chunk`) in memory (an NpzFile would re-read an
    array from disk on every access)."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def write_chunk(data_path: Path, chunk_path: Path, first_id: int, observation_space,
                action_space) -> tuple[dict[str, dict], float]:
    """`write_episodes` for a chunk file, the unit of work of `ChunkWriter`'s process; also returns
    the CPU seconds that process has used so far (start-up included), for the benchmark."""
    import time
    files = write_episodes(data_path, read_chunk(chunk_path), first_id, observation_space, action_space)
    return files, time.process_time()


class ChunkWriter:
    """Writes chunk files into a Minari arrow folder in a separate process, in submission order,
    numbering episodes 0, 1, ... as they come.

    Why a process and not a thread: storing costs a folder and two files per episode, and on this
    kind of machine creating a file is a 0.04-0.4 ms system call. A writer thread needs the GIL back
    after every call while the bot holds it, so it crawled (a 250-episode chunk took 2.5 s beside
    the bot, 0.25 s alone) and most writing ended up after the bot. A process writes on another
    core at its own pace; the parent only reads each chunk's episode count to number the next."""

    def __init__(self, data_path: Path, observation_space, action_space):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        from protege.core.workers import ignore_sigint
        self.data_path, self.spaces = Path(data_path), (observation_space, action_space)
        self.episodes = self.steps = 0
        self.files: dict[str, dict] = {}
        """Manifest entries of every file written, keyed by path under `data_path` (after `close`)."""
        self.cpu_seconds = 0.0
        """CPU time of the writer process (after `close`)."""
        # one process, so chunks are written one at a time, in order; spawn: see babyai_demos
        self._pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=ignore_sigint)
        self._futures = []

    def submit(self, chunk_path: Path) -> None:
        for future in self._futures:  # stop early if a write already failed (disk full, ...)
            if future.done() and future.exception() is not None:
                self.close()
        with np.load(chunk_path, allow_pickle=False) as f:
            lengths = f["lengths"]
        self._futures.append(self._pool.submit(write_chunk, self.data_path, Path(chunk_path),
                                               self.episodes, *self.spaces))
        self.episodes += len(lengths)
        self.steps += int(lengths.sum())

    def abort(self) -> None:
        """Drop the writes not started yet and wait for the one in progress (the caller is about to
        discard the folder)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> tuple[int, int]:
        """Wait for every write (re-raising the first error); returns (episodes, steps) written."""
        try:
            for future in self._futures:
                files, self.cpu_seconds = future.result()
                self.files.update(files)
        finally:  # the writes are done (or failed): the process may take its time to exit
            self._pool.shutdown(wait=False, cancel_futures=True)
        return self.episodes, self.steps


def minari_load_hint(out: Path, dataset_id: str) -> str:
    """How a plain Minari user loads the dataset protege wrote at `out` with `minari.load_dataset`.

    Minari finds a dataset id at `<root>/<id>/data` (root: $MINARI_DATASETS_PATH, default
    ~/.minari/datasets); protege writes `<out>/data` beside its manifest, so `out` *is* a Minari
    dataset folder wherever it sits. Rather than force every --out under Minari's root, the id is
    registered by a link (or by writing --out at `<root>/<id>` in the first place)."""
    import os
    out = Path(out).resolve()
    parts = Path(dataset_id).parts
    if out.parts[-len(parts):] == parts:
        root = Path(*out.parts[:-len(parts)])
        return f"load with Minari: MINARI_DATASETS_PATH={root} then minari.load_dataset({dataset_id!r})"
    root = Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets"))
    link = root / dataset_id
    return (f"load with Minari: mkdir -p {link.parent} && ln -s {out} {link}  "
            f"then minari.load_dataset({dataset_id!r})")
