"""Real handwritten digits that ship inside scikit-learn: an offline dataset for demos and CI.

Shaped like CIFAR-10 (N×3×H×W uint8, ten classes) so every model and loader works on it unchanged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tasks.data.download import Log, log_to_stderr
from tasks.errors import DataError

SOURCE_SIZE = 8
SOURCE_MAX_VALUE = 16
VAL_FRACTION = 0.2


def _stratified_val_counts(class_counts: np.ndarray, n_val: int) -> np.ndarray:
    """Split n_val across classes in proportion to their sizes (largest remainder, ties to lower class)."""
    quotas = n_val * class_counts / class_counts.sum()
    counts = np.floor(quotas).astype(np.int64)
    by_remainder = np.argsort(-(quotas - counts), kind="stable")
    counts[by_remainder[: n_val - counts.sum()]] += 1
    return counts


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class shuffle split; returns sorted (train, val) index arrays.

    Written here rather than borrowed from scikit-learn so the split cannot change with its version.
    """
    rng = np.random.default_rng(seed)
    classes, class_counts = np.unique(labels, return_counts=True)
    n_val = int(np.ceil(val_fraction * len(labels)))
    val_parts = []
    for label, n_class_val in zip(classes, _stratified_val_counts(class_counts, n_val), strict=True):
        members = np.flatnonzero(labels == label)
        val_parts.append(rng.permutation(members)[:n_class_val])
    val = np.sort(np.concatenate(val_parts))
    train = np.setdiff1d(np.arange(len(labels)), val)
    return train, val


def build_digits(
    scratch: Path, *, image_size: int = 16, seed: int = 0, log: Log = log_to_stderr
) -> tuple[dict[str, np.ndarray], dict]:
    """Builder for scikit-learn's 1797 8×8 digits: scaled to uint8, upsampled, 3 channels, 80/20 split.

    scratch is unused (nothing is downloaded); it is accepted so this is a store builder like the rest.
    """
    if image_size < SOURCE_SIZE or image_size % SOURCE_SIZE:
        raise DataError(f"digits image_size must be a positive multiple of 8 (8, 16, 24, 32, ...), got {image_size}")
    try:
        import sklearn
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError(
            "the digits dataset needs scikit-learn, which is not installed; "
            "install it with `pip install 'mlbench-airflow[train]'`"
        ) from exc

    digits = load_digits()
    raw = digits.images.astype(np.uint8)  # integral values 0..16
    labels = digits.target.astype(np.int64)
    log(f"[data] loaded {len(labels)} digits from scikit-learn {sklearn.__version__}")

    scaled = np.rint(raw.astype(np.float64) * (255.0 / SOURCE_MAX_VALUE)).astype(np.uint8)
    factor = image_size // SOURCE_SIZE
    upsampled = scaled.repeat(factor, axis=1).repeat(factor, axis=2)
    images = np.repeat(upsampled[:, np.newaxis], 3, axis=1)

    train, val = stratified_split(labels, VAL_FRACTION, seed)
    arrays = {
        "train_images": images[train],
        "train_labels": labels[train],
        "val_images": images[val],
        "val_labels": labels[val],
    }
    metadata = {
        "source": "sklearn.datasets.load_digits",
        "sklearn_version": sklearn.__version__,
        "raw_images_sha256": hashlib.sha256(np.ascontiguousarray(raw).tobytes()).hexdigest(),
        "image_size": image_size,
        "seed": seed,
        "train_size": len(train),
        "val_size": len(val),
    }
    return arrays, metadata
