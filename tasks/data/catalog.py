"""The named datasets and the only entry points the rest of the runtime uses: prepare, load, describe.

A dataset's version names exactly what its builder produces (source and parameters are pinned
here), so a prepared copy under any data root can be reused safely by every later run.

Three kinds: image datasets (DATASETS: train/val images N x 3 x H x W uint8, int64 labels, ten
classes), tabular ones (TABULAR_DATASETS: train/val features N x D float32, float32 0/1 labels,
two classes, for MLBench task 2a) and text ones (TEXT_DATASETS: train/val/test int32 token
streams and their vocabulary, for MLBench task 3a). One dataset of each kind downloads and accepts
a data.url / data.md5 override: cifar10 (the archive's URL and md5), epsilon (a base URL holding
both of its files, and "<train md5>,<test md5>"; see tasks.data.epsilon.epsilon_sources) and
wikitext2 (the archive's URL and md5, by default the original archive's; its published token
counts are always checked).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tasks.data.breast_cancer import build_breast_cancer
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
from tasks.data.epsilon import (
    EPSILON_BASE_URL,
    EPSILON_FEATURES,
    EPSILON_TEST_ROWS,
    EPSILON_TRAIN_ROWS,
    build_epsilon,
    build_synthetic_epsilon,
    epsilon_sources,
)
from tasks.data.store import load_dataset, prepare_dataset, read_manifest
from tasks.data.wikitext2 import (
    WIKITEXT2_FIGURES,
    WIKITEXT2_URL,
    build_demo_text,
    build_synthetic_wikitext2,
    build_wikitext2,
)
from tasks.errors import UserError

NUM_CLASSES = 10
SYNTHETIC_TRAIN_PER_BATCH = 100
SYNTHETIC_TEST_SIZE = 200
SYNTHETIC_SEED = 0
DIGITS_IMAGE_SIZE = 16
DIGITS_SEED = 0
TABULAR_NUM_CLASSES = 2
SYNTHETIC_EPSILON_TRAIN_SIZE = 1200
SYNTHETIC_EPSILON_VAL_SIZE = 400
SYNTHETIC_EPSILON_FEATURES = 200
SYNTHETIC_EPSILON_SEED = 0
BREAST_CANCER_SEED = 0
SYNTHETIC_WIKITEXT2_SEED = 0
DEMO_TEXT_SEED = 0

DatasetBuilder = Callable[..., tuple[dict[str, np.ndarray], dict]]

# Image datasets, built in memory (the tabular ones are in TABULAR_DATASETS below).
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


class TabularDataset(NamedTuple):
    """A tabular dataset: its version, its store builder, and whether that builder streams to disk."""

    version: str
    build: Callable[..., Any]
    streaming: bool


TABULAR_DATASETS: dict[str, TabularDataset] = {
    # MLBench task 2a's dataset: 400k x 2000, converted by streaming (tasks.data.store.NpyWriter).
    "epsilon": TabularDataset("v1", build_epsilon, streaming=True),
    "synthetic-epsilon": TabularDataset(
        "v1",
        partial(
            build_synthetic_epsilon,
            rows=SYNTHETIC_EPSILON_TRAIN_SIZE,
            test_rows=SYNTHETIC_EPSILON_VAL_SIZE,
            features=SYNTHETIC_EPSILON_FEATURES,
            seed=SYNTHETIC_EPSILON_SEED,
        ),
        streaming=True,
    ),
    "breast-cancer": TabularDataset("v1", partial(build_breast_cancer, seed=BREAST_CANCER_SEED), streaming=False),
}

_TABULAR_DESCRIPTIONS: dict[str, dict[str, Any]] = {
    "epsilon": {
        "source": EPSILON_BASE_URL,
        "train_size": EPSILON_TRAIN_ROWS,
        "val_size": EPSILON_TEST_ROWS,  # the official test file
        "num_features": EPSILON_FEATURES,
    },
    "synthetic-epsilon": {
        "source": "synthetic epsilon-format LIBSVM files (tasks.data.epsilon.write_libsvm)",
        "train_size": SYNTHETIC_EPSILON_TRAIN_SIZE,
        "val_size": SYNTHETIC_EPSILON_VAL_SIZE,
        "num_features": SYNTHETIC_EPSILON_FEATURES,
    },
    "breast-cancer": {
        "source": "sklearn.datasets.load_breast_cancer",
        "train_size": 455,  # the 80/20 stratified split of its 569 samples
        "val_size": 114,
        "num_features": 30,
    },
}

# Token streams in memory (a few MB for WikiText-2): (version, builder).
TEXT_DATASETS: dict[str, tuple[str, DatasetBuilder]] = {
    "wikitext2": ("v1", build_wikitext2),
    "synthetic-wikitext2": ("v1", partial(build_synthetic_wikitext2, seed=SYNTHETIC_WIKITEXT2_SEED)),
    # Real English text that ships with every CPython: the language reference (pydoc_data.topics).
    # Its exact contents follow the Python version, which the manifest records.
    "python-reference-text": ("v1", partial(build_demo_text, seed=DEMO_TEXT_SEED)),
}

_TEXT_DESCRIPTIONS: dict[str, dict[str, Any]] = {
    "wikitext2": {
        "source": WIKITEXT2_URL,
        "train_size": WIKITEXT2_FIGURES["train"],
        "val_size": WIKITEXT2_FIGURES["valid"],
        "test_size": WIKITEXT2_FIGURES["test"],
        "vocab_size": WIKITEXT2_FIGURES["vocab"],
    },
    "synthetic-wikitext2": {
        "source": "synthetic WikiText-2-format archive (tasks.data.wikitext2.write_wikitext_archive)",
    },
    "python-reference-text": {
        "source": "pydoc_data.topics (the Python language reference bundled with CPython)",
    },
}

# The one dataset of each kind that downloads, and so the only one a data.url / data.md5 override fits.
_OVERRIDABLE = {"image": "cifar10", "tabular": "epsilon", "text": "wikitext2"}


def _lookup(name: str) -> tuple[str, Callable[..., Any], bool]:
    """(version, builder, streaming) of a named dataset."""
    if name in DATASETS:
        version, build = DATASETS[name]
        return version, build, False
    if name in TABULAR_DATASETS:
        return TABULAR_DATASETS[name]
    if name in TEXT_DATASETS:
        version, build = TEXT_DATASETS[name]
        return version, build, False
    raise UserError(
        f"unknown dataset '{name}'; valid names: {', '.join(sorted(DATASETS))} (image), "
        f"{', '.join(sorted(TABULAR_DATASETS))} (tabular), {', '.join(sorted(TEXT_DATASETS))} (text)"
    )


def _kind(name: str) -> str:
    if name in TABULAR_DATASETS:
        return "tabular"
    return "text" if name in TEXT_DATASETS else "image"


def names() -> list[str]:
    return sorted(DATASETS) + sorted(TABULAR_DATASETS) + sorted(TEXT_DATASETS)


def kind(name: str) -> str:
    """'image', 'tabular' or 'text': what a task's workload must be able to train on."""
    _lookup(name)
    return _kind(name)


