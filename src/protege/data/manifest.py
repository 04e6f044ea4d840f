"""Content checksums for datasets written by protege, and the rule for writing into an output folder.

Minari and plain Parquet/JSONL files carry no checksum, so a truncated or altered file would be
half-read. Every dataset folder protege writes gets a `protege-manifest.json` beside its data with the
size and SHA-256 of each file, and a `kind` in its meta naming what wrote it. `verify_manifest`
checks that the folder holds exactly the listed files (none missing, none added, none outside the
folder) with their sizes and checksums, and names the first bad file.

`output_folder` is how every command writes a folder: it refuses (one line, nothing deleted) a path
that is a file, a folder it did not write itself (recognised by the manifest's kind), or a folder
that overlaps one of the command's inputs.
"""

import fnmatch
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from protege.core.errors import UserError

MANIFEST = "protege-manifest.json"


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _ignored(name: str) -> bool:
    """Not data: the manifest itself, hidden files (work in progress, locks) and atomic-write temps."""
    return name == MANIFEST or name.startswith(".") or name.endswith(".tmp")


def data_files(folder: Path) -> list[str]:
    """Every data file under `folder` (posix paths relative to it), by the rule the manifest uses."""
    found = []
    for root, dirs, names in os.walk(folder):  # scandir-based: no stat per entry, unlike rglob
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(root).relative_to(folder)
        found += [(rel / name).as_posix() for name in names if not _ignored(name)]
    return sorted(found)


def write_manifest(folder: Path, meta: dict | None = None, known: dict[str, dict] | None = None) -> dict:
    """Checksum every data file under `folder` and write the manifest atomically. `known` holds
    entries the writer computed from the bytes it had just written (path under `folder` ->
    {"bytes", "sha256"}); those files are neither read back nor stat-ed, which for datasets of many
    small files is most of the cost."""
    from protege.core.atomic import write_json_atomic
    folder, known = Path(folder), known or {}
    files = {key: known.get(key) or {"bytes": (folder / key).stat().st_size,
                                     "sha256": file_sha256(folder / key)}
             for key in data_files(folder)}
    manifest = {"format": 1, "files": files, "meta": meta or {}}
    write_json_atomic(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder: Path) -> dict | None:
    """The manifest of `folder` (None when there is none), its structure checked."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{path}: manifest is not valid JSON (file corrupted?)") from None
    _check_structure(manifest, path)
    return manifest


def _check_structure(manifest, path: Path) -> None:
    if not isinstance(manifest, dict):
        raise UserError(f"{path}: expected a JSON object with 'files', got {type(manifest).__name__}")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise UserError(f"{path}: 'files' must be an object of name -> {{bytes, sha256}}, got "
                        f"{'nothing' if files is None else type(files).__name__}")
    if not isinstance(manifest.get("meta", {}), dict):
        raise UserError(f"{path}: 'meta' must be an object, got {type(manifest['meta']).__name__}")
    for name, entry in files.items():
        if not _inside(name):
            raise UserError(f"{path}: entry {name!r} leaves the dataset folder")
        if not (isinstance(entry, dict) and isinstance(entry.get("bytes"), int)
                and isinstance(entry.get("sha256"), str)):
            raise UserError(f"{path}: entry {name!r} must be {{\"bytes\": int, \"sha256\": str}}, "
                            f"got {entry!r:.80}")


def _inside(name: str) -> bool:
    """A relative posix path that stays under the folder (no `..`, no absolute path, no backslash)."""
    parts = PurePosixPath(name).parts
    return bool(name) and "\\" not in name and not PurePosixPath(name).is_absolute() \
        and ".." not in parts and name not in (".", MANIFEST)


def verify_manifest(folder: Path, required: bool = True, unlisted: tuple[str, ...] = ()) -> dict | None:
    """Check that `folder` holds exactly the files its manifest lists, with their sizes and
    checksums; a `UserError` names the first bad file. `unlisted`: glob patterns of files the caller
    itself derives from the data and may keep beside it (caches), which need not be listed."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        if required:
            raise UserError(f"{folder}: no {MANIFEST}; not a dataset written by protege "
                            f"(or its write did not finish)")
        return None
    listed = manifest["files"]
    extra = [n for n in data_files(folder)
             if n not in listed and not any(fnmatch.fnmatch(n, p) for p in unlisted)]
    if extra:
        raise UserError(f"{folder / extra[0]}: not listed in {MANIFEST} ({len(extra)} unlisted "
                        f"file(s)); the dataset was altered after it was written")
    for name, entry in listed.items():
        path = folder / name
        if not path.is_file():
            raise UserError(f"{path}: listed in the manifest but missing")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise UserError(f"{path}: {size} bytes, manifest says {entry['bytes']} (truncated or altered)")
        if file_sha256(path) != entry["sha256"]:
            raise UserError(f"{path}: checksum mismatch with the manifest (file altered or corrupted)")
    return manifest


