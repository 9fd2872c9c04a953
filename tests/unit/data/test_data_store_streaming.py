"""Streaming builders in the store: files written in staging, manifests by chunked hashing, same guarantees."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from tasks.data import store
from tasks.data.store import NpyWriter, load_dataset, prepare_dataset, read_manifest, verify_dataset
from tasks.errors import DataError

pytestmark = pytest.mark.unit

NAME, VERSION = "toy-stream", "v1"
REPO_ROOT = Path(__file__).resolve().parents[3]


def _quiet(message: str) -> None:
    pass


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "train_features": rng.normal(size=(37, 5)).astype(np.float32),
        "train_labels": (rng.random(37) > 0.5).astype(np.float32),
    }


def _write_in_blocks(path: Path, array: np.ndarray, block: int = 8) -> None:
    with NpyWriter(path, array.shape, array.dtype) as out:
        for start in range(0, len(array), block):
            out.write(array[start : start + block])


def _streaming_build(counter: Path, scratch: Path, staging: Path, delay_s: float = 0.0) -> tuple[dict, dict]:
    """Writes train_features block by block itself and hands train_labels over in memory."""
    with open(counter, "a") as f:
        f.write(f"{os.getpid()}\n")
    assert scratch.name == ".downloads" and scratch.is_dir()
    assert staging.is_dir() and staging.parent == scratch.parent and staging.name.startswith(f".{VERSION}.partial-")
    time.sleep(delay_s)
    arrays = _arrays()
    _write_in_blocks(staging / "train_features.npy", arrays["train_features"])
    return {"train_features": staging / "train_features.npy", "train_labels": arrays["train_labels"]}, {"note": "s"}


def _calls(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def _prepare_in_child(root: str, counter: str, barrier, results) -> None:  # noqa: ANN001 (mp proxies)
    barrier.wait()
    build = partial(_streaming_build, Path(counter), delay_s=0.5)
    results.put(str(prepare_dataset(Path(root), NAME, VERSION, build, log=_quiet, streaming=True)))


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "shape, dtype", [((37, 5), np.float32), ((1000,), np.float32), ((3, 2, 4), np.int64), ((0, 7), np.uint8)]
)
def test_npy_writer_is_byte_identical_to_np_save(tmp_path: Path, shape, dtype) -> None:  # noqa: ANN001
    array = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    _write_in_blocks(tmp_path / "a.npy", array, block=3)
    assert (tmp_path / "a.npy").read_bytes() == _npy_bytes(array)


def test_npy_writer_refuses_wrong_row_counts_and_shapes(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="wrote 2 of the declared 3 rows"),
        NpyWriter(tmp_path / "short.npy", (3, 2), np.float32) as out,
    ):
        out.write(np.zeros((2, 2)))
    with NpyWriter(tmp_path / "long.npy", (3, 2), np.float32) as out:
        with pytest.raises(ValueError, match=r"2 \+ 2 rows exceed the declared 3"):
            out.write(np.zeros((2, 2)))
            out.write(np.zeros((2, 2)))
        with pytest.raises(ValueError, match=r"block of shape \(1, 3\) does not fit rows of shape \(2,\)"):
            out.write(np.zeros((1, 3)))
        out.write(np.ones((1, 2)))
    np.testing.assert_array_equal(np.load(tmp_path / "long.npy"), [[0, 0], [0, 0], [1, 1]])


def test_streaming_prepare_writes_manifest_like_in_memory(tmp_path: Path) -> None:
    directory = prepare_dataset(
        tmp_path, NAME, VERSION, partial(_streaming_build, tmp_path / "calls"), log=_quiet, streaming=True
    )
    assert directory == tmp_path / NAME / VERSION
    assert sorted(p.name for p in directory.iterdir()) == ["manifest.json", "train_features.npy", "train_labels.npy"]
    manifest = read_manifest(tmp_path, NAME, VERSION)
    assert manifest["metadata"] == {"note": "s"}
    for key, array in _arrays().items():
        expected = _npy_bytes(array)
        assert (directory / f"{key}.npy").read_bytes() == expected
        assert manifest["arrays"][key] == {
            "file": f"{key}.npy",
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "sha256": hashlib.sha256(expected).hexdigest(),
            "bytes": len(expected),
            "mtime_ns": (directory / f"{key}.npy").stat().st_mtime_ns,
        }
    loaded = load_dataset(tmp_path, NAME, VERSION)
    assert isinstance(loaded["train_features"], np.memmap)
    np.testing.assert_array_equal(loaded["train_features"], _arrays()["train_features"])
    assert not [p for p in (tmp_path / NAME).iterdir() if p.name.startswith(f".{VERSION}.")]


def test_streaming_manifest_never_loads_an_array(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the store loaded a whole array")

    monkeypatch.setattr(store.np, "load", refuse)
    monkeypatch.setattr(store.np, "fromfile", refuse)
    prepare_dataset(tmp_path, NAME, VERSION, partial(_streaming_build, tmp_path / "calls"), log=_quiet, streaming=True)
    monkeypatch.undo()
    verify_dataset(tmp_path, NAME, VERSION)


def test_streaming_reuse_corruption_and_rebuild(tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    build = partial(_streaming_build, counter)
    directory = prepare_dataset(tmp_path, NAME, VERSION, build, log=_quiet, streaming=True)
    prepare_dataset(tmp_path, NAME, VERSION, build, log=_quiet, streaming=True)
    assert _calls(counter) == 1
    features = directory / "train_features.npy"
    data = bytearray(features.read_bytes())
    data[-1] ^= 0xFF
    features.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"checksum mismatch for .*train_features\.npy"):
        verify_dataset(tmp_path, NAME, VERSION)
    prepare_dataset(tmp_path, NAME, VERSION, build, log=_quiet, streaming=True)
    assert _calls(counter) == 2
    verify_dataset(tmp_path, NAME, VERSION)


def test_failed_streaming_build_leaves_nothing_and_keeps_scratch(tmp_path: Path) -> None:
    seen: list[Path] = []

    def failing(scratch: Path, staging: Path) -> tuple[dict, dict]:
        seen.append(staging)
        (scratch / "archive.part").write_bytes(b"kept")
        with NpyWriter(staging / "train_features.npy", (10, 2), np.float32) as out:
            out.write(np.zeros((4, 2)))
            raise DataError("archive truncated at row 4")

    with pytest.raises(DataError, match="truncated at row 4"):
        prepare_dataset(tmp_path, NAME, VERSION, failing, log=_quiet, streaming=True)
    assert not seen[0].exists() and not (tmp_path / NAME / VERSION).exists()
    assert (tmp_path / NAME / ".downloads" / "archive.part").exists()


def _bad_result_builders() -> dict[str, tuple]:
    def elsewhere(scratch: Path, staging: Path):  # noqa: ANN202
        np.save(scratch / "x.npy", np.zeros(3))
        return {"x": scratch / "x.npy"}, {}

    def not_written(scratch: Path, staging: Path):  # noqa: ANN202
        return {"x": staging / "x.npy"}, {}

    def stray(scratch: Path, staging: Path):  # noqa: ANN202
        np.save(staging / "x.npy", np.zeros(3))
        (staging / "notes.txt").write_text("unlisted")
        return {"x": staging / "x.npy"}, {}

    def bad_key(scratch: Path, staging: Path):  # noqa: ANN202
        return {"../x": np.zeros(3)}, {}

    def truncated(scratch: Path, staging: Path):  # noqa: ANN202
        np.save(staging / "x.npy", np.zeros(30))
        with open(staging / "x.npy", "r+b") as f:
            f.truncate(f.seek(0, os.SEEK_END) - 8)
        return {"x": staging / "x.npy"}, {}

    return {
        "elsewhere": (elsewhere, ValueError, r"must write 'x' to .*x\.npy, not "),
        "not_written": (not_written, ValueError, "did not write it"),
        "stray": (stray, ValueError, r"unlisted file\(s\) notes\.txt"),
        "bad_key": (bad_key, ValueError, "must match"),
        "truncated": (truncated, DataError, r"x\.npy is 360 bytes but its header \(float64\[30\]\) needs 368"),
    }


@pytest.mark.parametrize("case", sorted(_bad_result_builders()))
def test_bad_streaming_results_are_refused_and_cleaned(tmp_path: Path, case: str) -> None:
    build, error, message = _bad_result_builders()[case]
    with pytest.raises(error, match=message):
        prepare_dataset(tmp_path, NAME, VERSION, build, log=_quiet, streaming=True)
    assert not (tmp_path / NAME / VERSION).exists()
    assert not [p for p in (tmp_path / NAME).iterdir() if p.name.startswith(f".{VERSION}.")]


def test_concurrent_streaming_preparers_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    ctx = multiprocessing.get_context("spawn")
    counter = tmp_path / "calls"
    barrier, results = ctx.Barrier(3), ctx.Queue()
    args = (str(tmp_path), str(counter), barrier, results)
    workers = [ctx.Process(target=_prepare_in_child, args=args) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    assert {results.get(timeout=5) for _ in workers} == {str(tmp_path / NAME / VERSION)}
    assert _calls(counter) == 1
    verify_dataset(tmp_path, NAME, VERSION)
    assert json.loads((tmp_path / NAME / VERSION / "manifest.json").read_text())["metadata"] == {"note": "s"}


def test_published_dataset_is_readable_by_other_users(tmp_path):
    """Pods on a shared volume run as another uid than the process that prepared the data."""
    import stat

    from tasks.data import catalog

    path = catalog.prepare("breast-cancer", tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) & 0o055 == 0o055
    for entry in path.iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) & 0o044 == 0o044, entry.name
