"""The prepared-dataset store: `<root>/<name>/<version>/` with one .npy per array and a manifest.

The root may be a shared volume that many pods prepare into at once. A dataset folder only ever
appears by an atomic rename of a fully written (manifest last) temporary sibling, and builders run
under an exclusive file lock, so concurrent callers build once and never see half a dataset.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tasks.data.download import Log, file_digest, log_to_stderr
from tasks.errors import DataError

MANIFEST_NAME = "manifest.json"
LOCKS_DIR = ".locks"
DOWNLOADS_DIR = ".downloads"
ARRAY_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")

Builder = Callable[[Path], tuple[dict[str, np.ndarray], dict]]


def dataset_dir(root: Path, name: str, version: str) -> Path:
    """Where a prepared dataset lives; the one definition of the layout."""
    return Path(root) / name / version


def _unwritable(path: Path, exc: OSError) -> DataError:
    return DataError(
        f"data root {path} cannot be created or written: {exc.strerror or exc}; "
        "choose a writable data.root or fix its permissions"
    )


def read_manifest(root: Path, name: str, version: str) -> dict[str, Any]:
    """The manifest of a prepared dataset; DataError when it is not prepared or the manifest is unreadable."""
    directory = dataset_dir(root, name, version)
    path = directory / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"dataset '{name}' (version {version}) is not prepared under {root}; "
            "prepare it first with `mlbench prepare`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"manifest {path} is unreadable ({exc}); delete {directory} and prepare again") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("arrays"), dict):
        raise DataError(f"manifest {path} has no 'arrays' table; delete {directory} and prepare again")
    return manifest


def verify_dataset(root: Path, name: str, version: str) -> None:
    """Recompute every array file's sha256 against the manifest; DataError naming the first bad file."""
    directory = dataset_dir(root, name, version)
    for entry in read_manifest(root, name, version)["arrays"].values():
        path = directory / entry["file"]
        try:
            actual = file_digest(path, "sha256")
        except OSError as exc:
            raise DataError(
                f"cannot read {path} ({exc.strerror or exc}); delete {directory} and prepare again"
            ) from exc
        if actual != entry["sha256"]:
            raise DataError(
                f"checksum mismatch for {path}: expected sha256 {entry['sha256']}, got {actual}; "
                f"the prepared data is corrupt — delete {directory} and prepare again"
            )


def load_dataset(root: Path, name: str, version: str, mmap: bool = True) -> dict[str, np.ndarray]:
    """Load every array of a prepared dataset (memory-mapped by default, so ranks share the page cache)."""
    directory = dataset_dir(root, name, version)
    arrays: dict[str, np.ndarray] = {}
    for key, entry in read_manifest(root, name, version)["arrays"].items():
        path = directory / entry["file"]
        try:
            array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot load {path} ({exc}); delete {directory} and prepare again") from exc
        if list(array.shape) != list(entry["shape"]) or str(array.dtype) != entry["dtype"]:
            raise DataError(
                f"{path} holds {array.dtype}{list(array.shape)} but the manifest says "
                f"{entry['dtype']}{list(entry['shape'])}; delete {directory} and prepare again"
            )
        arrays[key] = array
    return arrays


def _is_prepared(root: Path, name: str, version: str, log: Log) -> bool:
    """True when a complete, checksum-clean copy exists; a corrupt one is logged and reported as absent."""
    if not (dataset_dir(root, name, version) / MANIFEST_NAME).exists():
        return False
    try:
        verify_dataset(root, name, version)
    except DataError as exc:
        log(f"[data] {name} at {dataset_dir(root, name, version)} failed verification ({exc}); rebuilding")
        return False
    return True


@contextmanager
def _exclusive_lock(root: Path, name: str, version: str, log: Log) -> Iterator[None]:
    """Hold `<root>/.locks/<name>-<version>.lock` so exactly one process builds a given dataset."""
    lock_path = Path(root) / LOCKS_DIR / f"{name}-{version}.lock"
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock_file = open(lock_path, "a+b")  # noqa: SIM115 (closed below, after unlocking)
    except OSError as exc:
        raise _unwritable(Path(root), exc) from exc
    with lock_file:
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DataError(f"cannot lock {lock_path}: {exc.strerror or exc}") from exc
            log(f"[data] waiting for another process preparing {name} ({version}) under {root}")
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _write_arrays(directory: Path, arrays: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Write each array durably as `<key>.npy` and return its manifest entries."""
    entries: dict[str, dict[str, Any]] = {}
    for key, array in arrays.items():
        if not ARRAY_KEY_PATTERN.match(key):
            raise ValueError(f"array key {key!r} must match {ARRAY_KEY_PATTERN.pattern} (it becomes a file name)")
        array = np.ascontiguousarray(array)
        file_name = f"{key}.npy"
        with open(directory / file_name, "wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        entries[key] = {
            "file": file_name,
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "sha256": file_digest(directory / file_name, "sha256"),
        }
    return entries


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    with open(directory / MANIFEST_NAME, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def _remove_leftovers(parent: Path, version: str) -> None:
    """Delete temporary folders of builds that crashed; only the lock holder calls this, so none is live."""
    for kind in ("partial", "discarded"):
        for leftover in parent.glob(f".{glob.escape(version)}.{kind}-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _publish(root: Path, name: str, version: str, arrays: dict[str, np.ndarray], metadata: dict) -> None:
    """Write arrays and manifest (last) into a hidden sibling, then rename it into place in one step."""
    final = dataset_dir(root, name, version)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.partial-", dir=final.parent))
    try:
        manifest = {
            "name": name,
            "version": version,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "metadata": metadata,
            "arrays": _write_arrays(staging, arrays),
        }
        _write_manifest(staging, manifest)  # last: a manifest means every array is complete
        if final.exists():  # a corrupt earlier copy; move it out of the way before publishing
            discarded = Path(tempfile.mkdtemp(prefix=f".{version}.discarded-", dir=final.parent))
            os.rename(final, discarded / version)
            shutil.rmtree(discarded, ignore_errors=True)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def prepare_dataset(root: Path, name: str, version: str, build: Builder, log: Log = log_to_stderr) -> Path:
    """Make `<root>/<name>/<version>` exist and verify, building it at most once across processes.

    build(scratch) returns (arrays, metadata); scratch is `<root>/<name>/.downloads`, which survives
    failed attempts so a large archive is not fetched twice.
    """
    root = Path(root)
    final = dataset_dir(root, name, version)
    if _is_prepared(root, name, version, log):
        log(f"[data] {name} already prepared at {final}")
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(root, exc) from exc
    with _exclusive_lock(root, name, version, log):
        if _is_prepared(root, name, version, log):  # another process finished while we waited
            log(f"[data] {name} already prepared at {final}")
            return final
        scratch = final.parent / DOWNLOADS_DIR
        try:
            scratch.mkdir(parents=True, exist_ok=True)
            _remove_leftovers(final.parent, version)
        except OSError as exc:
            raise _unwritable(root, exc) from exc

        log(f"[data] preparing {name} ({version}) under {root}")
        arrays, metadata = build(scratch)
        try:
            _publish(root, name, version, arrays, metadata)
        except OSError as exc:
            raise _unwritable(root, exc) from exc
    log(f"[data] {name} prepared at {final}")
    return final
