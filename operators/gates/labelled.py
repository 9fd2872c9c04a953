"""What the image and tabular gates share: a dataset of ``<split>_<inputs>`` arrays with ``<split>_labels``,
checked in four parts (arrays, samples, class_balance, shard_plans) whose frames are built here."""

from __future__ import annotations

from typing import Any, Callable

from operators.gates.frames import SPLITS, length, plan_expectations, shard_frame
from operators.gates.gx import Part, where

# Train/validation disjointness is checked on a content hash (BLAKE2b-128 of each sample's bytes): a
# validation sample whose bytes equal a training sample's is a leak. Measured on the real data: the
# scikit-learn digits split (16 px, seed 0) has 0 of its 360 validation images byte-identical to any of
# its 1437 training images (there are no exact duplicates in the 1797 digits at all), and the
# synthetic-cifar10 look-alike has 0 of 200. Real CIFAR-10's known test/train "near-duplicates" are
# not byte-identical, so a hash does not see them. The gate tolerates up to 1% of validation samples
# with a training twin (mostly=0.99): the real datasets pass with room, while copying 10% of validation
# from train (or any leak above 1%) fails.
VALIDATION_NOT_IN_TRAIN_MOSTLY = 0.99

ArrayRow = Callable[[str, str, str, Any, int], dict[str, Any]]  # (name, split, kind, array, split size) -> row
SampleFrame = Callable[[str, Any, Any], Any]  # (split, inputs, labels) -> one row per sample, with a "hash"


def labelled_parts(
    arrays: dict[str, Any],
    shard_plans: dict[int, dict[str, list[int]]],
    *,
    inputs: str,
    array_row: ArrayRow,
    sample_frame: SampleFrame,
    num_classes: int,
    expectations: dict[str, list[Any]],
) -> list[Part]:
    """The four parts; ``expectations`` holds the gate's own for arrays, samples and class_balance."""
    import pandas as pd

    split_sizes: dict[str, int] = {}
    array_rows, sample_frames = [], []
    train_hashes: dict[str, int] = {}
    for split, prefix in SPLITS:
        values, labels = arrays.get(f"{prefix}_{inputs}"), arrays.get(f"{prefix}_labels")
        split_sizes[split] = length(values)
        for kind, array in ((inputs, values), ("labels", labels)):
            array_rows.append(array_row(f"{prefix}_{kind}", split, kind, array, split_sizes[split]))
        frame = sample_frame(split, values, labels)
        _link_duplicates(split, frame, train_hashes)
        sample_frames.append(frame)
    array_frame = pd.DataFrame(array_rows, index=pd.Index([r["name"] for r in array_rows], dtype=object))
    samples = pd.concat(sample_frames)
    return [
        ("arrays", array_frame, expectations["arrays"]),
        ("samples", samples, expectations["samples"]),
        ("class_balance", _class_balance_frame(samples, num_classes), expectations["class_balance"]),
        ("shard_plans", shard_frame(shard_plans, split_sizes), _shard_expectations()),
    ]


def _link_duplicates(split: str, frame: Any, train_hashes: dict[str, int]) -> None:
    """Train: remember each hash's first row. Validation: duplicate_of names the training twin, if any."""
    if split == "train":
        for position, digest in enumerate(frame["hash"]):
            if digest is not None:
                train_hashes.setdefault(digest, position)
        frame["duplicate_of"] = None
    else:
        frame["duplicate_of"] = [
            f"train[{train_hashes[d]}]" if d is not None and d in train_hashes else None for d in frame["hash"]
        ]


def _class_balance_frame(samples: Any, num_classes: int) -> Any:
    import numpy as np
    import pandas as pd

    labels = samples.loc[samples["split"] == "train", "label"].to_numpy(dtype=np.float64)
    valid = labels[np.isfinite(labels) & (labels == np.round(labels)) & (labels >= 0) & (labels < num_classes)]
    counts = np.bincount(valid.astype(np.int64), minlength=num_classes)[:num_classes]
    total = len(labels)
    shares = counts / total if total else np.full(num_classes, np.nan)
    return pd.DataFrame(
        {"class": np.arange(num_classes), "count": counts, "share": shares},
        index=pd.Index([f"class {k}" for k in range(num_classes)], dtype=object),
    )


def not_copied_from_train() -> Any:
    """At most 1% of validation samples byte-identical to a training sample."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeNull(
        column="duplicate_of", mostly=VALIDATION_NOT_IN_TRAIN_MOSTLY, **where("split", "validation")
    )


def balance_expectations(min_share: float, max_share: float) -> list[Any]:
    """Every class's share of the training split within [min_share, max_share]."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(column="share"),
        gxe.ExpectColumnValuesToBeBetween(column="share", min_value=min_share, max_value=max_share),
    ]


def count_expectations(split_size_column: str) -> list[Any]:
    """Every array present, not empty, and as long as its split's inputs (``split_size_column``)."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(column="count"),
        gxe.ExpectColumnValuesToBeBetween(column="count", min_value=1),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="count", column_B=split_size_column),
    ]


def _shard_expectations() -> list[Any]:
    """A sample-sharded plan: equal training shards, validation shards within one sample of each other."""
    import great_expectations.expectations as gxe

    return [
        *plan_expectations(equal_sizes_in=("train",)),
        gxe.ExpectColumnValuesToBeBetween(column="spread", min_value=0, max_value=1, **where("split", "validation")),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="split_size", column_B="total", or_equal=True),
    ]
