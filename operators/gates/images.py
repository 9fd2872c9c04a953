"""The dataset gate for images (MLBench task 1a: CIFAR-10 and its stand-ins), run before any training.

It guards against what would spoil a benchmark silently: images that are not 4-D uint8 of one shape,
labels outside 0..num_classes-1 or a class missing from train, pixels that are NaN or outside [0, 255],
a class far from its balanced share, validation images copied from train, and shard plans that would
give ranks unequal training shards.
"""

from __future__ import annotations

from typing import Any

from operators.gates.frames import (
    INTEGER_DTYPES, array_row, chunked_rows, content_hash, label_column, length, per_sample_frame, real_numbers,
)
from operators.gates.gx import Part, where
from operators.gates.labelled import balance_expectations, count_expectations, labelled_parts, not_copied_from_train

# Class balance: every class's share of the training split must lie within
# [CLASS_SHARE_MIN_FACTOR / num_classes, CLASS_SHARE_MAX_FACTOR / num_classes], i.e. between half and
# twice its share under a perfectly balanced split (5% .. 20% for ten classes).
CLASS_SHARE_MIN_FACTOR = 0.5
CLASS_SHARE_MAX_FACTOR = 2.0
PIXEL_MIN = 0.0
PIXEL_MAX = 255.0
IMAGE_DTYPES = ["uint8"]
LABEL_DTYPES = INTEGER_DTYPES
_STATS_CHUNK = 4096  # images per chunk when summarising pixels (bounds memory on 50k-image memmaps)


def parts(arrays: dict[str, Any], num_classes: int, shard_plans: dict[int, dict[str, list[int]]]) -> list[Part]:
    expectations = {
        "arrays": _array_expectations(),
        "samples": _sample_expectations(num_classes),
        "class_balance": balance_expectations(CLASS_SHARE_MIN_FACTOR / num_classes,
                                              CLASS_SHARE_MAX_FACTOR / num_classes),
    }
    return labelled_parts(arrays, shard_plans, inputs="images", array_row=_array_row, sample_frame=_sample_frame,
                          num_classes=num_classes, expectations=expectations)


def _array_row(name: str, split: str, kind: str, array: Any, split_images: int) -> dict[str, Any]:
    shape = tuple(getattr(array, "shape", ()))
    four_d = kind == "images" and len(shape) == 4
    channels, height, width = shape[1:] if four_d else (None, None, None)
    return array_row(name, split, kind, array, channels=channels, height=height, width=width,
                     split_images=split_images)


def _pixel_stats(images: Any) -> tuple[Any, Any, Any, list[str | None]]:
    """Per-image pixel min, max, mean (float64) and content hash, a chunk of images at a time."""
    import numpy as np

    n = length(images)
    mins, maxs, means = (np.full(n, np.nan) for _ in range(3))
    hashes: list[str | None] = [None] * n
    for start, flat in chunked_rows(images, _STATS_CHUNK):
        stop = start + len(flat)
        if flat.shape[1] and real_numbers(flat):
            with np.errstate(invalid="ignore", over="ignore"):
                mins[start:stop] = flat.min(axis=1)
                maxs[start:stop] = flat.max(axis=1)
                means[start:stop] = flat.mean(axis=1, dtype=np.float64)
        hashes[start:stop] = [content_hash(row) for row in flat]
    return mins, maxs, means, hashes


def _sample_frame(split: str, images: Any, labels: Any) -> Any:
    mins, maxs, means, hashes = _pixel_stats(images)
    statistics = {"pixel_min": mins, "pixel_max": maxs, "pixel_mean": means, "hash": hashes}
    return per_sample_frame(split, label_column(labels), statistics)


def _array_expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    images, labels = where("kind", "images"), where("kind", "labels")
    return [
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=IMAGE_DTYPES, **images),
        gxe.ExpectColumnValuesToBeInSet(column="ndim", value_set=[4], **images),
        *(gxe.ExpectColumnUniqueValueCountToBeBetween(column=c, min_value=1, max_value=1, **images)
          for c in ("channels", "height", "width")),
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=LABEL_DTYPES, **labels),
        gxe.ExpectColumnValuesToBeInSet(column="ndim", value_set=[1], **labels),
        *count_expectations("split_images"),
    ]


def _sample_expectations(num_classes: int) -> list[Any]:
    import great_expectations.expectations as gxe

    stats = ("pixel_min", "pixel_max", "pixel_mean")
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="label"),
        gxe.ExpectColumnValuesToBeBetween(column="label", min_value=0, max_value=num_classes - 1),
        gxe.ExpectColumnDistinctValuesToContainSet(
            column="label", value_set=list(range(num_classes)), **where("split", "train")
        ),
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in stats),
        *(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=PIXEL_MIN, max_value=PIXEL_MAX) for c in stats),
        not_copied_from_train(),
    ]
