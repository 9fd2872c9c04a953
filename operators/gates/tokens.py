"""The dataset gate for token streams (MLBench task 3a, language modelling: WikiText-2 and its stand-ins).

It guards against streams that are not 1-D integer token ids, empty, or with an id outside
[0, vocabulary_size); validation or test streams that copy train's head; and column plans that would
give ranks unequal training blocks or shard the validation stream (every rank evaluates all of it).
"""

from __future__ import annotations

from typing import Any

from operators.gates.frames import (
    INTEGER_DTYPES, SPLITS, dtype_name, length, plan_expectations, real_numbers, shard_frame,
)
from operators.gates.gx import Part, where

TOKEN_DTYPES = INTEGER_DTYPES
# Validation (and test) must not be a copy of train: their first TOKEN_HEAD tokens (or as many as both
# streams have) must not equal train's. WikiText-2's splits are different articles, so they differ
# within a few tokens.
TOKEN_HEAD = 10_000
TOKEN_SPLITS = (("train", "train"), ("validation", "val"), ("test", "test"))
_TOKEN_CHUNK = 2**22  # tokens per chunk when taking a stream's min/max (16 MiB of int32)


def parts(arrays: dict[str, Any], vocabulary_size: int, shard_plans: dict[int, dict[str, list[int]]]) -> list[Part]:
    import pandas as pd

    train = arrays.get("train_tokens")
    rows = []
    for split, prefix in TOKEN_SPLITS:
        key = f"{prefix}_tokens"
        if split == "test" and key not in arrays:
            continue  # test is optional; train and validation are reported even when missing
        rows.append(_stream_row(key, split, arrays.get(key), None if split == "train" else train))
    frame = pd.DataFrame(rows, index=pd.Index([r["name"] for r in rows], dtype=object))
    frame = frame.astype({"min_token": "float64", "max_token": "float64"})
    split_sizes = {split: length(arrays.get(f"{prefix}_tokens")) for split, prefix in SPLITS}
    return [
        ("arrays", frame, _stream_expectations(vocabulary_size)),
        ("shard_plans", shard_frame(shard_plans, split_sizes), _plan_expectations()),
    ]


def _stream_row(name: str, split: str, tokens: Any, train: Any) -> dict[str, Any]:
    """One stream's summary: dtype, shape, smallest/largest id, and whether its head copies train's."""
    import numpy as np

    shape = tuple(getattr(tokens, "shape", ()))
    low, high = _id_range(tokens) if real_numbers(tokens) else (None, None)
    copy_of = None
    if real_numbers(tokens) and len(shape) == 1 and real_numbers(train) and train.ndim == 1:
        k = min(TOKEN_HEAD, len(train), len(tokens))
        if k and np.array_equal(np.asarray(train[:k]), np.asarray(tokens[:k])):
            copy_of = f"train_tokens[:{k}]"
    return {
        "name": name,
        "split": split,
        "dtype": dtype_name(tokens),
        "ndim": len(shape) if tokens is not None else None,
        "count": (int(np.prod(shape, dtype=np.int64)) if shape else 0) if tokens is not None else None,
        "min_token": low,
        "max_token": high,
        "copy_of": copy_of,
    }


def _id_range(tokens: Any) -> tuple[Any, Any]:
    """The smallest and largest id, a chunk at a time; (None, None) for an empty stream, NaN for float NaNs."""
    import numpy as np

    if not tokens.size:
        return None, None
    flat = tokens.reshape(-1)  # a view for the contiguous (memory-mapped) streams catalog.load returns
    lows, highs = [], []
    for start in range(0, len(flat), _TOKEN_CHUNK):
        chunk = flat[start : start + _TOKEN_CHUNK]
        lows.append(chunk.min())
        highs.append(chunk.max())
    return np.min(lows).item(), np.max(highs).item()


def _stream_expectations(vocabulary_size: int) -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=TOKEN_DTYPES),
        gxe.ExpectColumnValuesToBeInSet(column="ndim", value_set=[1]),
        gxe.ExpectColumnValuesToNotBeNull(column="count"),
        gxe.ExpectColumnValuesToBeBetween(column="count", min_value=1),
        *(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=vocabulary_size - 1)
          for c in ("min_token", "max_token")),
        gxe.ExpectColumnValuesToBeNull(column="copy_of"),
    ]


def _plan_expectations() -> list[Any]:
    """A language model's plan: equal blocks of training columns; validation replicated, not sharded."""
    import great_expectations.expectations as gxe

    train, validation = where("split", "train"), where("split", "validation")
    return [
        *plan_expectations(equal_sizes_in=("train", "validation")),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="split_size", column_B="total", or_equal=True, **train),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="split_size", column_B="max_size", or_equal=True,
                                                    **validation),
        # whole: all of the stream but the remainder of its last row of columns (far more than half of it)
        gxe.ExpectColumnValuesToBeBetween(column="min_share", min_value=0.5, strict_min=True, **validation),
    ]
