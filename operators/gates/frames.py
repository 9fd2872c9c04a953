"""Frame helpers the gates share: lengths and finite numbers, chunked row walks, per-sample frames, and the
shard-plan frame with what every plan must satisfy."""

from __future__ import annotations

from typing import Any, Iterator

from tasks.runtime.results import finite_number

SPLITS = (("train", "train"), ("validation", "val"))  # (split name, array key prefix)
INTEGER_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


def length(array: Any) -> int:
    shape = getattr(array, "shape", None)
    return int(shape[0]) if shape else 0


# A finite float, or None: NaN/inf (and anything not a number) become null, so not-null catches them.
number = finite_number


def real_numbers(array: Any) -> bool:
    """Whether array holds integers or floats (not complex numbers, bools, strings or objects)."""
    import numpy as np

    dtype = getattr(array, "dtype", None)
    return dtype is not None and np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating)


def dtype_name(array: Any) -> str:
    return str(array.dtype) if array is not None and hasattr(array, "dtype") else "missing"


def array_row(name: str, split: str, kind: str, array: Any, **columns: Any) -> dict[str, Any]:
    """One row of a labelled dataset's arrays part: what every array has, then the gate's own columns."""
    shape = tuple(getattr(array, "shape", ()))
    return {
        "name": name,
        "split": split,
        "kind": kind,
        "dtype": dtype_name(array),
        "ndim": len(shape) if array is not None else None,
        **columns,
        "count": shape[0] if shape else (None if array is None else 0),
    }


def chunked_rows(array: Any, rows_per_chunk: int) -> Iterator[tuple[int, Any]]:
    """(first row, the rows flattened to 2-D and contiguous), a chunk at a time: bounded memory on a memmap."""
    import numpy as np

    for start in range(0, length(array), rows_per_chunk):
        chunk = np.ascontiguousarray(array[start : start + rows_per_chunk])
        yield start, chunk.reshape(len(chunk), -1)


def content_hash(row: Any) -> str:
    """BLAKE2b-128 of a row's bytes: equal rows (a validation sample copied from train) hash alike."""
    import hashlib

    return hashlib.blake2b(row.tobytes(), digest_size=16).hexdigest()


def label_column(labels: Any, *, bools: bool = False) -> Any:
    """A split's labels, or NaN for each when they are not a 1-D array of numbers (the arrays part says why)."""
    import numpy as np

    usable = getattr(labels, "ndim", 0) == 1 and (real_numbers(labels) or (bools and labels.dtype == np.bool_))
    return np.asarray(labels) if usable else np.full(length(labels), np.nan)


def per_sample_frame(split: str, label_values: Any, columns: dict[str, Any]) -> Any:
    """A split's rows, one per sample: its label and statistics, each column padded with nulls to the
    longest, so a split whose labels and samples differ in number shows it row by row."""
    import numpy as np
    import pandas as pd

    n = max(len(label_values), *(len(values) for values in columns.values()))

    def pad(values: Any) -> Any:
        missing = n - len(values)
        if not missing:
            return values
        if isinstance(values, list):
            return values + [None] * missing
        return np.concatenate([np.asarray(values, dtype=np.float64), np.full(missing, np.nan)])

    return pd.DataFrame(
        {"split": split, "label": pad(label_values), **{name: pad(values) for name, values in columns.items()}},
        index=pd.Index([f"{split}[{i}]" for i in range(n)], dtype=object),
    )


def shard_frame(shard_plans: dict[int, dict[str, list[int]]], split_sizes: dict[str, int]) -> Any:
    """One row per (world size, split) of a shard plan: ranks, sizes, their spread and total, the split's size."""
    import pandas as pd

    rows, index = [], []
    for world_size, plan in sorted((shard_plans or {}).items()):
        for split, _ in SPLITS:
            sizes = [int(s) for s in (plan or {}).get(split, [])]
            rows.append(
                {
                    "world_size": int(world_size),
                    "split": split,
                    "ranks": len(sizes),
                    "distinct_sizes": len(set(sizes)),
                    "min_size": min(sizes) if sizes else None,
                    "max_size": max(sizes) if sizes else None,
                    "spread": max(sizes) - min(sizes) if sizes else None,
                    "total": sum(sizes),
                    "split_size": split_sizes[split],
                    "min_share": min(sizes) / split_sizes[split] if sizes and split_sizes[split] else None,
                }
            )
            index.append(f"w{world_size}/{split}")
    columns = [
        "world_size", "split", "ranks", "distinct_sizes", "min_size", "max_size", "spread", "total", "split_size",
        "min_share",
    ]
    return pd.DataFrame(rows, columns=columns, index=pd.Index(index, dtype=object))


def plan_expectations(*, equal_sizes_in: tuple[str, ...]) -> list[Any]:
    """What every shard-plan frame must satisfy: at least one world size, one entry per rank, all entries of
    each split in ``equal_sizes_in`` the same size, and no empty training entry."""
    import great_expectations.expectations as gxe

    from operators.gates.gx import where

    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="ranks", column_B="world_size"),
        *(gxe.ExpectColumnValuesToBeInSet(column="distinct_sizes", value_set=[1], **where("split", split))
          for split in equal_sizes_in),
        gxe.ExpectColumnValuesToBeBetween(column="min_size", min_value=1, **where("split", "train")),
    ]