def read_kind(folder: Path, kind: str, what: str, make_with: str, label: str | None = None) -> dict:
    """The manifest meta of a `kind` folder, after one-line refusals when `folder` is missing, its
    checksums fail, or it is another kind of folder. `what` names the folder for people ("studio
    export folder"), `make_with` the command that makes one; `label` replaces the path in the
    messages (e.g. "--export PATH")."""
    folder = Path(folder)
    label = label or str(folder)
    if not folder.is_dir():
        raise UserError(f"{label}: no such {what} (make one with `{make_with}`)")
    meta = verify_manifest(folder)["meta"]
    if meta.get("kind") != kind:
        raise UserError(f"{label}: a {meta.get('kind') or 'foreign'} folder, not a {what} ({kind})")
    return meta


def manifest_kind(folder: Path) -> str | None:
    """The `kind` (or, in older datasets, `format`) in a folder's manifest meta; None without one."""
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    meta = manifest.get("meta", {})
    return meta.get("kind") or meta.get("format")


# writing an output folder -------------------------------------------------------------------------
def check_output_folder(out: Path, kind: str, inputs=(), unlisted: tuple[str, ...] = ()) -> None:
    """Refuse to write folder `out` when that could destroy something: `out` is a file; it overlaps
    an input (equal, inside it, or holding it); or it is a non-empty folder that is not an earlier
    output of the same command (a manifest of this `kind` listing exactly the files it holds, apart
    from caches matching `unlisted`). Call it before the work, so a refusal costs nothing."""
    out = Path(out)
    for source in inputs:
        if source is not None and _overlap(out, Path(source)):
            raise UserError(f"--out {out} overlaps the input {source} (the same folder, inside it, "
                            f"or holding it); choose an output folder outside the input")
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"--out {out} is an existing file, not a folder; choose another path")
    entries = list(out.iterdir())
    if not entries:
        return
    try:
        found = manifest_kind(out)
    except UserError:
        found = None
    if found != kind:
        raise UserError(f"--out {out} already exists and is not a {kind} folder written before "
                        f"(it would be replaced); choose another path, or delete it yourself")
    hidden = [p for p in entries if p.name.startswith(".") and not p.name.endswith((".tmp", ".old"))]
    if hidden:  # not ours: our hidden entries are temporaries of interrupted atomic writes
        raise UserError(f"--out {out} holds {hidden[0].name}, which is not part of the {kind} "
                        f"written there (it would be lost); move it or choose another path")
    listed = set(read_manifest(out)["files"])
    extra = [n for n in data_files(out)
             if n not in listed and not any(fnmatch.fnmatch(n, p) for p in unlisted)]
    if extra:
        raise UserError(f"--out {out}: holds {out / extra[0]}, which is not part of the {kind} "
                        f"written there (it would be lost); move it or choose another path")


def check_output_file(out: Path, inputs=(), flag: str = "--out") -> None:
    """Refuse to write file `out` over an input file, over a folder, or inside a dataset folder
    protege wrote (its checksums would no longer match): a file output replaces only a file that
    is no one's input. Call it before the work."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"{flag} {out} is an existing folder, not a file; choose another path")
    for source in inputs:
        if source is not None and Path(source).is_file() and out.resolve() == Path(source).resolve():
            raise UserError(f"{flag} {out} is the input {source}; choose another path for the output")
    for parent in out.resolve().parents:
        if (parent / MANIFEST).is_file():
            raise UserError(f"{flag} {out} is inside the dataset {parent} (its manifest would no longer "
                            f"match); choose a path outside it")


def _overlap(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


@contextmanager
def output_folder(out: Path, kind: str, inputs=(), unlisted: tuple[str, ...] = ()):
    """Yield a temporary folder to fill; on success it replaces `out` in one rename. Checked by
    `check_output_folder` first: only an earlier output of the same `kind` is ever replaced."""
    from protege.core.atomic import atomic_path
    check_output_folder(out, kind, inputs, unlisted)
    with atomic_path(Path(out), replace_folder=True) as tmp:
        tmp.mkdir()
        yield tmp
