"""Atomic writes: every file and folder the tool writes appears whole under its name or not at all.

A writer gets a temporary path beside the target and the result is renamed over it on success
(`os.replace`, atomic on one filesystem), so a killed process leaves the previous version or the
new one, never half of one; a folder is replaced only when the caller says it is its own output.
"""

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from protege.core.errors import UserError


@contextmanager
def atomic_path(path: Path, replace_folder: bool = False):
    """Yield a temporary path beside `path`; on success rename it over `path`.

    An existing file at `path` is replaced. An existing folder is replaced only with
    `replace_folder=True`, which a caller passes once it knows the folder is its own earlier output
    (a checkpoint; a dataset recognised by its manifest, see `protege.data.manifest.output_folder`);
    otherwise the write is refused and the folder left as it is: a folder is never deleted on a guess.
    """
    path = Path(path)
    if path.is_dir() and not replace_folder:
        raise UserError(f"{path} is an existing folder; refusing to replace it "
                        f"(choose another path, or delete it yourself)")
    make_parent(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)) / path.name
    try:
        yield tmp
        _public_modes(tmp)
        if tmp.is_dir() and path.exists() and not path.is_dir():
            raise UserError(f"{path} is an existing file, not a folder; choose another path")
        if path.is_dir() and tmp.is_dir():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        elif path.is_dir():
            raise UserError(f"{path} is an existing folder, not a file; choose another path")
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def _public_modes(tmp: Path) -> None:
    """Give the output the modes a plain `open()` would (0644 under umask 022): some writers
    (safetensors) create files owner-only (0600), which other users of a shared folder cannot read."""
    if not tmp.exists():
        return
    mask = os.umask(0)
    os.umask(mask)
    paths = [tmp] + (sorted(tmp.rglob("*")) if tmp.is_dir() else [])
    for p in paths:
        if not p.is_symlink():
            p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)


def make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"cannot write {path}: a parent of it is a file, not a folder") from None
    except PermissionError:
        raise UserError(f"cannot write {path}: permission denied") from None


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=jsonable) + "\n")


def jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray,)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
