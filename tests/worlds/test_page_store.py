"""The float16 page-embedding store: a killed encoding resumes to the same bytes, rows match their
float32 source within float16's precision, and the manifest catches a damaged file."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from protege.core.errors import UserError
from protege.worlds.graphs.page_store import (
    ARRAY,
    PROGRESS,
    describe,
    encode_store,
    open_store,
    verify_chunks,
)

ROWS, DIM, CHUNK = 70, 8, 10
SOURCE = {"encoder": "test", "seed": 3}


def source_rows(lo: int, hi: int) -> np.ndarray:
    """A deterministic encoder: a pure function of the row range, as the store requires."""
    return np.stack([np.random.default_rng(i).standard_normal(DIM).astype(np.float32)
                     for i in range(lo, hi)])


class Counting:
    def __init__(self):
        self.calls = []

    def __call__(self, lo, hi):
        self.calls.append(lo // CHUNK)
        return source_rows(lo, hi)


KILLED_RUN = textwrap.dedent(f"""
    import os, signal, sys
    import numpy as np
    from protege.worlds.graphs.page_store import encode_store
    def encode(lo, hi):
        if lo >= 3 * {CHUNK}:
            os.kill(os.getpid(), signal.SIGKILL)  # dies with chunks 0-2 committed
        return np.stack([np.random.default_rng(i).standard_normal({DIM}).astype(np.float32)
                         for i in range(lo, hi)])
    encode_store(sys.argv[1], {ROWS}, {DIM}, encode, {SOURCE!r}, chunk_rows={CHUNK})
""")


def test_resume_after_kill_gives_identical_bytes(tmp_path):
    whole = tmp_path / "whole"
    encode_store(whole, ROWS, DIM, source_rows, SOURCE, chunk_rows=CHUNK)
    resumed = tmp_path / "resumed"
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(resumed)], capture_output=True,
                          check=False)
    assert proc.returncode == -9, proc.stderr.decode()[-500:]
    assert (resumed / PROGRESS).exists()
    with pytest.raises(UserError, match="not finished"):
        open_store(resumed)
    array = np.load(resumed / ARRAY, mmap_mode="r+")
    array[3 * CHUNK:4 * CHUNK + 5] = 7.0   # a torn write past the last commit
    array[1 * CHUNK + 2] = -1.0           # and damage inside a committed chunk
    array.flush()
    del array
    encoder = Counting()
    encode_store(resumed, ROWS, DIM, encoder, SOURCE, chunk_rows=CHUNK)
    assert encoder.calls == [1, 3, 4, 5, 6]  # chunks 0 and 2 were kept; 1 failed its checksum
    assert not (resumed / PROGRESS).exists()
    assert (resumed / ARRAY).read_bytes() == (whole / ARRAY).read_bytes()
    assert open_store(resumed).meta == open_store(whole).meta


def test_complete_store_is_not_recomputed_and_a_new_plan_is(tmp_path):
    encode_store(tmp_path / "s", ROWS, DIM, source_rows, SOURCE, chunk_rows=CHUNK)
    again = Counting()
    encode_store(tmp_path / "s", ROWS, DIM, again, SOURCE, chunk_rows=CHUNK)
    assert again.calls == []
    other = Counting()
    encode_store(tmp_path / "s", ROWS, DIM, other, {**SOURCE, "seed": 4}, chunk_rows=CHUNK)
    assert other.calls == list(range(7))
    assert open_store(tmp_path / "s").meta["source"]["seed"] == 4


def test_float16_rows_equal_float32_source_within_tolerance(tmp_path):
    encode_store(tmp_path / "s", ROWS, DIM, source_rows, SOURCE, chunk_rows=CHUNK)
    store = open_store(tmp_path / "s")
    assert store.rows.dtype == np.float16 and store.rows.shape == (ROWS, DIM)
    exact = source_rows(0, ROWS)
    # float16 rounds to 11 significant bits: relative error <= 2^-11 (normal range)
    np.testing.assert_allclose(store.gather(np.arange(ROWS)), exact, rtol=2.0 ** -11, atol=1e-7)
    ids = np.array([5, 69, 0, 5])
    np.testing.assert_array_equal(store.gather(ids), store.rows[ids].astype(np.float32))


def test_manifest_catches_corruption(tmp_path):
    folder = tmp_path / "s"
    encode_store(folder, ROWS, DIM, source_rows, SOURCE, chunk_rows=CHUNK)
    store = open_store(folder)
    assert verify_chunks(store) == []
    assert describe(folder) == ("page embeddings", {"pages": ROWS, "dims": DIM, "dtype": "float16",
                                                    "chunks": 7, "source": "test"})
    data = bytearray((folder / ARRAY).read_bytes())
    data[-2 * DIM * 25] ^= 0x40  # a bit flip in row 45: chunk 4
    (folder / ARRAY).write_bytes(bytes(data))
    with pytest.raises(UserError, match="checksum mismatch"):
        open_store(folder)
    assert verify_chunks(open_store(folder, verify=False)) == [4]
    (folder / ARRAY).write_bytes(bytes(data[:-10]))
    with pytest.raises(UserError, match="truncated"):
        open_store(folder)


def test_bad_encoder_output_and_foreign_folder(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        encode_store(tmp_path / "a", ROWS, DIM, lambda lo, hi: np.zeros((hi - lo, DIM + 1)), SOURCE)
    with pytest.raises(ValueError, match="non-finite"):
        encode_store(tmp_path / "b", ROWS, DIM, lambda lo, hi: np.full((hi - lo, DIM), np.nan), SOURCE)
    with pytest.raises(ValueError, match="float16"):
        encode_store(tmp_path / "c", ROWS, DIM, lambda lo, hi: np.full((hi - lo, DIM), 1e6), SOURCE)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="already exists"):
        encode_store(foreign, ROWS, DIM, source_rows, SOURCE)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(UserError, match="no protege-manifest"):
        open_store(foreign, verify=False)
