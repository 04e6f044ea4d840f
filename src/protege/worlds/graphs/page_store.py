"""Page embeddings at the paper's scale: one float16 [N, D] memory-mapped .npy, computed in chunks that
commit atomically, so a killed encoding resumes where it stopped and ends with the same bytes.

    store/embeddings.npy           float16 [N, D]  row i is page i's embedding
    store/protege-manifest.json    size + SHA-256 of the file; meta: rows, dim, source, chunk checksums
    store/.progress.json           while encoding: the chunks committed so far (removed at the end)

A chunk is committed when its rows are flushed to the file and then its SHA-256 is recorded in
`.progress.json` (written atomically): a kill before the record leaves the chunk to be recomputed, a
kill after it loses nothing. The encoder must be deterministic (a pure function of the row range) for
a resumed store to equal an uninterrupted one; `source` names what the rows were computed from, and a
store whose `source`, size or chunking differ is recomputed rather than resumed.

float16 halves float32 (38M pages x 64 dims = 4.9 GB instead of 9.7 GB) at a relative error of at most
2^-11 per component, well below the noise of any text embedding; training reads rows per batch
(`PageStore.rows[ids]`), so the whole array is never in memory.
"""

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protege.core.atomic import write_json_atomic
from protege.core.errors import UserError
from protege.data.manifest import (
    check_output_folder,
    read_manifest,
    verify_manifest,
    write_manifest,
)

KIND = "protege.nav.page-embeddings"
ARRAY = "embeddings.npy"
PROGRESS = ".progress.json"
FP16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class PageStore:
    """An opened store. rows: float16 [N, D] memory map (read-only); meta: the manifest's meta."""
    rows: np.ndarray
    meta: dict
    folder: Path

    @property
    def num_rows(self) -> int:
        return self.rows.shape[0]

    @property
    def dim(self) -> int:
        return self.rows.shape[1]

    def gather(self, ids: np.ndarray) -> np.ndarray:
        """float32 [len(ids), D] rows of `ids` (reads only those rows from disk)."""
        return np.asarray(self.rows[np.asarray(ids)], dtype=np.float32)


def default_chunk_rows(dim: int, chunk_bytes: int = 64 << 20) -> int:
    """Rows per chunk so that a chunk is ~64 MB of float16: big enough that the per-chunk flush and
    checksum cost nothing, small enough that a kill loses seconds of work."""
    return max(1, chunk_bytes // (2 * dim))


def _plan(num_rows: int, dim: int, chunk_rows: int, source: dict) -> dict:
    return {"kind": KIND, "rows": int(num_rows), "dim": int(dim), "dtype": "float16",
            "chunk_rows": int(chunk_rows), "source": source}


def _chunk_sha(rows: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rows).data).hexdigest()


