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
import shutil
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file

from protege.core.atomic import atomic_path, jsonable, make_parent, write_json_atomic, write_text_atomic
from protege.core.errors import UserError

LOCK = ".lock"
"""Lock file of a run directory: an exclusive `flock` held by the one process writing the run (its
PID inside, for the message a second process gets). The OS drops the lock when that process dies,
so a killed run can be resumed at once, while a running one cannot be written by a second command."""


def lock_run_dir(folder: Path) -> int:
    """Take the run directory's lock (non-blocking); a `UserError` names the process holding it."""
    import fcntl
    fd = os.open(Path(folder) / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise UserError(f"run directory {folder} is in use by process {holder} (still running); "
                        f"wait for it to end or stop it first") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _flat(data, prefix: str = "") -> dict:
    if not isinstance(data, dict):
        return {prefix.rstrip(".") or "config": data}
    out = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def _differences(saved, new, limit: int = 3) -> str:
    """`key: saved X, now Y` for the first `limit` dotted keys that differ. A precision that `auto`
    resolved differently on this machine gets a hint (see protege.core.precision)."""
    old, now = _flat(saved), _flat(new)
    keys = [k for k in {**old, **now} if old.get(k, "<absent>") != now.get(k, "<absent>")]
    parts = []
    for key in keys[:limit]:
        part = f"{key}: saved {old.get(key, '<absent>')!r}, now {now.get(key, '<absent>')!r}"
        if key.endswith("precision") and old.get(key) in ("fp32", "bf16"):
            part += f"; auto resolves per machine, pass {key}={old[key]} to resume as the run started"
        parts.append(part)
    return "; ".join(parts) + (f"; and {len(keys) - limit} more" if len(keys) > limit else "")


# Config keys added after runs were saved without them, each with the value that reproduces what those
# runs did (registered where the key is defined). A resume fills an absent one in before comparing, so
# a run started before the key existed resumes as it started (and is refused, with the key named, if
# the new value differs).
_ADDED_KEYS: dict[str, object] = {}


def added_config_key(dotted: str, legacy_value) -> None:
    """Declare that config key `dotted` (e.g. "model.train_forward") is new and that runs saved
    without it behaved as `legacy_value`."""
    _ADDED_KEYS[dotted] = legacy_value


def _fill_added(saved: dict, new: dict) -> dict:
    """`saved` (a config just read, changed in place) with each registered key the new config has and
    the saved one lacks set to its legacy value (only where the enclosing section exists in both)."""
    for dotted, legacy in _ADDED_KEYS.items():
        *parents, leaf = dotted.split(".")
        old, now = saved, new
        for part in parents:
            old = old.get(part) if isinstance(old, dict) else None
            now = now.get(part) if isinstance(now, dict) else None
        if isinstance(old, dict) and isinstance(now, dict) and leaf in now and leaf not in old:
            old[leaf] = legacy
    return saved


def _visible(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name != LOCK]


class Run:
    """One run directory. Only the main process (rank 0) writes, and holds the directory's lock for
    the run's life (until `finish` or `close`); other ranks get a no-op logger."""

    def __init__(self, root: Path, config: dict, resume: bool = False, is_main: bool = True):
        self.dir = Path(root)
        self.is_main = is_main
        self.resumed = resume
        self.ckpt_dir = self.dir / "checkpoints"
        self._lock_fd = None
        self._tb = None
        self._finished = False
        self._rows = 0  # complete rows in metrics.jsonl: a checkpoint records how many it follows
        self._restored_state: tuple = (None, None)  # (checkpoint, its state) read when resuming
        if resume and not (self.dir / "config.yaml").is_file():
            raise UserError(f"--resume: {self.dir} holds no run to resume (no config.yaml)")
        if is_main:
            self._claim(resume)  # before reading anything: a running writer must not be raced
        try:
            if resume:
                # compared as config.yaml holds it: YAML has no tuples, so (2, 4) was saved as [2, 4]
                written = yaml.safe_load(yaml.safe_dump(config, sort_keys=False))
                saved = _fill_added(read_run_config(self.dir), written)
                if saved != written:
                    raise UserError(f"--resume: the config differs from the one saved in "
                                    f"{self.dir / 'config.yaml'} ({_differences(saved, written)}); "
                                    f"resume with the same recipe and overrides")
                latest = self.latest_checkpoint()
                state = load_state(latest / "state.pt") if latest else None
                # kept for `restore`: a training state (a replay buffer, say) is read once, not twice
                self._restored_state = (latest, state)
                self._rows = self.truncate_metrics(state)  # drop what a killed run logged past it
            if is_main and not resume:
                write_text_atomic(self.dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        except BaseException:
            self._unlock()
            raise

    def _claim(self, resume: bool) -> None:
        """Create the run directory (or take the one to resume) and lock it, without a window in
        which two processes could both believe they own it: `mkdir` fails if it exists, and an
        existing empty directory is checked again once locked."""
        if not resume:
            make_parent(self.dir)
            try:
                os.mkdir(self.dir)
            except FileExistsError:
                if not self.dir.is_dir():
                    raise UserError(f"run directory {self.dir} is an existing file; choose another "
                                    f"name (name=...)") from None
                if _visible(self.dir):
                    raise _exists(self.dir) from None
        self._lock_fd = lock_run_dir(self.dir)
        if not resume and _visible(self.dir):  # another process made the run before our lock
            self._unlock()
            raise _exists(self.dir)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __del__(self):
        self._unlock()

    # metrics -----------------------------------------------------------------------------------
    def log(self, step: int, metrics: dict) -> None:
        if not self.is_main:
            return
        row = {"step": step, **{k: jsonable(v) if not isinstance(v, (int, float, str)) else v
                                for k, v in metrics.items()}}
        with open(self.dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
        self._rows += 1
        tb = self._writer(step)
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                tb.add_scalar(key, value, step)

    def _writer(self, step: int):
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(str(self.dir / "tb"), purge_step=step)
        return self._tb

    def truncate_metrics(self, checkpoint_state: dict | None) -> int:
        """Drop the metric rows a killed run logged after its last checkpoint (all of them if it has
        none). A checkpoint records how many rows preceded it, which also drops a row logged at the
        checkpoint's own step after it was written (a final evaluation); rows of later steps go too.
        Returns the number of rows kept."""
        path = self.dir / "metrics.jsonl"
        if not self.is_main or not path.exists():
            return 0
        rows = [(line, step) for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
                if (step := _complete_row_step(line)) is not None]
        if checkpoint_state is None:
            rows = []
        elif "metrics_rows" in checkpoint_state:
            rows = rows[:int(checkpoint_state["metrics_rows"])]
        last = checkpoint_state["step"] if checkpoint_state is not None else -1
        keep = [line for line, step in rows if step <= last]
        write_text_atomic(path, "".join(line + "\n" for line in keep))
        return len(keep)

    def metrics(self) -> list[dict]:
        return read_metrics(self.dir)

    # checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self, step: int, weights: dict[str, torch.Tensor], state: dict,
                        keep: int = 2) -> None:
        if not self.is_main:
            return
        name = f"step-{step:08d}"
        with atomic_path(self.ckpt_dir / name, replace_folder=True) as tmp:  # our own checkpoint
            tmp.mkdir()
            # clone: safetensors refuses tensors that share memory (tied embeddings)
            save_file({k: v.detach().cpu().clone().contiguous() for k, v in weights.items()},
                      str(tmp / "model.safetensors"))
            torch.save({**state, "step": step, "metrics_rows": self._rows}, tmp / "state.pt")
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
        return load_weights(path / "model.safetensors"), load_state(path / "state.pt")

    def restore(self) -> tuple[dict, dict] | None:
        """(weights, state) of the newest checkpoint if this run resumes and has one, else None.

        The one place that decides resume: learners call it once, after building everything their
        state covers, and load what it returns; `state["step"]` is where they continue."""
        if not self.resumed:
            return None
        latest = self.latest_checkpoint()
        if latest is None:
            return None
        cached, self._restored_state = self._restored_state, (None, None)
        if cached[0] == latest:
            return load_weights(latest / "model.safetensors"), cached[1]
        return self.load_checkpoint(latest)

    def finish(self, summary: dict) -> None:
        """Write summary.json (once: a second call is a no-op), close the TensorBoard writer and
        release the run directory."""
        if self._finished:
            return
        self._finished = True
        self._close_writer()
        if self.is_main:
            write_json_atomic(self.dir / "summary.json", summary)
        self.close()

    def close(self) -> None:
        """Close the TensorBoard writer and release the run directory's lock."""
        self._close_writer()
        self._unlock()

    def _close_writer(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _exists(folder: Path) -> UserError:
    return UserError(f"run directory {folder} already exists; pass --resume to continue it "
                     f"or choose another name (name=...)")


def load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: missing (the checkpoint is incomplete)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:  # truncated zip, foreign pickle
        raise UserError(f"{path}: unreadable training state ({str(e).splitlines()[0][:120]}); "
                        f"the file is truncated or corrupted") from None


def check_safetensors(path: Path) -> Path:
    """`path` if it is a complete safetensors file, else a `UserError` saying what is wrong with it
    (safetensors checks that its header covers exactly the bytes present, so a cut file fails)."""
    from safetensors import safe_open
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: missing (no trained weights here; has the run finished?)")
    try:
        with safe_open(str(path), "pt") as f:
            f.keys()
    except Exception as e:  # SafetensorError (Rust) for a cut or foreign file
        raise UserError(f"{path}: not a complete safetensors file ({str(e).splitlines()[0][:120]}); "
                        f"the file is truncated or corrupted") from None
    return path


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, after `check_safetensors`."""
    return load_file(str(check_safetensors(path)))


def read_run_config(run_dir: Path) -> dict:
    """The resolved config a run saved (config.yaml); a `UserError` names what is missing or wrong."""
    path = Path(run_dir) / "config.yaml"
    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    if not path.is_file():
        raise UserError(f"{path}: missing; {run_dir} is not a run directory (or its run never started)")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); the file is corrupted") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML ({getattr(e, 'problem', e)}); the file is corrupted") from None
    if not isinstance(data, dict) or not data:
        raise UserError(f"{path}: expected the run's config (a mapping), got "
                        f"{'an empty file' if not data else type(data).__name__}")
    return data


def save_eval(run_dir: Path, name: str, settings: dict, results) -> Path:
    """Write an evaluation's results with the settings that produced them to RUN/eval/<name>.json
    (atomically), so a result printed on screen is also kept beside the run it measured."""
    path = Path(run_dir) / "eval" / f"{name}.json"
    write_json_atomic(path, {"settings": settings, "results": results})
    return path


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
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not wall_clock:
                row = {k: v for k, v in row.items() if not k.startswith(WALL_CLOCK_PREFIX)}
            rows.append(row)
    return rows
