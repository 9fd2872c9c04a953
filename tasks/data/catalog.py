"""The named datasets and the only entry points the rest of the runtime uses: prepare, load, describe.

A dataset's version names exactly what its builder produces (source and parameters are pinned
here), so a prepared copy under any data root can be reused safely by every later run.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tasks.data.cifar10 import (
    CIFAR10_MD5,
    CIFAR10_URL,
    IMAGE_SHAPE,
    TRAIN_BATCHES,
    build_cifar10,
    build_synthetic_cifar10,
)
from tasks.data.digits import build_digits
from tasks.data.download import Log, log_to_stderr
from tasks.data.store import load_dataset, prepare_dataset
from tasks.errors import UserError

NUM_CLASSES = 10
SYNTHETIC_TRAIN_PER_BATCH = 100
SYNTHETIC_TEST_SIZE = 200
SYNTHETIC_SEED = 0
DIGITS_IMAGE_SIZE = 16
DIGITS_SEED = 0

DatasetBuilder = Callable[..., tuple[dict[str, np.ndarray], dict]]

DATASETS: dict[str, tuple[str, DatasetBuilder]] = {
    "cifar10": ("v1", build_cifar10),
    "synthetic-cifar10": (
        "v1",
        partial(
            build_synthetic_cifar10,
            train_per_batch=SYNTHETIC_TRAIN_PER_BATCH,
            test_size=SYNTHETIC_TEST_SIZE,
            seed=SYNTHETIC_SEED,
        ),
    ),
    "digits": ("v1-16px", partial(build_digits, image_size=DIGITS_IMAGE_SIZE, seed=DIGITS_SEED)),
}

_DESCRIPTIONS: dict[str, dict[str, Any]] = {
    "cifar10": {
        "source": CIFAR10_URL,
        "train_size": 50_000,
        "val_size": 10_000,
        "image_shape": list(IMAGE_SHAPE),
    },
    "synthetic-cifar10": {
        "source": "synthetic CIFAR-10-format archive (tasks.data.cifar10.write_cifar10_archive)",
        "train_size": SYNTHETIC_TRAIN_PER_BATCH * len(TRAIN_BATCHES),
        "val_size": SYNTHETIC_TEST_SIZE,
        "image_shape": list(IMAGE_SHAPE),
    },
    "digits": {
        "source": "sklearn.datasets.load_digits",
        "train_size": 1437,  # the 80/20 stratified split of its 1797 images
        "val_size": 360,
        "image_shape": [3, DIGITS_IMAGE_SIZE, DIGITS_IMAGE_SIZE],
    },
}


def _lookup(name: str) -> tuple[str, DatasetBuilder]:
    try:
        return DATASETS[name]
    except KeyError:
        raise UserError(f"unknown dataset '{name}'; valid names: {', '.join(sorted(DATASETS))}") from None


def prepare(
    name: str, root: Path, *, url: str | None = None, md5: str | None = None, log: Log = log_to_stderr
) -> Path:
    """Prepare a named dataset under root (once, safely across processes) and return its folder.

    url/md5 override the CIFAR-10 mirror; a mirror without its own md5 must serve the official file.
    """
    version, build = _lookup(name)
    if name == "cifar10":
        build = partial(build, url=url or CIFAR10_URL, md5=md5 or CIFAR10_MD5)
    elif url is not None or md5 is not None:
        raise UserError(f"data url/md5 overrides apply only to dataset 'cifar10', not '{name}'; remove them")
    return prepare_dataset(Path(root), name, version, partial(build, log=log), log=log)


def load(name: str, root: Path) -> dict[str, np.ndarray]:
    """The prepared arrays of a named dataset (memory-mapped): train/val images and labels."""
    version, _ = _lookup(name)
    return load_dataset(Path(root), name, version)


def describe(name: str) -> dict[str, Any]:
    """What a dataset is without preparing it: for listings, plans and result records."""
    version, _ = _lookup(name)
    return {"name": name, "version": version, "num_classes": NUM_CLASSES, **_DESCRIPTIONS[name]}
