"""The dataset gate for tabular data (MLBench task 2a, logistic regression: epsilon, breast-cancer).

It guards against features that are not 2-D floats of one width, labels that are not binary or a
class missing from train, rows with NaN or inf, a class under 20% of train, validation rows copied
from train, and shard plans that would give ranks unequal training shards. Rows are summarised a
bounded chunk at a time, so a multi-gigabyte memory-mapped matrix is checked in bounded memory.
"""

from __future__ import annotations

import functools
from typing import Any

from operators.gates.frames import (
    INTEGER_DTYPES, array_row, chunked_rows, content_hash, label_column, length, per_sample_frame, real_numbers,
)
from operators.gates.gx import Part, where
from operators.gates.labelled import balance_expectations, count_expectations, labelled_parts, not_copied_from_train

# Binary labels, each class's share of the training split within [0.2, 0.8]. epsilon is balanced (about
# 50/50) and breast-cancer is 357/212 benign/malignant (62.7%/37.3%; the 80/20 split keeps it within a
# point or two), so both pass with room, while a split with one class under 20% (e.g. a badly filtered or
# sorted-then-truncated file) fails.
BINARY_CLASS_SHARE_MIN = 0.2
BINARY_CLASS_SHARE_MAX = 0.8
FEATURE_DTYPES = ["float16", "float32", "float64"]
BINARY_LABEL_DTYPES = ["float16", "float32", "float64", "bool", *INTEGER_DTYPES]
# Rows are summarised (min, max, mean, L2 norm, finite flag, content hash) a chunk of at most this many
# bytes of features at a time: a 400,000 x 2000 float32 memmap (3.2 GB) is read 2048 rows (16 MiB) at a time.
_CHUNK_BYTES = 16 * 2**20


def parts(arrays: dict[str, Any], num_classes: int, shard_plans: dict[int, dict[str, list[int]]]) -> list[Part]:
    expectations = {
        "arrays": _array_expectations(),
        "samples": _row_expectations(),
        "class_balance": balance_expectations(BINARY_CLASS_SHARE_MIN, BINARY_CLASS_SHARE_MAX),
    }
    return labelled_parts(arrays, shard_plans, inputs="features",
                          array_row=functools.partial(_array_row, num_classes=num_classes),
                          sample_frame=_row_frame, num_classes=2, expectations=expectations)


def _array_row(name: str, split: str, kind: str, array: Any, split_rows: int, *, num_classes: int) -> dict[str, Any]:
    shape = tuple(getattr(array, "shape", ()))
    return array_row(name, split, kind, array, split_rows=split_rows,
                     num_features=shape[1] if kind == "features" and len(shape) == 2 else None,
                     num_classes=num_classes if kind == "labels" else None)


def _row_stats(features: Any) -> tuple[Any, Any, Any, Any, list[bool | None], list[str | None]]:
    """Per-row min, max, mean, L2 norm (float64; NaN where not finite), finite flag and content hash.

    Reads at most _CHUNK_BYTES of features per chunk (plus one float64 copy of the chunk).
    """
    import numpy as np

    n = length(features)
    mins, maxs, means, norms = (np.full(n, np.nan) for _ in range(4))
    finite: list[bool | None] = [None] * n
    hashes: list[str | None] = [None] * n
    if n == 0:
        return mins, maxs, means, norms, finite, hashes
    width = int(np.prod(features.shape[1:], dtype=np.int64)) if features.ndim > 1 else 1
    rows_per_chunk = max(1, _CHUNK_BYTES // max(1, width * features.dtype.itemsize))
    for start, chunk in chunked_rows(features, rows_per_chunk):
        stop = start + len(chunk)
        if width and real_numbers(chunk):
            finite[start:stop] = np.isfinite(chunk).all(axis=1).tolist()
            wide = chunk.astype(np.float64)
            with np.errstate(invalid="ignore", over="ignore"):
                mins[start:stop] = wide.min(axis=1)
                maxs[start:stop] = wide.max(axis=1)
                means[start:stop] = wide.mean(axis=1)
                norms[start:stop] = np.sqrt(np.einsum("ij,ij->i", wide, wide))
            del wide
        hashes[start:stop] = [content_hash(row) for row in chunk]
    for values in (mins, maxs, means, norms):
        values[~np.isfinite(values)] = np.nan
    return mins, maxs, means, norms, finite, hashes


def _row_frame(split: str, features: Any, labels: Any) -> Any:
    import numpy as np

    mins, maxs, means, norms, finite, hashes = _row_stats(features)
    statistics = {"feature_min": mins, "feature_max": maxs, "feature_mean": means, "l2_norm": norms,
                  "finite": finite, "hash": hashes}
    return per_sample_frame(split, label_column(labels, bools=True).astype(np.float64), statistics)


def _array_expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    features, labels = where("kind", "features"), where("kind", "labels")
    return [
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=FEATURE_DTYPES, **features),
        gxe.ExpectColumnValuesToBeInSet(column="ndim", value_set=[2], **features),
        gxe.ExpectColumnUniqueValueCountToBeBetween(column="num_features", min_value=1, max_value=1, **features),
        gxe.ExpectColumnValuesToBeBetween(column="num_features", min_value=1, **features),
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=BINARY_LABEL_DTYPES, **labels),
        gxe.ExpectColumnValuesToBeInSet(column="ndim", value_set=[1], **labels),
        gxe.ExpectColumnValuesToBeInSet(column="num_classes", value_set=[2], **labels),
        *count_expectations("split_rows"),
    ]


def _row_expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(column="label"),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
        gxe.ExpectColumnDistinctValuesToContainSet(column="label", value_set=[0, 1], **where("split", "train")),
        gxe.ExpectColumnValuesToBeInSet(column="finite", value_set=[True]),
        not_copied_from_train(),
    ]
