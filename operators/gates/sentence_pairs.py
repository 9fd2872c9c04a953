"""The dataset gate for sentence pairs (MLBench tasks 4a and 4b: WMT En->De and its stand-ins).

It guards against token arrays that are not 1-D integer ids or hold an id outside [0, vocabulary);
offsets that do not cut their tokens into sentences (not starting at 0, decreasing, not ending at the
last token); a split whose sources and targets differ in count; empty sentences; and shard plans that
leave a rank without training sentences or decode a validation sentence twice or never.
"""

from __future__ import annotations

from typing import Any

from operators.gates.frames import INTEGER_DTYPES, SPLITS, dtype_name, plan_expectations, real_numbers, shard_frame
from operators.gates.gx import Part, where

SIDES = ("source", "target")


def parts(arrays: dict[str, Any], vocabulary_size: int, shard_plans: dict[int, dict[str, list[int]]]) -> list[Part]:
    import pandas as pd

    rows = [_side_row(arrays, split, prefix, side) for split, prefix in SPLITS for side in SIDES]
    frame = pd.DataFrame(rows, index=pd.Index([r["name"] for r in rows], dtype=object))
    frame = frame.astype({c: "float64" for c in ("min_token", "max_token", "sentences", "pair_sentences",
                                                  "min_length", "first_offset", "last_offset", "tokens")})
    split_sizes = {split: _sentences(arrays.get(f"{prefix}_source_offsets")) or 0 for split, prefix in SPLITS}
    return [
        ("arrays", frame, _array_expectations(vocabulary_size)),
        ("shard_plans", shard_frame(shard_plans, split_sizes), _plan_expectations()),
    ]


def _sentences(offsets: Any) -> int | None:
    return len(offsets) - 1 if real_numbers(offsets) and getattr(offsets, "ndim", 0) == 1 else None


def _side_row(arrays: dict[str, Any], split: str, prefix: str, side: str) -> dict[str, Any]:
    """One side of a split: its tokens' dtype, shape and id range; its offsets' ends, order and counts."""
    import numpy as np

    tokens, offsets = arrays.get(f"{prefix}_{side}"), arrays.get(f"{prefix}_{side}_offsets")
    other = arrays.get(f"{prefix}_{'target' if side == 'source' else 'source'}_offsets")
    row: dict[str, Any] = {
        "name": f"{prefix}_{side}", "split": split, "dtype": dtype_name(tokens),
        "ndim": getattr(tokens, "ndim", None), "tokens": getattr(tokens, "size", None),
        "min_token": None, "max_token": None, "sentences": _sentences(offsets), "pair_sentences": _sentences(other),
        "min_length": None, "first_offset": None, "last_offset": None, "offsets_sorted": None,
    }
    if real_numbers(tokens) and tokens.size:
        row["min_token"], row["max_token"] = tokens.min().item(), tokens.max().item()
    if row["sentences"]:
        lengths = np.diff(np.asarray(offsets, dtype=np.int64))
        row.update(min_length=int(lengths.min()), first_offset=int(offsets[0]), last_offset=int(offsets[-1]),
                   offsets_sorted=bool((lengths >= 0).all()))
    return row


def _array_expectations(vocabulary_size: int) -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=INTEGER_DTYPES),
        gxe.ExpectColumnValuesToBeInSet(column="ndim", value_set=[1]),
        *(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=vocabulary_size - 1)
          for c in ("min_token", "max_token")),
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("min_token", "sentences", "offsets_sorted")),
        gxe.ExpectColumnValuesToBeBetween(column="sentences", min_value=1),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="sentences", column_B="pair_sentences"),
        gxe.ExpectColumnValuesToBeBetween(column="min_length", min_value=1),  # no empty sentence
        gxe.ExpectColumnValuesToBeInSet(column="first_offset", value_set=[0]),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="last_offset", column_B="tokens"),
        gxe.ExpectColumnValuesToBeInSet(column="offsets_sorted", value_set=[True]),
    ]


def _plan_expectations() -> list[Any]:
    """Every rank trains on some sentences; the validation shards decode every sentence exactly once."""
    import great_expectations.expectations as gxe

    return [
        *plan_expectations(equal_sizes_in=()),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="total", column_B="split_size", **where("split", "validation")),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="split_size", column_B="total", or_equal=True,
                                                    **where("split", "train")),
    ]
