"""The named datasets, one `DatasetEntry` each, and the only entry points the rest of the runtime
uses: prepare, load, describe.

A dataset's version names exactly what its builder produces (source and parameters are pinned
here), so a prepared copy under any data root can be reused safely by every later run.

Four kinds (what a workload trains on, tasks.workloads): `image` (train/val images N x 3 x H x W
uint8, int64 labels), `tabular` (train/val features N x D float32, float32 0/1 labels, for MLBench
task 2a), `text` (train/val/test int32 token streams and their vocabulary, for task 3a) and
`translation` (English→German sentence pairs as int32 subword ids with int64 offsets, the shared BPE
vocabulary and the raw validation references, for tasks 4a and 4b; see tasks.data.wmt). A
dataset that downloads accepts a data.url / data.md5 override (`with_source`): cifar10 (the
archive's URL and md5), epsilon (a base URL holding both of its files, and "<train md5>,<test
md5>"; see tasks.data.epsilon.epsilon_sources) and wikitext2 (the archive's URL and md5, by
default the original archive's; its published token counts are always checked). The WMT datasets
read four archives each, every one pinned by its published checksum, and take no override.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

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
from tasks.data.number_phrases import DEMO_TRAIN_PAIRS, DEMO_VAL_PAIRS, build_number_phrases
from tasks.data.store import load_dataset, prepare_dataset, read_manifest
from tasks.data.wikitext2 import (
    WIKITEXT2_FIGURES,
    WIKITEXT2_URL,
    build_demo_text,
    build_synthetic_wikitext2,
    build_wikitext2,
)
from tasks.data.wmt import (
    CORPORA,
    SYNTHETIC_TRAIN_PAIRS,
    SYNTHETIC_VAL_PAIRS,
    build_synthetic_wmt,
    build_wmt,
)
from tasks.data.wmt_sources import NEWSTEST2014_SEGMENTS
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
SYNTHETIC_WMT_SEED = 0
NUMBER_PHRASES_SEED = 0

Builder = Callable[..., Any]


@dataclass(frozen=True)
class DatasetEntry:
    """One named dataset: its kind, the version of what its builder writes, and what it is."""

    name: str
    kind: str  # "image", "tabular", "text" or "translation"
    version: str
    build: Builder  # (staging dir or nothing, log=...) -> arrays and metadata (tasks.data.store)
    description: dict[str, Any] = field(default_factory=dict)  # source and sizes, without preparing it
    streaming: bool = False  # the builder writes its arrays to disk itself (bounded memory)
    # (url, md5) -> the builder's source arguments; None: the dataset ships with a package or is generated
    with_source: Callable[[str | None, str | None], dict[str, Any]] | None = None


def _cifar10_source(url: str | None, md5: str | None) -> dict[str, Any]:
    return {"url": url or CIFAR10_URL, "md5": md5 or CIFAR10_MD5}


def _wikitext2_source(url: str | None, md5: str | None) -> dict[str, Any]:
    return {"url": url or WIKITEXT2_URL, "md5": md5}


def _wmt_urls(corpus: str) -> list[str]:
    archives = [text.archive for text in CORPORA[corpus].training] + [CORPORA[corpus].validation.archive]
    return [archive.url for archive in archives]


def _entries(*entries: DatasetEntry) -> dict[str, DatasetEntry]:
    return {entry.name: entry for entry in entries}


DATASETS: dict[str, DatasetEntry] = _entries(
    DatasetEntry("cifar10", "image", "v1", build_cifar10, with_source=_cifar10_source, description={
        "source": CIFAR10_URL, "train_size": 50_000, "val_size": 10_000, "image_shape": list(IMAGE_SHAPE),
        "num_classes": NUM_CLASSES}),
    DatasetEntry("synthetic-cifar10", "image", "v1", partial(
        build_synthetic_cifar10, train_per_batch=SYNTHETIC_TRAIN_PER_BATCH, test_size=SYNTHETIC_TEST_SIZE,
        seed=SYNTHETIC_SEED), description={
        "source": "synthetic CIFAR-10-format archive (tasks.data.cifar10.write_cifar10_archive)",
        "train_size": SYNTHETIC_TRAIN_PER_BATCH * len(TRAIN_BATCHES), "val_size": SYNTHETIC_TEST_SIZE,
        "image_shape": list(IMAGE_SHAPE), "num_classes": NUM_CLASSES}),
    DatasetEntry("digits", "image", "v1-16px", partial(build_digits, image_size=DIGITS_IMAGE_SIZE, seed=DIGITS_SEED),
                 description={
        "source": "sklearn.datasets.load_digits",
        "train_size": 1437, "val_size": 360,  # the 80/20 stratified split of its 1797 images
        "image_shape": [3, DIGITS_IMAGE_SIZE, DIGITS_IMAGE_SIZE], "num_classes": NUM_CLASSES}),
    # MLBench task 2a's dataset: 400k x 2000, converted by streaming (tasks.data.store.NpyWriter).
    DatasetEntry("epsilon", "tabular", "v1", build_epsilon, streaming=True, with_source=epsilon_sources,
                 description={
        "source": EPSILON_BASE_URL, "train_size": EPSILON_TRAIN_ROWS,
        "val_size": EPSILON_TEST_ROWS,  # the official test file
        "num_features": EPSILON_FEATURES, "num_classes": TABULAR_NUM_CLASSES}),
    DatasetEntry("synthetic-epsilon", "tabular", "v1", partial(
        build_synthetic_epsilon, rows=SYNTHETIC_EPSILON_TRAIN_SIZE, test_rows=SYNTHETIC_EPSILON_VAL_SIZE,
        features=SYNTHETIC_EPSILON_FEATURES, seed=SYNTHETIC_EPSILON_SEED), streaming=True, description={
        "source": "synthetic epsilon-format LIBSVM files (tasks.data.epsilon.write_libsvm)",
        "train_size": SYNTHETIC_EPSILON_TRAIN_SIZE, "val_size": SYNTHETIC_EPSILON_VAL_SIZE,
        "num_features": SYNTHETIC_EPSILON_FEATURES, "num_classes": TABULAR_NUM_CLASSES}),
    DatasetEntry("breast-cancer", "tabular", "v1", partial(build_breast_cancer, seed=BREAST_CANCER_SEED),
                 description={
        "source": "sklearn.datasets.load_breast_cancer",
        "train_size": 455, "val_size": 114,  # the 80/20 stratified split of its 569 samples
        "num_features": 30, "num_classes": TABULAR_NUM_CLASSES}),
    DatasetEntry("wikitext2", "text", "v1", build_wikitext2, with_source=_wikitext2_source, description={
        "source": WIKITEXT2_URL, "train_size": WIKITEXT2_FIGURES["train"], "val_size": WIKITEXT2_FIGURES["valid"],
        "test_size": WIKITEXT2_FIGURES["test"], "vocab_size": WIKITEXT2_FIGURES["vocab"]}),
    DatasetEntry("synthetic-wikitext2", "text", "v1", partial(build_synthetic_wikitext2, seed=SYNTHETIC_WIKITEXT2_SEED),
                 description={
        "source": "synthetic WikiText-2-format archive (tasks.data.wikitext2.write_wikitext_archive)"}),
    # Real English text that ships with every CPython: the language reference (pydoc_data.topics).
    # Its exact contents follow the Python version, which the manifest records.
    DatasetEntry("python-reference-text", "text", "v1", partial(build_demo_text, seed=DEMO_TEXT_SEED), description={
        "source": "pydoc_data.topics (the Python language reference bundled with CPython)"}),
    # MLBench task 4a: MLPerf GNMT's WMT16 English→German with 32,000 shared BPE merges.
    DatasetEntry("wmt16-en-de", "translation", "v1", partial(build_wmt, corpus="wmt16"), description={
        "source": "WMT16 English-German: Europarl v7, CommonCrawl, News Commentary v11 (about 4.5M pairs "
                  "before cleaning); validation newstest2014, pairs of at most 150 ids with BOS/EOS",
        "urls": _wmt_urls("wmt16"), "validation_sentences": NEWSTEST2014_SEGMENTS, "bpe_merges": 32_000}),
    # MLBench task 4b: a shared BPE vocabulary of the size of MLPerf's subtoken vocabulary (33,708
    # entries, padded to 33,712) stands in for it: that vocabulary file is not downloadable here.
    DatasetEntry("wmt17-en-de", "translation", "v1", partial(build_wmt, corpus="wmt17"), description={
        "source": "WMT17 English-German: News Commentary v12, CommonCrawl, Europarl v7 (about 4.6M pairs "
                  "before cleaning); validation newstest2014, pairs of at most 80 ids with EOS",
        "urls": _wmt_urls("wmt17"), "validation_sentences": NEWSTEST2014_SEGMENTS,
        "bpe_target_vocabulary": 33_708}),
    DatasetEntry("synthetic-wmt16-en-de", "translation", "v1", partial(
        build_synthetic_wmt, corpus="wmt16", seed=SYNTHETIC_WMT_SEED), description={
        "source": "synthetic WMT16-format archives (tasks.data.wmt.build_synthetic_wmt)",
        "train_size": SYNTHETIC_TRAIN_PAIRS, "val_size": SYNTHETIC_VAL_PAIRS}),
    DatasetEntry("synthetic-wmt17-en-de", "translation", "v1", partial(
        build_synthetic_wmt, corpus="wmt17", seed=SYNTHETIC_WMT_SEED), description={
        "source": "synthetic WMT17-format archives (tasks.data.wmt.build_synthetic_wmt)",
        "train_size": SYNTHETIC_TRAIN_PAIRS, "val_size": SYNTHETIC_VAL_PAIRS}),
    # Real English and German number phrases rendered by num2words; the manifest records its version.
    DatasetEntry("number-phrases-en-de", "translation", "v1", partial(build_number_phrases, seed=NUMBER_PHRASES_SEED),
                 description={
        "source": "num2words (generated English/German number phrases, tasks.data.number_phrases)",
        "train_size": DEMO_TRAIN_PAIRS, "val_size": DEMO_VAL_PAIRS}),
)
KINDS = ("image", "tabular", "text", "translation")
VOCABULARY_KINDS = ("text", "translation")  # kinds whose token ids index a vocabulary recorded with the data


def entry(name: str) -> DatasetEntry:
    try:
        return DATASETS[name]
    except KeyError:
        listed = ", ".join(f"{', '.join(names(kind))} ({kind})" for kind in KINDS)
        raise UserError(f"unknown dataset '{name}'; valid names: {listed}") from None


def names(kind: str | None = None) -> list[str]:
    """Dataset names (of one kind), sorted within each kind."""
    kinds = KINDS if kind is None else (kind,)
    return [name for k in kinds for name in sorted(n for n, e in DATASETS.items() if e.kind == k)]


def kind(name: str) -> str:
    """'image', 'tabular', 'text' or 'translation': what a task's workload must be able to train on."""
    return entry(name).kind


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

    url/md5 point a dataset that downloads at a mirror (see the module docstring for each one's form);
    a mirror without its own md5 must serve the official file.
    """
    dataset = entry(name)
    build = dataset.build
    if dataset.with_source is not None:
        build = partial(build, **dataset.with_source(url, md5))
    elif url is not None or md5 is not None:
        downloading = [n for n in names(dataset.kind) if DATASETS[n].with_source is not None]
        if not downloading:  # the translation datasets: several archives, each pinned
            raise UserError(f"dataset '{name}' takes no data url/md5 override (its sources are pinned); remove them")
        raise UserError(f"data url/md5 overrides apply only to dataset '{', '.join(downloading)}', not '{name}'; "
                        "remove them")
    return prepare_dataset(Path(root), name, dataset.version, partial(build, log=log), log=log,
                           streaming=dataset.streaming, full_verify=full_verify)


def prepare_for(data: Any, root: Path, *, log: Log = log_to_stderr, full_verify: bool = False) -> Path:
    """Prepare the dataset a resolved config's `data` spec names, with its mirror if it has one."""
    return prepare(data.dataset, root, url=data.url, md5=data.md5, log=log, full_verify=full_verify)


def load(name: str, root: Path) -> dict[str, np.ndarray]:
    """The prepared arrays of a named dataset (memory-mapped): train/val images or features, and labels."""
    return load_dataset(Path(root), name, entry(name).version)


def metadata(name: str, root: Path) -> dict[str, Any]:
    """What the builder recorded about a prepared dataset (source, checksums, sizes; a text vocabulary)."""
    return dict(read_manifest(Path(root), name, entry(name).version).get("metadata") or {})


def vocabulary_size(name: str, root: Path) -> int:
    """A prepared text or translation dataset's vocabulary size (token ids are 0..size-1)."""
    if kind(name) not in VOCABULARY_KINDS:
        raise UserError(f"dataset '{name}' is {kind(name)} data; only {' and '.join(VOCABULARY_KINDS)} datasets "
                        "have a vocabulary")
    return int(metadata(name, root)["vocab_size"])


def describe(name: str) -> dict[str, Any]:
    """What a dataset is without preparing it: for listings, plans and result records."""
    dataset = entry(name)
    return {"name": name, "version": dataset.version, "kind": dataset.kind, **dataset.description}
