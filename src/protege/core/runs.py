"""Run directories: resolved config, metrics (JSONL + TensorBoard), atomic checkpoints, exact resume.

    runs/<name>/config.yaml         the resolved config (recipe + overrides)
    runs/<name>/metrics.jsonl       one JSON object per logged step
    runs/<name>/tb/                 TensorBoard events
    runs/<name>/checkpoints/step-00000100/{model.safetensors, state.pt}
    runs/<name>/checkpoints/latest  name of the newest complete checkpoint
    runs/<name>/summary.json        written last: its presence marks a finished run

Weights are safetensors. `state.pt` holds optimiser state, RNG states and the data position; it is
written with `torch.save` and read back only with `torch.load(weights_only=True)`, which refuses
arbitrary objects. Every file is written to a temporary name and renamed, so a killed run leaves
either the previous checkpoint or the new one, never half of one.
"""

import json
import os
import random
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file

from protege.core.errors import UserError
from protege.core.seeds import seed_everything  # noqa: F401  (re-exported for learners)


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; on success rename it over `path` (file or folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)) / path.name
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            old = path.with_name(f".{path.name}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray,)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def rng_state() -> dict:
    """Python, NumPy (legacy global) and torch RNG states, in a form `torch.load(weights_only)` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuple(state["python"]))
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


class Run:
    """One run directory. Only the main process (rank 0) writes; other ranks get a no-op logger."""

    def __init__(self, root: Path, config: dict, resume: bool = False, is_main: bool = True):
        self.dir = Path(root)
        self.is_main = is_main
        self.resumed = resume
        self.ckpt_dir = self.dir / "checkpoints"
        if resume and not (self.dir / "config.yaml").exists():
            raise UserError(f"--resume: {self.dir} holds no run to resume")
        if not resume and is_main and self.dir.exists() and any(self.dir.iterdir()):
            raise UserError(f"run directory {self.dir} already exists; pass --resume to continue it "
                            f"or choose another name (name=...)")
        if resume and (self.dir / "config.yaml").exists():
            saved = yaml.safe_load((self.dir / "config.yaml").read_text())
            if saved != config:
                raise UserError(f"--resume: the config differs from the one saved in "
                                f"{self.dir / 'config.yaml'}; resume with the same recipe and overrides")
        self._tb = None
        self._finished = False
        if resume:  # drop what a killed run logged past its last checkpoint
            latest = self.latest_checkpoint()
            self.truncate_metrics(load_state(latest / "state.pt")["step"] if latest else -1)
        if is_main:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    # metrics -----------------------------------------------------------------------------------
    def log(self, step: int, metrics: dict) -> None:
        if not self.is_main:
            return
        row = {"step": step, **{k: _jsonable(v) if not isinstance(v, (int, float, str)) else v
                                for k, v in metrics.items()}}
        with open(self.dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
        tb = self._writer(step)
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                tb.add_scalar(key, value, step)

    def _writer(self, step: int):
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(str(self.dir / "tb"), purge_step=step)
        return self._tb

    def truncate_metrics(self, after_step: int) -> None:
        """Drop metric rows logged after `after_step` (work a killed run did past its checkpoint)."""
        path = self.dir / "metrics.jsonl"
        if not self.is_main or not path.exists():
            return
        keep = [line for line in path.read_text().splitlines()
                if (step := _complete_row_step(line)) is not None and step <= after_step]
        write_text_atomic(path, "".join(line + "\n" for line in keep))

    def metrics(self) -> list[dict]:
        return read_metrics(self.dir)

    # checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self, step: int, weights: dict[str, torch.Tensor], state: dict,
                        keep: int = 2) -> None:
        if not self.is_main:
            return
        name = f"step-{step:08d}"
        with atomic_path(self.ckpt_dir / name) as tmp:
            tmp.mkdir()
            # clone: safetensors refuses tensors that share memory (tied embeddings)
            save_file({k: v.detach().cpu().clone().contiguous() for k, v in weights.items()},
                      str(tmp / "model.safetensors"))
            torch.save({**state, "step": step}, tmp / "state.pt")
        write_text_atomic(self.ckpt_dir / "latest", name)
        for old in sorted(self.ckpt_dir.glob("step-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)

    def latest_checkpoint(self) -> Path | None:
        pointer = self.ckpt_dir / "latest"
        if not pointer.exists():
            return None
        path = self.ckpt_dir / pointer.read_text().strip()
        return path if (path / "state.pt").exists() else None

    def load_checkpoint(self, path: Path | None = None) -> tuple[dict, dict]:
        path = path or self.latest_checkpoint()
        if path is None:
            raise UserError(f"{self.dir}: no checkpoint to resume from")
        return load_file(str(path / "model.safetensors")), load_state(path / "state.pt")

    def restore(self) -> tuple[dict, dict] | None:
        """(weights, state) of the newest checkpoint if this run resumes and has one, else None.

        The one place that decides resume: learners call it once, after building everything their
        state covers, and load what it returns; `state["step"]` is where they continue."""
        if not self.resumed:
            return None
        latest = self.latest_checkpoint()
        return None if latest is None else self.load_checkpoint(latest)

    def finish(self, summary: dict) -> None:
        """Write summary.json (once: a second call is a no-op) and close the TensorBoard writer."""
        if self._finished:
            return
        self._finished = True
        self.close()
        if self.is_main:
            write_json_atomic(self.dir / "summary.json", summary)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def load_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _complete_row_step(line: str):
    """The step of a metrics row; None for a blank line or a row cut short by a kill."""
    try:
        return json.loads(line).get("step") if line.strip() else None
    except json.JSONDecodeError:
        return None


WALL_CLOCK_PREFIX = "time/"
"""Metric keys under this prefix are wall-clock measurements (seconds per step, steps per second):
kept in metrics.jsonl so a finished run's throughput is not lost, and left out when a resumed run's
metrics are compared with an uninterrupted one's (`read_metrics(..., wall_clock=False)`)."""


def read_metrics(run_dir: Path, wall_clock: bool = True) -> list[dict]:
    """The complete rows of a run's metrics.jsonl; `wall_clock=False` drops the `time/` keys."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not wall_clock:
                row = {k: v for k, v in row.items() if not k.startswith(WALL_CLOCK_PREFIX)}
            rows.append(row)
    return rows
