"""Every seed a run uses, derived in one place from the run's seed.

A learner needs several independent random streams (network initialisation, the data order, each
environment's episodes, evaluation episodes, a generator for sampling). Deriving them by adding
magic offsets to the seed makes streams of nearby seeds overlap (seed 0's "env" stream can be seed
1's "init" stream). NumPy's `SeedSequence` hashes (seed, spawn key) into independent states; the
spawn key here is the stream's name (its CRC-32), so adding a stream never shifts another one.

A checkpoint saves the global generators' states (`rng_state`) and a resumed run puts them back
(`set_rng_state`), so it draws what the uninterrupted run would have drawn.
"""

import random
import zlib

import numpy as np
import torch


def stream_seed(seed: int, name: str) -> int:
    """A 31-bit seed for the stream `name` of a run seeded with `seed` (fits every API's int seed)."""
    sequence = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),))
    return int(sequence.generate_state(1, np.uint32)[0] >> 1)


def stream_seeds(seed: int, name: str, n: int) -> list[int]:
    """n independent seeds of the stream `name` (one per environment or worker): `SeedSequence.spawn`."""
    parent = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),))
    return [int(child.generate_state(1, np.uint32)[0] >> 1) for child in parent.spawn(n)]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy's legacy global generator and torch: the first thing every run does."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Python, NumPy (legacy global) and torch RNG states, in a form `torch.load(weights_only)` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # a GPU run's sampling and dropout
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuple(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