def prepare(
    name: str,
    root: Path,
    *,
    url: str | None = None,
    md5: str | None = None,
    log: Log = log_to_stderr,
    full_verify: bool = False,
) -> Path:
    """Prepare a named dataset under root (once, safely across processes) and return its folder.

    url/md5 override the CIFAR-10 mirror; a mirror without its own md5 must serve the official file.
    For epsilon, url is a base URL (or folder) holding epsilon_normalized.bz2 and
    epsilon_normalized.t.bz2, and md5 is "<train md5>,<test md5>"; without md5 the files must match
    the pinned official sha256s.
    """
    version, build, streaming = _lookup(name)
    if name == "cifar10":
        build = partial(build, url=url or CIFAR10_URL, md5=md5 or CIFAR10_MD5)
    elif name == "epsilon":
        build = partial(build, **epsilon_sources(url, md5))
    elif name == "wikitext2":
        build = partial(build, url=url or WIKITEXT2_URL, md5=md5)
    elif url is not None or md5 is not None:
        raise UserError(
            f"data url/md5 overrides apply only to dataset '{_OVERRIDABLE[_kind(name)]}', not '{name}'; remove them"
        )
    return prepare_dataset(Path(root), name, version, partial(build, log=log), log=log, streaming=streaming,
                           full_verify=full_verify)


def load(name: str, root: Path) -> dict[str, np.ndarray]:
    """The prepared arrays of a named dataset (memory-mapped): train/val images or features, and labels."""
    version, _, _ = _lookup(name)
    return load_dataset(Path(root), name, version)


def metadata(name: str, root: Path) -> dict[str, Any]:
    """What the builder recorded about a prepared dataset (source, checksums, sizes; a text vocabulary)."""
    version, _, _ = _lookup(name)
    return dict(read_manifest(Path(root), name, version).get("metadata") or {})


def vocabulary_size(name: str, root: Path) -> int:
    """A prepared text dataset's vocabulary size (token ids are 0..size-1)."""
    if kind(name) != "text":
        raise UserError(f"dataset '{name}' is {_kind(name)} data; only text datasets have a vocabulary")
    return int(metadata(name, root)["vocab_size"])


def describe(name: str) -> dict[str, Any]:
    """What a dataset is without preparing it: for listings, plans and result records."""
    version, _, _ = _lookup(name)
    if _kind(name) == "text":
        return {"name": name, "version": version, "kind": "text", **_TEXT_DESCRIPTIONS[name]}
    if _kind(name) == "tabular":
        return {
            "name": name,
            "version": version,
            "kind": "tabular",
            "num_classes": TABULAR_NUM_CLASSES,
            **_TABULAR_DESCRIPTIONS[name],
        }
    return {"name": name, "version": version, "num_classes": NUM_CLASSES, **_DESCRIPTIONS[name]}
