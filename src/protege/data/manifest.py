"""Content checksums for datasets written by protege.

Minari and plain Parquet/JSONL files carry no checksum, so a truncated or altered file would be
half-read. Every dataset folder protege writes gets a `protege-manifest.json` beside its data with the
size and SHA-256 of each file; `verify_manifest` checks them on load and names the first bad file.
"""

import hashlib
import os
from pathlib import Path

from protege.core.errors import UserError

MANIFEST = "protege-manifest.json"


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, meta: dict | None = None, known: dict[str, dict] | None = None) -> dict:
    """Checksum every file under `folder` (except the manifest, temporary and hidden files) and write
    the manifest atomically. `known` holds entries the writer computed from the bytes it had just
    written (path under `folder` -> {"bytes", "sha256"}); those files are neither read back nor
    stat-ed, which for datasets of many small files is most of the cost."""
    from protege.core.runs import write_json_atomic
    folder, known = Path(folder), known or {}
    files = {}
    for root, dirs, names in os.walk(folder):  # scandir-based: no stat per entry, unlike rglob
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(root).relative_to(folder)
        for name in names:
            if name == MANIFEST or name.endswith(".tmp") or name.startswith("."):
                continue
            key = str(rel / name)
            files[key] = known.get(key) or {"bytes": (Path(root) / name).stat().st_size,
                                            "sha256": file_sha256(Path(root) / name)}
    manifest = {"format": 1, "files": dict(sorted(files.items())), "meta": meta or {}}
    write_json_atomic(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder: Path) -> dict | None:
    import json
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise UserError(f"{path}: manifest is not valid JSON (file corrupted?)") from None


def verify_manifest(folder: Path, required: bool = True) -> dict | None:
    """Check sizes and checksums against the manifest; a `UserError` names the first bad file."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        if required:
            raise UserError(f"{folder}: no {MANIFEST}; not a dataset written by protege "
                            f"(or its write did not finish)")
        return None
    for name, entry in manifest["files"].items():
        path = folder / name
        if not path.exists():
            raise UserError(f"{path}: listed in the manifest but missing")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise UserError(f"{path}: {size} bytes, manifest says {entry['bytes']} (truncated or altered)")
        if file_sha256(path) != entry["sha256"]:
            raise UserError(f"{path}: checksum mismatch with the manifest (file altered or corrupted)")
    return manifest
