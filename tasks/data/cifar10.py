"""CIFAR-10 from the official python archive, parsed here (no torchvision), plus a small look-alike.

The look-alike archive is written in exactly the official on-disk format and is read back by the
same code as the real one, so tests and offline demos exercise the real parsing path.
"""

from __future__ import annotations

import codecs
import gzip
import io
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from tasks.data.download import Log, download, file_digest, log_to_stderr
from tasks.errors import DataError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
ARCHIVE_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
IMAGE_SHAPE = (3, 32, 32)
ROW_WIDTH = 3 * 32 * 32
PICKLE_PROTOCOL = 2  # what the official (python 2 era) pickles use

# Synthetic look-alike: per-class blocky colour templates, randomly scaled, shifted and drowned in
# noise. Tuned so a two-layer CNN reaches ~85% val accuracy in five epochs on 500 images while the
# best single pixel predicts under 20%, i.e. learning needs spatial structure, not one lucky feature.
_TEMPLATE_BLOCK = 4
_TEMPLATE_CONTRAST = 30.0
_AMPLITUDE_RANGE = (0.6, 1.2)
_MAX_SHIFT = 3
_NOISE_STD = 90.0

# The official pickles (and ours) only ever reference these globals; anything else is refused, so a
# tampered archive from an untrusted mirror cannot run code while being unpickled.
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_ALLOWED_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"it references {module}.{name}, which CIFAR-10 pickles never do") from None


def _member_path(file_name: str) -> str:
    return f"{ARCHIVE_DIR}/{file_name}"


def _bad_member(archive: Path, file_name: str, problem: str) -> DataError:
    return DataError(
        f"{archive} member {_member_path(file_name)} {problem}; this is not the CIFAR-10 python "
        "archive — delete it and download again, or point data.url at a good mirror"
    )


def _unpickle(payload: bytes, archive: Path, file_name: str) -> Any:
    try:
        return _BatchUnpickler(io.BytesIO(payload), encoding="bytes").load()
    except Exception as exc:  # malformed pickles fail in many ways; all mean the same to the user
        raise _bad_member(archive, file_name, f"is not a readable pickle ({exc})") from exc


