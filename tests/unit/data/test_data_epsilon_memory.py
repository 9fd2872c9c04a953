"""The epsilon conversion streams: its peak memory does not grow with the number of rows.

Measured with tracemalloc (exact for Python and numpy allocations, including the bz2 decompressor's)
around the whole builder: download copy, checksums, bz2 decompression, parsing and .npy writing.
Converting 4x more rows must not raise the peak by more than a small fraction of what holding the
extra rows would cost (as arrays or as text). The copy and checksum passes read fixed-size chunks
(1 MiB); they are shrunk here so that both files, small for speed, are larger than one chunk.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from tasks.data import download, epsilon
from tasks.data.epsilon import TEST_ARCHIVE, TRAIN_ARCHIVE, build_epsilon, write_libsvm

pytestmark = pytest.mark.unit

FEATURES = 50
CHUNK_ROWS = 256
SMALL, LARGE = 1500, 6000
IO_CHUNK_BYTES = 64 << 10


def _peak_bytes(tmp_path: Path, rows: int) -> int:
    folder = tmp_path / f"rows-{rows}"
    (folder / "scratch").mkdir(parents=True)
    (folder / "staging").mkdir()
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    y = np.where(rng.random(rows) > 0.5, 1, -1)
    md5_train = write_libsvm(folder / TRAIN_ARCHIVE, x, y)
    md5_test = write_libsvm(folder / TEST_ARCHIVE, x[:10], y[:10])
    del x, y
    tracemalloc.start()
    try:
        build_epsilon(
            folder / "scratch",
            folder / "staging",
            url_train=str(folder / TRAIN_ARCHIVE),
            url_test=str(folder / TEST_ARCHIVE),
            md5_train=md5_train,
            md5_test=md5_test,
            sha256_train=None,
            sha256_test=None,
            train_rows=rows,
            test_rows=10,
            num_features=FEATURES,
            chunk_rows=CHUNK_ROWS,
            log=lambda message: None,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.load(folder / "staging" / "train_features.npy", mmap_mode="r").shape == (rows, FEATURES)
    return peak


def test_conversion_peak_memory_does_not_grow_with_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "CHUNK_BYTES", IO_CHUNK_BYTES)
    monkeypatch.setattr(epsilon, "CHUNK_BYTES", IO_CHUNK_BYTES)
    small, large = _peak_bytes(tmp_path, SMALL), _peak_bytes(tmp_path, LARGE)
    extra_rows_as_float32 = (LARGE - SMALL) * FEATURES * 4  # 0.9 MB; as text it would be ~4x that
    block = CHUNK_ROWS * FEATURES * 4
    assert large - small < extra_rows_as_float32 / 8, (small, large)
    assert large < 4 * block + (256 << 10), (small, large)  # two parsed blocks, I/O buffers; nothing per row