def encode_store(out: Path, num_rows: int, dim: int, encode: Callable[[int, int], np.ndarray],
                 source: dict, chunk_rows: int | None = None, progress=None,
                 check_resumed: bool = True) -> dict:
    """Fill store `out` with `encode(lo, hi) -> float32 [hi - lo, dim]` for every chunk, resuming a
    partial store of the same plan; returns the manifest meta. `progress(rows)` is called per chunk
    (rows already done are reported first). `check_resumed` re-hashes the committed chunks before
    trusting them. A complete store of the same plan is returned as is."""
    out = Path(out)
    chunk_rows = chunk_rows or default_chunk_rows(dim)
    if num_rows < 1 or dim < 1 or chunk_rows < 1:
        raise UserError(f"{out}: a store needs rows, dim and chunk_rows >= 1 "
                        f"(got {num_rows}, {dim}, {chunk_rows})")
    plan = _plan(num_rows, dim, chunk_rows, json.loads(json.dumps(source)))
    done = _resume_point(out, plan)
    if done is None:  # complete already
        if progress is not None:
            progress(num_rows)
        return read_manifest(out)["meta"]
    path = out / ARRAY
    if not path.exists() or path.stat().st_size != _npy_bytes(num_rows, dim):
        np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(num_rows, dim)).flush()
    header = int(np.load(path, mmap_mode="r").offset)
    row_bytes = 2 * dim
    chunks = -(-num_rows // chunk_rows)
    # plain reads and writes, not the memory map: mapped pages would count as this process's memory
    with open(path, "r+b") as f:
        if check_resumed:
            done = {i: sha for i, sha in done.items()
                    if _read_sha(f, header + int(i) * chunk_rows * row_bytes,
                                 _chunk_len(i, chunk_rows, num_rows) * row_bytes) == sha}
        if progress is not None:
            progress(sum(_chunk_len(i, chunk_rows, num_rows) for i in done))
        for i in range(chunks):
            if str(i) in done:
                continue
            lo, hi = i * chunk_rows, min((i + 1) * chunk_rows, num_rows)
            rows = _checked_rows(encode(lo, hi), lo, hi, dim)
            f.seek(header + lo * row_bytes)
            f.write(rows.tobytes())
            f.flush()  # rows reach the file before the record that says they are there
            done[str(i)] = _chunk_sha(rows)
            write_json_atomic(out / PROGRESS, {**plan, "done": done})
            if progress is not None:
                progress(hi - lo)
    meta = {**plan, "chunk_sha256": [done[str(i)] for i in range(chunks)]}
    write_manifest(out, meta)
    (out / PROGRESS).unlink()
    return meta


def _npy_bytes(num_rows: int, dim: int) -> int:
    header = np.lib.format.header_data_from_array_1_0(np.empty((0, dim), np.float16))
    header["shape"] = (num_rows, dim)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.tell() + 2 * num_rows * dim


def _chunk_len(i: int, chunk_rows: int, num_rows: int) -> int:
    return min((int(i) + 1) * chunk_rows, num_rows) - int(i) * chunk_rows


def _checked_rows(rows, lo: int, hi: int, dim: int) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.shape != (hi - lo, dim):
        raise ValueError(f"encoder returned shape {rows.shape} for rows {lo}:{hi}, expected {(hi - lo, dim)}")
    if not np.isfinite(rows).all() or np.abs(rows).max(initial=0.0) > FP16_MAX:
        raise ValueError(f"encoder returned a non-finite value or one beyond float16's range "
                         f"(|x| > {FP16_MAX:g}) in rows {lo}:{hi}")
    return rows.astype(np.float16)


def _resume_point(out: Path, plan: dict) -> dict | None:
    """Committed chunks ({index: sha256}) to resume from; {} to start afresh; None when `out` is a
    complete store of this plan. Refuses (one line) a folder this module did not write."""
    progress_path = out / PROGRESS
    if progress_path.exists():
        try:
            record = json.loads(progress_path.read_text())
        except ValueError:
            record = {}
        if record.get("kind") != KIND:
            raise UserError(f"{progress_path}: not a page-embedding progress record; "
                            f"choose another folder or delete it yourself")
        if (out / "protege-manifest.json").exists() and _same_plan(read_manifest(out)["meta"], plan):
            progress_path.unlink()  # killed between the manifest and this file's removal
            return None
        if _same_plan(record, plan):
            return dict(record.get("done", {}))
        _start_afresh(out, plan)
        return {}
    check_output_folder(out, KIND)
    if (out / "protege-manifest.json").exists() and _same_plan(read_manifest(out)["meta"], plan):
        return None
    _start_afresh(out, plan)
    return {}


def _same_plan(meta: dict, plan: dict) -> bool:
    return all(meta.get(k) == v for k, v in plan.items())


def _start_afresh(out: Path, plan: dict) -> None:
    """Record the plan first, then drop the old manifest: a kill in between leaves a folder that
    resumes (never one whose stale manifest claims rows that are being rewritten)."""
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / PROGRESS, {**plan, "done": {}})
    (out / "protege-manifest.json").unlink(missing_ok=True)


def _read_sha(f, offset: int, size: int) -> str:
    f.seek(offset)
    return hashlib.sha256(f.read(size)).hexdigest()


def open_store(folder: Path, verify: bool = True) -> PageStore:
    """Open a complete store by mmap; `verify` checks the manifest checksum (reads every byte once)."""
    folder = Path(folder)
    if (folder / PROGRESS).exists():
        raise UserError(f"{folder}: the page embeddings are not finished (see {PROGRESS}); run the "
                        f"encoding again to resume it")
    if verify:
        manifest = verify_manifest(folder)
    else:
        manifest = read_manifest(folder)
        if manifest is None:
            raise UserError(f"{folder}: no protege-manifest.json; not a page-embedding store")
    meta = manifest["meta"]
    if meta.get("kind") != KIND:
        raise UserError(f"{folder}: a {meta.get('kind')!r} folder, not page embeddings ({KIND})")
    rows = np.load(folder / ARRAY, mmap_mode="r")
    if rows.shape != (meta["rows"], meta["dim"]) or rows.dtype != np.float16:
        raise UserError(f"{folder / ARRAY}: {rows.dtype} {rows.shape}, manifest says float16 "
                        f"{(meta['rows'], meta['dim'])}")
    return PageStore(rows, meta, folder)


def verify_chunks(store: PageStore) -> list[int]:
    """Indices of chunks whose bytes differ from their recorded SHA-256 (empty when intact): finds
    which rows of a large store are damaged, where the manifest check says only that the file is."""
    step, n = store.meta["chunk_rows"], store.num_rows
    return [i for i, sha in enumerate(store.meta["chunk_sha256"])
            if _chunk_sha(store.rows[i * step:min((i + 1) * step, n)]) != sha]


def describe(folder: Path) -> tuple[str, dict]:
    """For `protege data validate`: the store's checksums checked, then its counts."""
    store = open_store(folder)
    return "page embeddings", {"pages": store.num_rows, "dims": store.dim, "dtype": "float16",
                               "chunks": len(store.meta["chunk_sha256"]),
                               "source": store.meta["source"].get("encoder", "?")}
