"""The results gate for task 0's result.json (rank 0's all-reduce sweep), run after the sweep.

It guards the figures the sweep reports: latencies finite, positive and ordered (p10 <= median <= p90);
bytes, algbw and busbw that agree with the sizes and the median latency; every configured size of every
configured dtype measured, in order; the world size as planned; and every rank reporting as many
measurements as rank 0, with no wrong sum. A failed sweep is judged on what it measured.
"""

from __future__ import annotations

from typing import Any

from operators.gates.bundle import rank_expectations
from operators.gates.frames import number
from operators.gates.gx import Part, where
from tasks.runtime.results import SweepResult

SCHEMA_FILE = "allreduce_result.schema.json"
SWEEP_TOLERANCE = 1e-6  # relative: algbw and busbw are recomputed from the latency and must agree
_LATENCIES = ("latency_p10_s", "latency_median_s", "latency_p90_s")
_NUMBERS = (*_LATENCIES, "algbw_relative_error", "busbw_relative_error")


def parts(result: SweepResult, expected_world_size: int) -> list[Part]:
    return [
        ("measurements", _measurements_frame(result), _measurement_expectations(result)),
        ("mlbench_measurements", *_mlbench_part(result)),
        ("run", *_run_part(result, expected_world_size)),
        ("ranks", *_ranks_part(result, expected_world_size)),
    ]


def _relative_error(value: float | None, expected: float | None, scale: float | None = None) -> float | None:
    """|value - expected| / scale (default: expected); None when either is missing or the scale is not > 0."""
    scale = expected if scale is None else scale
    if value is None or expected is None or scale is None or scale <= 0:
        return None
    return abs(value - expected) / scale


def _measurements_frame(result: SweepResult) -> Any:
    """One row per (dtype, size): the latencies, and how far bytes, algbw and busbw are from recomputed."""
    import pandas as pd

    from tasks.communication import DTYPE_BYTES, bus_factor

    busbw_factor = bus_factor(result.world_size)
    rows = []
    for row in result.measurements:
        median = number(row.latency_median_s)
        algbw = number(row.algbw_gbps)
        recomputed_algbw = row.bytes / median / 1e9 if median else None
        rows.append({
            "dtype": row.dtype,
            "elements": row.elements,
            "bytes": row.bytes,
            "expected_bytes": row.elements * DTYPE_BYTES[row.dtype],
            "latency_p10_s": number(row.latency_p10_s),
            "latency_median_s": median,
            "latency_p90_s": number(row.latency_p90_s),
            "algbw_relative_error": _relative_error(algbw, recomputed_algbw),
            # relative to algbw, not to busbw itself: one rank's busbw is 0
            "busbw_relative_error": _relative_error(number(row.busbw_gbps),
                                                    None if algbw is None else algbw * busbw_factor, scale=algbw),
        })
    frame = pd.DataFrame(rows, columns=["dtype", "elements", "bytes", "expected_bytes", *_NUMBERS])
    frame = frame.astype({"elements": "int64", "bytes": "int64", "expected_bytes": "int64",
                          **{c: "float64" for c in _NUMBERS}})
    frame.index = pd.Index([f"{r['dtype']} {r['elements']}" for r in rows], dtype=object)
    return frame


