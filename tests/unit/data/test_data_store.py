"""The prepared-dataset store: reuse, corruption detection, failed builds and concurrent preparers."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from tasks.data.store import load_dataset, prepare_dataset, read_manifest, verify_dataset
from tasks.errors import DataError

pytestmark = pytest.mark.unit

NAME, VERSION = "toy", "v1"
REPO_ROOT = Path(__file__).resolve().parents[3]


def _quiet(message: str) -> None:
    pass


def _toy_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "train_images": rng.integers(0, 256, size=(20, 3, 4, 4), dtype=np.uint8),
        "train_labels": np.arange(20, dtype=np.int64) % 10,
    }


def _counting_build(counter: Path, scratch: Path, delay_s: float = 0.0) -> tuple[dict[str, np.ndarray], dict]:
    """A builder that records each call in counter (a file, so calls from other processes count too)."""
    with open(counter, "a") as f:
        f.write(f"{os.getpid()}\n")
    assert scratch.name == ".downloads" and scratch.is_dir()
    time.sleep(delay_s)  # widen the window in which concurrent preparers would collide
    return _toy_arrays(), {"note": "toy"}


def _build_calls(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def _prepare_in_child(root: str, counter: str, barrier, results) -> None:  # noqa: ANN001 (mp proxies)
    barrier.wait()
    build = partial(_counting_build, Path(counter), delay_s=0.5)
    results.put(str(prepare_dataset(Path(root), NAME, VERSION, build, log=_quiet)))


def test_prepare_writes_layout_and_manifest(tmp_path: Path) -> None:
    directory = prepare_dataset(tmp_path, NAME, VERSION, partial(_counting_build, tmp_path / "calls"), log=_quiet)
    assert directory == tmp_path / NAME / VERSION
    assert sorted(p.name for p in directory.iterdir()) == ["manifest.json", "train_images.npy", "train_labels.npy"]
    manifest = read_manifest(tmp_path, NAME, VERSION)
    assert manifest["name"] == NAME and manifest["version"] == VERSION
    assert manifest["created_at"].endswith("+00:00")
    assert manifest["metadata"] == {"note": "toy"}
    assert manifest["arrays"]["train_images"]["shape"] == [20, 3, 4, 4]
    assert manifest["arrays"]["train_labels"]["dtype"] == "int64"
    assert len(manifest["arrays"]["train_labels"]["sha256"]) == 64
    assert not [p for p in (tmp_path / NAME).iterdir() if p.name.startswith(f".{VERSION}.")]  # no staging left


def test_second_prepare_reuses_without_building(tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    messages: list[str] = []
    first = prepare_dataset(tmp_path, NAME, VERSION, partial(_counting_build, counter), log=_quiet)
    second = prepare_dataset(tmp_path, NAME, VERSION, partial(_counting_build, counter), log=messages.append)
    assert first == second
    assert _build_calls(counter) == 1
    assert messages == [f"[data] {NAME} already prepared at {first}"]


def test_load_round_trips_memory_mapped(tmp_path: Path) -> None:
    prepare_dataset(tmp_path, NAME, VERSION, partial(_counting_build, tmp_path / "calls"), log=_quiet)
    arrays = load_dataset(tmp_path, NAME, VERSION)
    assert isinstance(arrays["train_images"], np.memmap)
    for key, expected in _toy_arrays().items():
        np.testing.assert_array_equal(arrays[key], expected)
    assert not isinstance(load_dataset(tmp_path, NAME, VERSION, mmap=False)["train_labels"], np.memmap)


def test_corrupted_array_is_detected_and_rebuilt(tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    directory = prepare_dataset(tmp_path, NAME, VERSION, partial(_counting_build, counter), log=_quiet)
    images = directory / "train_images.npy"
    data = bytearray(images.read_bytes())
    data[-1] ^= 0xFF
    images.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"checksum mismatch for .*train_images\.npy: expected sha256"):
        verify_dataset(tmp_path, NAME, VERSION)
    prepare_dataset(tmp_path, NAME, VERSION, partial(_counting_build, counter), log=_quiet)
    assert _build_calls(counter) == 2
    verify_dataset(tmp_path, NAME, VERSION)


def test_reuse_skips_rehashing_files_whose_size_and_time_are_unchanged(tmp_path: Path, monkeypatch) -> None:
    from tasks.data import store

    counter = tmp_path / "calls"
    directory = prepare_dataset(tmp_path, NAME, VERSION, partial(_counting_build, counter), log=_quiet)
    hashed = []
    real_digest = store.file_digest
    monkeypatch.setattr(store, "file_digest", lambda path, *a: hashed.append(Path(path).name) or real_digest(path, *a))
    prepare_dataset(tmp_path, NAME, VERSION, partial(_counting_build, counter), log=_quiet)
    assert hashed == [] and _build_calls(counter) == 1  # reused without reading the arrays
    prepare_dataset(tmp_path, NAME, VERSION, partial(_counting_build, counter), log=_quiet, full_verify=True)
    assert sorted(hashed) == ["train_images.npy", "train_labels.npy"]

    # a rewrite changes the modification time: that file alone is re-hashed, and its corruption found
    images = directory / "train_images.npy"
    data = bytearray(images.read_bytes())
    data[-1] ^= 0xFF
    hashed.clear()
    images.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"checksum mismatch for .*train_images\.npy"):
        verify_dataset(tmp_path, NAME, VERSION, full=False)
    assert hashed == ["train_images.npy"]
    # a corruption that even kept the time is found only by a full verification (`mlbench prepare --verify`)
    entry = read_manifest(tmp_path, NAME, VERSION)["arrays"]["train_images"]
    os.utime(images, ns=(entry["mtime_ns"], entry["mtime_ns"]))
    verify_dataset(tmp_path, NAME, VERSION, full=False)
    with pytest.raises(DataError, match="checksum mismatch"):
        verify_dataset(tmp_path, NAME, VERSION)
    # and a truncated file is refused by its size alone
    images.write_bytes(bytes(data[:-10]))
    os.utime(images, ns=(entry["mtime_ns"], entry["mtime_ns"]))
    with pytest.raises(DataError, match=r"train_images\.npy is \d+ bytes but was published with \d+"):
        verify_dataset(tmp_path, NAME, VERSION, full=False)


def test_load_rejects_array_that_disagrees_with_manifest(tmp_path: Path) -> None:
    directory = prepare_dataset(tmp_path, NAME, VERSION, partial(_counting_build, tmp_path / "calls"), log=_quiet)
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["arrays"]["train_labels"]["shape"] = [21]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"train_labels\.npy holds int64\[20\] but the manifest says int64\[21\]"):
        load_dataset(tmp_path, NAME, VERSION)


def test_unprepared_dataset_is_a_clear_error(tmp_path: Path) -> None:
    not_prepared = rf"dataset '{NAME}' \(version {VERSION}\) is not prepared under .*mlbench prepare"
    with pytest.raises(DataError, match=not_prepared):
        load_dataset(tmp_path, NAME, VERSION)


def test_failed_build_publishes_nothing_and_next_attempt_builds(tmp_path: Path) -> None:
    def failing_build(scratch: Path) -> tuple[dict[str, np.ndarray], dict]:
        (scratch / "archive.part").write_bytes(b"kept for the next attempt")
        raise DataError("mirror down")

    with pytest.raises(DataError, match="mirror down"):
        prepare_dataset(tmp_path, NAME, VERSION, failing_build, log=_quiet)
    assert not (tmp_path / NAME / VERSION).exists()
    assert (tmp_path / NAME / ".downloads" / "archive.part").exists()
    prepare_dataset(tmp_path, NAME, VERSION, partial(_counting_build, tmp_path / "calls"), log=_quiet)
    verify_dataset(tmp_path, NAME, VERSION)


def test_leftover_staging_from_a_crash_is_cleaned(tmp_path: Path) -> None:
    leftover = tmp_path / NAME / f".{VERSION}.partial-crashed"
    leftover.mkdir(parents=True)
    (leftover / "train_images.npy").write_bytes(b"half")
    prepare_dataset(tmp_path, NAME, VERSION, partial(_counting_build, tmp_path / "calls"), log=_quiet)
    assert not leftover.exists()


def test_unwritable_root_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    root = blocker / "data"
    with pytest.raises(DataError, match=rf"data root {root} cannot be created or written"):
        prepare_dataset(root, NAME, VERSION, partial(_counting_build, tmp_path / "calls"), log=_quiet)


def test_concurrent_preparers_build_once_and_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Spawned children import this module by name, whatever the import mode: give them the repo root.
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    ctx = multiprocessing.get_context("spawn")
    counter = tmp_path / "calls"
    barrier, results = ctx.Barrier(4), ctx.Queue()
    workers = [
        ctx.Process(target=_prepare_in_child, args=(str(tmp_path), str(counter), barrier, results)) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    directories = [results.get(timeout=5) for _ in workers]
    assert _build_calls(counter) == 1
    assert set(directories) == {str(tmp_path / NAME / VERSION)}
    verify_dataset(tmp_path, NAME, VERSION)
    assert read_manifest(tmp_path, NAME, VERSION)["metadata"] == {"note": "toy"}