def _batch_arrays(batch: Any, archive: Path, file_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate one unpickled batch and return (images N×3×32×32 uint8, labels int64)."""
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise _bad_member(archive, file_name, "is not a dict with b'data' and b'labels'")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_WIDTH:
        found = f"{data.dtype}{list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise _bad_member(archive, file_name, f"has data {found}, expected uint8 [N, {ROW_WIDTH}]")
    try:
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise _bad_member(archive, file_name, f"has non-integer labels ({exc})") from exc
    if labels.shape != (data.shape[0],):
        raise _bad_member(archive, file_name, f"has {labels.size} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise _bad_member(archive, file_name, f"has labels outside 0..{len(CIFAR10_CLASSES) - 1}")
    return data.reshape(-1, *IMAGE_SHAPE), labels


def _check_meta(meta: Any, archive: Path) -> None:
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if names != [name.encode() for name in CIFAR10_CLASSES]:
        raise _bad_member(archive, META_FILE, f"lists label names {names!r}, expected the 10 CIFAR-10 classes")


def read_cifar10_archive(archive: Path) -> dict[str, np.ndarray]:
    """Parse the official archive in one streaming pass (no extraction) into train/val arrays.

    Returns train_images/val_images (N, 3, 32, 32) uint8 and train_labels/val_labels (N,) int64;
    val is the official test_batch.
    """
    archive = Path(archive)
    wanted = {_member_path(name): name for name in (*TRAIN_BATCHES, TEST_BATCH, META_FILE)}
    contents: dict[str, Any] = {}
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                file_name = wanted.get(member.name)
                if file_name is None:
                    continue
                if not member.isfile():
                    raise _bad_member(archive, file_name, "is not a regular file")
                stream = tar.extractfile(member)
                assert stream is not None  # regular files always have a data stream
                # Read whole before unpickling, so a damaged archive is reported as such, not as a bad pickle.
                contents[file_name] = _unpickle(stream.read(), archive, file_name)
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"cannot read archive {archive}: {exc}; delete it and download again") from exc

    missing = [_member_path(name) for name in wanted.values() if name not in contents]
    if missing:
        raise DataError(
            f"{archive} lacks member(s) {', '.join(missing)}; this is not the CIFAR-10 python "
            "archive — delete it and download again, or point data.url at a good mirror"
        )
    _check_meta(contents[META_FILE], archive)
    train = [_batch_arrays(contents[name], archive, name) for name in TRAIN_BATCHES]
    val_images, val_labels = _batch_arrays(contents[TEST_BATCH], archive, TEST_BATCH)
    return {
        "train_images": np.concatenate([images for images, _ in train]),
        "train_labels": np.concatenate([labels for _, labels in train]),
        "val_images": np.ascontiguousarray(val_images),
        "val_labels": val_labels,
    }


def _synthetic_batch(rng: np.random.Generator, templates: np.ndarray, size: int) -> tuple[np.ndarray, list[int]]:
    """Balanced, shuffled labels and noisy shifted class templates as official-format rows."""
    labels = rng.permutation(np.arange(size) % len(CIFAR10_CLASSES))
    amplitudes = rng.uniform(*_AMPLITUDE_RANGE, size=(size, 1, 1, 1))
    shifts = rng.integers(-_MAX_SHIFT, _MAX_SHIFT + 1, size=(size, 2))
    signal = np.stack(
        [np.roll(templates[label], tuple(shift), axis=(1, 2)) for label, shift in zip(labels, shifts, strict=True)]
    )
    pixels = 128.0 + signal * amplitudes + rng.normal(0.0, _NOISE_STD, size=signal.shape)
    rows = np.clip(np.rint(pixels), 0, 255).astype(np.uint8).reshape(size, ROW_WIDTH)
    return rows, [int(label) for label in labels]


def write_cifar10_archive(path: Path, *, train_per_batch: int = 100, test_size: int = 200, seed: int = 0) -> str:
    """Write a small, learnable CIFAR-10 look-alike in the official format; return its md5.

    Byte-for-byte deterministic for given arguments (fixed tar and gzip timestamps), so its md5 is
    a stable identity like the real archive's.
    """
    if train_per_batch < 1 or test_size < 1:
        raise ValueError(f"train_per_batch and test_size must be >= 1, got {train_per_batch} and {test_size}")
    rng = np.random.default_rng(seed)
    low_res = rng.normal(0.0, 1.0, size=(len(CIFAR10_CLASSES), 3, 32 // _TEMPLATE_BLOCK, 32 // _TEMPLATE_BLOCK))
    templates = np.kron(low_res, np.ones((_TEMPLATE_BLOCK, _TEMPLATE_BLOCK))) * _TEMPLATE_CONTRAST

    members: list[tuple[str, bytes]] = [
        ("readme.html", b"<html><body>Synthetic CIFAR-10 look-alike for tests and demos.</body></html>\n"),
        (
            META_FILE,
            pickle.dumps(
                {
                    b"num_cases_per_batch": train_per_batch,
                    b"label_names": [name.encode() for name in CIFAR10_CLASSES],
                    b"num_vis": ROW_WIDTH,
                },
                protocol=PICKLE_PROTOCOL,
            ),
        ),
    ]
    batch_specs = [(name, train_per_batch, f"training batch {i} of 5") for i, name in enumerate(TRAIN_BATCHES, 1)]
    batch_specs.append((TEST_BATCH, test_size, "testing batch 1 of 1"))
    for file_name, size, batch_label in batch_specs:
        rows, labels = _synthetic_batch(rng, templates, size)
        batch = {
            b"batch_label": batch_label.encode(),
            b"labels": labels,
            b"data": rows,
            b"filenames": [f"synthetic_{CIFAR10_CLASSES[label]}_{i:05d}.png".encode()
                           for i, label in enumerate(labels)],
        }
        members.append((file_name, pickle.dumps(batch, protocol=PICKLE_PROTOCOL)))

    path = Path(path)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as tar:
            folder = tarfile.TarInfo(ARCHIVE_DIR)
            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(folder)
            for file_name, payload in members:
                info = tarfile.TarInfo(_member_path(file_name))
                info.size, info.mode = len(payload), 0o644
                tar.addfile(info, io.BytesIO(payload))
    return file_digest(path)


def _sizes(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    return {"train_size": len(arrays["train_labels"]), "val_size": len(arrays["val_labels"])}


def build_cifar10(
    scratch: Path, *, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5, log: Log = log_to_stderr
) -> tuple[dict[str, np.ndarray], dict]:
    """Builder for the real dataset: fetch (checksummed, reused if already in scratch) and parse."""
    archive = download(url, Path(scratch) / ARCHIVE_NAME, md5=md5, log=log)
    arrays = read_cifar10_archive(archive)
    metadata = {"source": url, "md5": md5, "classes": list(CIFAR10_CLASSES), "synthetic": False, **_sizes(arrays)}
    return arrays, metadata


def build_synthetic_cifar10(
    scratch: Path, *, train_per_batch: int = 100, test_size: int = 200, seed: int = 0, log: Log = log_to_stderr
) -> tuple[dict[str, np.ndarray], dict]:
    """Builder for the look-alike: write it, then fetch and parse it exactly as the real archive is."""
    generated = Path(scratch) / f"generated-{ARCHIVE_NAME}"
    generated.parent.mkdir(parents=True, exist_ok=True)
    md5 = write_cifar10_archive(generated, train_per_batch=train_per_batch, test_size=test_size, seed=seed)
    log(f"[data] wrote synthetic CIFAR-10-format archive {generated} (md5 {md5})")
    archive = download(str(generated), Path(scratch) / ARCHIVE_NAME, md5=md5, log=log)
    arrays = read_cifar10_archive(archive)
    metadata = {
        "source": "synthetic: tasks.data.cifar10.write_cifar10_archive",
        "md5": md5,
        "classes": list(CIFAR10_CLASSES),
        "synthetic": True,
        "seed": seed,
        "train_per_batch": train_per_batch,
        **_sizes(arrays),
    }
    return arrays, metadata
