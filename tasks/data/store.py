"""The prepared-dataset store: `<root>/<name>/<version>/` with one .npy per array and a manifest.

The root may be a shared volume that many pods prepare into at once. A dataset folder only ever
appears by an atomic rename of a fully written (manifest last) temporary sibling, and builders run
under an exclusive file lock, so concurrent callers build once and never see half a dataset.

Two kinds of builder feed it. An in-memory builder returns its arrays; the store writes them. A
streaming builder (`prepare_dataset(..., streaming=True)`) is handed the temporary sibling itself
and writes its `.npy` files there (with `NpyWriter`, row block by row block), so a dataset larger
than memory never has to be held whole; the store then reads only the files' headers and hashes
them in chunks to write the manifest. Both get the same lock, checksums and atomic publish.
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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from tasks.data.download import Log, file_digest, log_to_stderr
from tasks.errors import DataError

MANIFEST_NAME = "manifest.json"
LOCKS_DIR = ".locks"
DOWNLOADS_DIR = ".downloads"
ARRAY_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")

# build(scratch) -> (arrays, metadata): the store writes the arrays.
Builder = Callable[[Path], tuple[dict[str, np.ndarray], dict]]
# build(scratch, staging) -> (files, metadata): each value is the path `staging/<key>.npy` the
# builder wrote, or a (small) in-memory array the store writes there for it.
StreamingBuilder = Callable[[Path, Path], tuple[Mapping[str, Path | np.ndarray], dict]]


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


def verify_dataset(root: Path, name: str, version: str, *, full: bool = True) -> None:
    """Check every array file against the manifest; DataError naming the first bad file.

    full: recompute every sha256. Otherwise a file whose size and modification time are still the
    ones recorded at publication is trusted without reading it (re-hashing epsilon's 4 GB on every
    run reads them all, from a network volume for every pod); any other file is re-hashed. Manifests from
    before sizes and times were recorded are always re-hashed.
    """
    directory = dataset_dir(root, name, version)
    for entry in read_manifest(root, name, version)["arrays"].values():
        path = directory / entry["file"]
        try:
            if not full and _unchanged_since_publication(path, entry):
                continue
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


def _unchanged_since_publication(path: Path, entry: dict[str, Any]) -> bool:
    """Size and mtime as recorded; a size that differs is a DataError (truncated or padded file)."""
    if "bytes" not in entry or "mtime_ns" not in entry:
        return False
    stat = path.stat()
    if stat.st_size != entry["bytes"]:
        raise DataError(
            f"{path} is {stat.st_size} bytes but was published with {entry['bytes']}; the prepared data is "
            f"corrupt — delete {path.parent} and prepare again"
        )
    return stat.st_mtime_ns == entry["mtime_ns"]


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


def _is_prepared(root: Path, name: str, version: str, log: Log, full_verify: bool = False) -> bool:
    """True when a complete, checksum-clean copy exists; a corrupt one is logged and reported as absent."""
    if not (dataset_dir(root, name, version) / MANIFEST_NAME).exists():
        return False
    try:
        verify_dataset(root, name, version, full=full_verify)
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


class NpyWriter:
    """Write one `.npy` file block by block, never holding the whole array.

    The header (numpy.lib.format, version 1.0, exactly as np.save writes it) goes first, then each
    block of rows is appended in order; the result is byte-identical to np.save of the whole array.
    Plain appends rather than a writable memmap (numpy.lib.format.open_memmap): pages dirtied
    through a mapping count in the process's resident memory (and its cgroup) until written back,
    so a multi-GB memmap write looks like a multi-GB process; appended pages are page cache only.

        with NpyWriter(staging / "train_features.npy", (n, d), np.float32) as out:
            for block in blocks:
                out.write(block)          # any number of rows, shape (k, d)

    Leaving the block without an exception checks that exactly shape[0] rows were written and
    fsyncs the file; ValueError otherwise (the caller's bug, not bad data).
    """

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: Any) -> None:
        self.path = Path(path)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        if not self.shape or any(n < 0 for n in self.shape):
            raise ValueError(f"NpyWriter shape must have at least one dimension, none negative; got {shape}")
        if self.dtype.hasobject:
            raise ValueError(f"NpyWriter cannot write object dtype {self.dtype} (it would need pickling)")
        self.rows_written = 0
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        self._file = open(self.path, "wb")  # noqa: SIM115 (closed in close())
        try:
            np.lib.format.write_array_header_1_0(self._file, header)
        except BaseException:
            self._file.close()
            raise

    def write(self, rows: np.ndarray) -> None:
        """Append rows (shape (k, *shape[1:]), cast to the file's dtype)."""
        rows = np.asarray(rows)
        if rows.shape[1:] != self.shape[1:] or rows.ndim != len(self.shape):
            raise ValueError(
                f"{self.path.name}: block of shape {rows.shape} does not fit rows of shape {self.shape[1:]}"
            )
        if self.rows_written + len(rows) > self.shape[0]:
            raise ValueError(
                f"{self.path.name}: {self.rows_written} + {len(rows)} rows exceed the declared {self.shape[0]}"
            )
        block = np.ascontiguousarray(rows, dtype=self.dtype)
        self._file.write(memoryview(block).cast("B"))
        self.rows_written += len(rows)

    def close(self) -> None:
        """Check the row count, flush and fsync; a file left short raises ValueError."""
        if self._file.closed:
            return
        try:
            if self.rows_written != self.shape[0]:
                raise ValueError(f"{self.path.name}: wrote {self.rows_written} of the declared {self.shape[0]} rows")
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:  # already failing: just release the file, the staging folder is discarded anyway
            self._file.close()


def _check_key(key: str) -> None:
    if not ARRAY_KEY_PATTERN.match(key):
        raise ValueError(f"array key {key!r} must match {ARRAY_KEY_PATTERN.pattern} (it becomes a file name)")


def _write_arrays(directory: Path, arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Write each array durably as `<key>.npy`; return the keys."""
    for key, array in arrays.items():
        _check_key(key)
        array = np.ascontiguousarray(array)
        with open(directory / f"{key}.npy", "wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
    return list(arrays)


def _npy_entry(path: Path) -> dict[str, Any]:
    """Manifest entry of a written .npy file from its header and a chunked sha256; never loads the data.

    Also fsyncs the file (a streaming builder may not have) and refuses one whose size disagrees with
    its header, so a truncated or padded file is never published.
    """
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
        except ValueError as exc:
            raise DataError(
                f"{path} is not a readable .npy file ({exc}); the dataset builder wrote a bad file"
            ) from exc
        if fortran_order or dtype.hasobject:
            raise DataError(
                f"{path} is {'Fortran-ordered' if fortran_order else 'an object array'}; "
                "the store only publishes C-ordered plain arrays"
            )
        expected = f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        actual = os.fstat(f.fileno()).st_size
        if actual != expected:
            raise DataError(
                f"{path} is {actual} bytes but its header ({dtype}{list(shape)}) needs {expected}; "
                "the dataset builder wrote an incomplete file"
            )
        os.fsync(f.fileno())
        stat = os.fstat(f.fileno())
    return {
        "file": path.name,
        "shape": list(shape),
        "dtype": str(dtype),
        "sha256": file_digest(path, "sha256"),
        "bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,  # renaming and chmod keep it: see verify_dataset
    }


def _streamed_files(staging: Path, files: Mapping[str, Path | np.ndarray]) -> list[str]:
    """Check a streaming builder's result against what it left in staging; write its in-memory values.

    Returns the keys. Every file must be `staging/<key>.npy`, and staging must hold nothing else:
    an unlisted file would be published without a checksum.
    """
    if not isinstance(files, Mapping) or not files:
        raise ValueError(f"a streaming builder must return a non-empty mapping of arrays, got {type(files).__name__}")
    in_memory: dict[str, np.ndarray] = {}
    for key, value in files.items():
        _check_key(key)
        expected = staging / f"{key}.npy"
        if isinstance(value, np.ndarray):
            if expected.exists():
                raise ValueError(f"streaming builder returned an array for {key!r} but also wrote {expected}")
            in_memory[key] = value
        elif isinstance(value, (str, os.PathLike)):
            if Path(value).resolve() != expected.resolve():
                raise ValueError(f"streaming builder must write {key!r} to {expected}, not {value}")
            if not expected.is_file():
                raise ValueError(f"streaming builder returned {expected} for {key!r} but did not write it")
        else:
            raise ValueError(
                f"streaming builder returned {type(value).__name__} for {key!r}; expected a path or an array"
            )
    _write_arrays(staging, in_memory)
    listed = {f"{key}.npy" for key in files}
    stray = sorted(p.name for p in staging.iterdir() if p.name not in listed)
    if stray:
        raise ValueError(
            f"streaming builder left unlisted file(s) {', '.join(stray)} in {staging}; "
            "remove them or return them as arrays"
        )
    return list(files)


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


def _new_staging(final: Path, version: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{version}.partial-", dir=final.parent))


def _publish(root: Path, name: str, version: str, staging: Path, keys: list[str], metadata: dict) -> None:
    """Write the manifest (last) of the `<key>.npy` files in staging, then rename staging into place."""
    final = dataset_dir(root, name, version)
    manifest = {
        "name": name,
        "version": version,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metadata": metadata,
        "arrays": {key: _npy_entry(staging / f"{key}.npy") for key in keys},
    }
    _write_manifest(staging, manifest)  # last: a manifest means every array is complete
    # mkdtemp made staging 0700; the published dataset is read by other users (pods on a shared volume).
    os.chmod(staging, 0o755)
    for entry in staging.iterdir():
        os.chmod(entry, 0o644)
    if final.exists():  # a corrupt earlier copy; move it out of the way before publishing
        discarded = Path(tempfile.mkdtemp(prefix=f".{version}.discarded-", dir=final.parent))
        os.rename(final, discarded / version)
        shutil.rmtree(discarded, ignore_errors=True)
    os.rename(staging, final)


def _build_and_publish(
    root: Path, name: str, version: str, scratch: Path, build: Builder | StreamingBuilder, streaming: bool
) -> None:
    """Run the builder and publish its result; any failure leaves no staging folder behind.

    The builder's own exceptions propagate unchanged; the store's file operations report an
    unwritable data root.
    """
    final = dataset_dir(root, name, version)
    if not streaming:
        arrays, metadata = build(scratch)  # type: ignore[call-arg]
    try:
        staging = _new_staging(final, version)
    except OSError as exc:
        raise _unwritable(root, exc) from exc
    try:
        if streaming:
            files, metadata = build(scratch, staging)  # type: ignore[call-arg]
        try:
            keys = _streamed_files(staging, files) if streaming else _write_arrays(staging, arrays)
            _publish(root, name, version, staging, keys, metadata)
        except OSError as exc:
            raise _unwritable(root, exc) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def prepare_dataset(
    root: Path,
    name: str,
    version: str,
    build: Builder | StreamingBuilder,
    log: Log = log_to_stderr,
    *,
    streaming: bool = False,
    full_verify: bool = False,
) -> Path:
    """Make `<root>/<name>/<version>` exist and verify, building it at most once across processes.

    build(scratch) returns (arrays, metadata); scratch is `<root>/<name>/.downloads`, which survives
    failed attempts so a large archive is not fetched twice.

    With streaming=True, build(scratch, staging) instead writes its arrays as `staging/<key>.npy`
    itself (see NpyWriter) and returns (files, metadata), files mapping each key to that path (or to
    a small in-memory array the store writes). staging is the hidden folder that becomes the dataset
    by one rename; it is deleted if the builder fails. The manifest is computed from the files'
    headers and a chunked sha256, so no array is ever loaded whole.

    An existing copy is checked against its manifest (verify_dataset; full_verify re-hashes every
    file, otherwise only files whose size or modification time changed).
    """
    root = Path(root)
    final = dataset_dir(root, name, version)
    if _is_prepared(root, name, version, log, full_verify):
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
        _build_and_publish(root, name, version, scratch, build, streaming)
    log(f"[data] {name} prepared at {final}")
    return final