def _measurement_expectations(result: SweepResult) -> list[Any]:
    import great_expectations.expectations as gxe

    from tasks.communication import CommunicationConfig

    config = CommunicationConfig.from_dict(result.config)
    expectations: list[Any] = []
    for column in _LATENCIES:
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(column=column),
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True),
        ]
    expectations += [
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="latency_median_s", column_B="latency_p10_s",
                                                    or_equal=True),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="latency_p90_s", column_B="latency_median_s",
                                                    or_equal=True),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="bytes", column_B="expected_bytes"),
        gxe.ExpectColumnValuesToBeBetween(column="algbw_relative_error", min_value=0, max_value=SWEEP_TOLERANCE),
        gxe.ExpectColumnValuesToBeBetween(column="busbw_relative_error", min_value=0, max_value=SWEEP_TOLERANCE),
        gxe.ExpectColumnValuesToNotBeNull(column="busbw_relative_error"),
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=list(config.dtypes)),
    ]
    for dtype in config.dtypes:
        expectations.append(gxe.ExpectColumnValuesToBeIncreasing(column="elements", strictly=True,
                                                                 **where("dtype", dtype)))
    if result.completed:  # a failed sweep reports what it measured, maybe nothing
        expectations.append(gxe.ExpectTableRowCountToEqual(value=len(config.sizes) * len(config.dtypes)))
        for dtype in config.dtypes:
            expectations.append(gxe.ExpectColumnDistinctValuesToEqualSet(
                column="elements", value_set=list(config.sizes), **where("dtype", dtype)))
    return expectations


def _mlbench_part(result: SweepResult) -> tuple[Any, list[Any]]:
    """MLBench's figures: a finite positive mean per size; a completed sweep has every one of MLBench's
    sizes (duplicates included) per dtype when the pass was asked for."""
    import great_expectations.expectations as gxe
    import pandas as pd

    from tasks.communication import CommunicationConfig

    config = CommunicationConfig.from_dict(result.config)
    rows = [{"dtype": m.dtype, "elements": m.elements, "calls": m.calls, "mean_latency_s": number(m.mean_latency_s)}
            for m in result.mlbench_measurements]
    frame = pd.DataFrame(rows, columns=["dtype", "elements", "calls", "mean_latency_s"])
    frame = frame.astype({"elements": "int64", "calls": "int64", "mean_latency_s": "float64"})
    expectations = [
        gxe.ExpectColumnValuesToNotBeNull(column="mean_latency_s"),
        gxe.ExpectColumnValuesToBeBetween(column="mean_latency_s", min_value=0, strict_min=True),
        gxe.ExpectColumnValuesToBeBetween(column="calls", min_value=config.mlbench_calls,
                                          max_value=config.mlbench_calls),
    ]
    if result.completed:
        expected = len(config.mlbench_sizes) * len(config.dtypes) if config.mlbench_calls else 0
        expectations.append(gxe.ExpectTableRowCountToEqual(value=expected))
    return frame, expectations


def _run_part(result: SweepResult, expected_world_size: int) -> tuple[Any, list[Any]]:
    import great_expectations.expectations as gxe
    import pandas as pd

    from tasks.communication import CommunicationConfig

    frame = pd.DataFrame(
        {"world_size": result.world_size, "expected_world_size": expected_world_size,
         "config_world_size": CommunicationConfig.from_dict(result.config).world_size},
        index=pd.Index(["run"], dtype=object),
    )
    return frame, [
        gxe.ExpectColumnPairValuesToBeEqual(column_A="world_size", column_B="expected_world_size"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="world_size", column_B="config_world_size"),
    ]


def _ranks_part(result: SweepResult, expected_world_size: int) -> tuple[Any, list[Any]]:
    import great_expectations.expectations as gxe
    import pandas as pd

    rows = [{"rank": r.rank, "measurements": r.measurements, "wrong_elements": r.wrong_elements}
            for r in result.ranks]
    frame = pd.DataFrame(rows, columns=["rank", "measurements", "wrong_elements"])
    frame.index = pd.Index([f"rank {r}" for r in frame["rank"]], dtype=object)
    no_wrong_sum = gxe.ExpectColumnValuesToBeInSet(column="wrong_elements", value_set=[0])
    if not result.completed:  # ranks report only once everyone has measured
        return frame, [no_wrong_sum]
    measured = len(result.measurements)
    return frame, [
        *rank_expectations(expected_world_size),
        gxe.ExpectColumnValuesToBeBetween(column="measurements", min_value=measured, max_value=measured),
        no_wrong_sum,
    ]
