"""The report of task 0 (the all-reduce sweep): what its runs log and how its configurations compare.

Task 0 has no target: its rows compare latency and bus bandwidth per world size and dtype, each
size's figures an olympic mean over the repeats that succeeded. A run logs its curves over tensor
size: per dtype, `latency_median_ms_<dtype>`, `latency_p10_ms_<dtype>`, `latency_p90_ms_<dtype>`,
`algbw_gbps_<dtype>` and `busbw_gbps_<dtype>` with step = tensor size in *elements* (the same
steps for every dtype, so fp32 and fp16 share an x axis), and MLBench's own statistic as
`mlbench_mean_latency_ms_<dtype>` (the mean of its calls at MLBench's sizes: not comparable with the
median); the parent run the curves and headline
figures per world size and dtype. `rows` is `communication_rows` and `table` is
`format_communication_table`, under the names every kind module shares (see
`operators.report.dag_run.kind_of`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from operators.report.outcome import (
    ConfigurationOutcome,
    by_configuration,
    configuration_identity,
    configuration_name,
    olympic_mean,
)
from operators.report.points import Point, configuration_counts, millis, now_ms
from operators.report.tables import render_table
from tasks.plots import plot_result, plot_series
from tasks.runtime.results import Measurement, SweepResult, finite_number

__all__ = [
    "sweep_summary",
    "communication_curves",
    "communication_rows",
    "format_communication_table",
    "parent_metrics",
    "parent_plots",
    "plot_communication",
    "child_metrics",
    "child_plots",
    "configuration_row",
]

# Metric key prefix (step = tensor size in elements) -> a measurement's value in that metric's unit.
_SWEEP_METRICS: dict[str, Callable[[Measurement], float]] = {
    "latency_median_ms": lambda m: m.latency_median_s * 1e3,
    "latency_p10_ms": lambda m: m.latency_p10_s * 1e3,
    "latency_p90_ms": lambda m: m.latency_p90_s * 1e3,
    "algbw_gbps": lambda m: m.algbw_gbps,
    "busbw_gbps": lambda m: m.busbw_gbps,
}
_ROW_METRICS = ("small_message_latency_ms", "large_message_latency_ms", "peak_busbw_gbps")
_PARENT_CURVES = ("latency_median_ms", "busbw_gbps")


# ---------------------------------------------------------------------------------------------
# Curves and the comparison
# ---------------------------------------------------------------------------------------------

def sweep_result(outcome: ConfigurationOutcome) -> SweepResult | None:
    """The outcome's result: task 0's bundle holds a SweepResult (None without one)."""
    return outcome.result if isinstance(outcome.result, SweepResult) else None


def sweep_summary(result: SweepResult | None) -> dict[str, float]:
    """One sweep's headline figures per dtype: `small_message_latency_ms_<dtype>` (median latency
    at the smallest size) and `peak_busbw_gbps_<dtype>` (the highest bus bandwidth over sizes)."""
    summary = {}
    for dtype, curve in (result.curves() if result else {}).items():
        summary[f"small_message_latency_ms_{dtype}"] = curve[0].latency_median_s * 1e3
        summary[f"peak_busbw_gbps_{dtype}"] = max(point.busbw_gbps for point in curve)
    return summary


def _olympic_measurement(rows: list[Measurement]) -> Measurement:
    """One size's figures as the olympic mean over repeats."""
    def mean(value_of: Callable[[Measurement], float]) -> float:
        return olympic_mean(value_of(row) for row in rows) or 0.0

    first = rows[0]
    return Measurement(
        elements=first.elements, dtype=first.dtype, bytes=first.bytes,
        latency_median_s=mean(lambda r: r.latency_median_s), latency_p10_s=mean(lambda r: r.latency_p10_s),
        latency_p90_s=mean(lambda r: r.latency_p90_s), algbw_gbps=mean(lambda r: r.algbw_gbps),
        busbw_gbps=mean(lambda r: r.busbw_gbps))


def communication_curves(outcomes: list[ConfigurationOutcome]) -> dict[tuple[str, str, int, str], list[Measurement]]:
    """(task, algorithm, world size, dtype) -> one curve over size: per size, every figure is the
    olympic mean over the repeats that succeeded. Failed repeats are left out."""
    samples: dict[tuple[str, str, int, str], dict[int, list[Measurement]]] = {}
    for o in outcomes:
        result = sweep_result(o)
        if not o.succeeded or result is None:
            continue
        for dtype, curve in result.curves().items():
            per_size = samples.setdefault((o.task, o.series, int(o.world_size), dtype), {})
            for row in curve:
                per_size.setdefault(row.elements, []).append(row)
    return {key: [_olympic_measurement(rows) for _elements, rows in sorted(per_size.items())]
            for key, per_size in sorted(samples.items())}


def communication_rows(outcomes: list[ConfigurationOutcome]) -> list[dict]:
    """One row per (task, algorithm, world size, dtype) of task 0, from `communication_curves`.

    - `runs`, `failed`: the repeats, and those that did not succeed;
    - `small_message_latency_ms` at the smallest size (`small_message_elements`),
      `large_message_latency_ms` at the largest (`large_message_elements`);
    - `peak_busbw_gbps`: the highest bus bandwidth over sizes, at `peak_busbw_elements`.

    A configuration whose every repeat failed still gets a row (dtype '-', figures None).
    """
    curves = communication_curves(outcomes)
    rows = []
    for key, group in by_configuration(outcomes):
        dtypes = [curve_key[3] for curve_key in curves if curve_key[:3] == key] or ["-"]
        for dtype in dtypes:
            rows.append({
                **configuration_identity(key, group),
                "dtype": dtype,
                "configuration": configuration_name(key),
                "runs": len(group),
                "failed": sum(1 for o in group if not o.succeeded),
                **_curve_figures(curves.get((*key, dtype), [])),
            })
    return rows


def _curve_figures(curve: list[Measurement]) -> dict:
    """A row's figures of one curve (ascending size; None for no curve)."""
    peak = max(curve, key=lambda point: point.busbw_gbps) if curve else None
    return {
        "small_message_elements": curve[0].elements if curve else None,
        "small_message_latency_ms": curve[0].latency_median_s * 1e3 if curve else None,
        "large_message_elements": curve[-1].elements if curve else None,
        "large_message_latency_ms": curve[-1].latency_median_s * 1e3 if curve else None,
        "peak_busbw_gbps": peak.busbw_gbps if peak else None,
        "peak_busbw_elements": peak.elements if peak else None,
    }


def _at(value: float | None, unit: str, elements: int | None) -> str:
    return "-" if value is None else f"{value:.3f} {unit} @ {elements:,}"


def format_communication_table(rows: list[dict]) -> str:
    """Fixed-width text table of task 0's rows: per world size and dtype, the latency of the
    smallest and the largest message and the peak bus bandwidth, each with its size in elements."""
    header = ["configuration", "dtype", "runs", "small-message latency", "large-message latency", "peak busbw"]
    body = [[
        str(row["configuration"]),
        str(row["dtype"]),
        f"{row['runs'] - row['failed']}/{row['runs']} ok",
        _at(row["small_message_latency_ms"], "ms", row["small_message_elements"]),
        _at(row["large_message_latency_ms"], "ms", row["large_message_elements"]),
        _at(row["peak_busbw_gbps"], "GB/s", row["peak_busbw_elements"]),
    ] for row in rows]
    return render_table(header, body, first_left=2)


# ---------------------------------------------------------------------------------------------
# The parent run of (DAG run, task)
# ---------------------------------------------------------------------------------------------

def parent_metrics(rows: list[dict], outcomes: list[ConfigurationOutcome], now: int) -> list[Point]:
    """`<figure>_<dtype>_w<k>` per row (step 0), each world size's curves as
    `latency_median_ms_<dtype>_w<k>` and `busbw_gbps_<dtype>_w<k>` (step = size in elements), and
    the configuration counts. A run comparing backends names them: `busbw_gbps_<dtype>_<backend>_w<k>`."""
    backend_of = {o.series: o.backend for o in outcomes if o.compares_backends}

    def name(figure: str, dtype: str, series: str, world_size: int) -> str:
        backend = f"_{backend_of[series]}" if series in backend_of else ""
        return f"{figure}_{dtype}{backend}_w{world_size}"

    points: list[Point] = []
    for row in rows:
        for field in _ROW_METRICS:
            value = finite_number(row.get(field))
            if value is not None:
                points.append((name(field, row["dtype"], row["algorithm"], row["world_size"]), value, now, 0))
    for (_task, series, world_size, dtype), curve in communication_curves(outcomes).items():
        for point in curve:
            for key in _PARENT_CURVES:
                points.append((name(key, dtype, series, world_size), _SWEEP_METRICS[key](point), now,
                               point.elements))
    return points + [(key, value, now, 0) for key, value in configuration_counts(outcomes).items()]


def parent_plots(rows: list[dict], outcomes: list[ConfigurationOutcome]) -> dict[str, Callable[[Path], Path]]:
    """File name under `plots/` -> what draws it there: the curves of every world size."""
    return {"allreduce.png": lambda path: plot_communication(outcomes, path)}


def plot_communication(outcomes: list[ConfigurationOutcome], path: Path) -> Path:
    """Task 0 over world sizes (and backends, when the run compares several): latency and bus
    bandwidth over tensor size, one line per backend, world size and dtype (each point an olympic
    mean over the repeats that succeeded)."""
    curves = communication_curves(outcomes)
    several = len({key[1] for key in curves}) > 1  # algorithms, or algorithm-backend pairs
    series = {(f"{variant} " if several else "") + f"w{world_size} {dtype}": curve
              for (_task, variant, world_size, dtype), curve in curves.items()}
    backends = sorted({o.backend for o in outcomes})
    title = ("all-reduce by backend and world size" if len(backends) > 1 else "all-reduce by world size")
    return plot_series(series, Path(path), f"{title} ({', '.join(backends) or '?'})")


# ---------------------------------------------------------------------------------------------
# A configuration's run
# ---------------------------------------------------------------------------------------------

def child_metrics(result: SweepResult | None) -> list[Point]:
    """Each measurement per dtype with step = its size in elements, then the summary (step 0):
    small-message latency and peak bus bandwidth per dtype, and the wall time. At finished_at."""
    if result is None:
        return []
    end = millis(result.finished_at) or now_ms()
    points: list[Point] = []
    for row in result.measurements:
        for key, value_of in _SWEEP_METRICS.items():
            value = finite_number(value_of(row))
            if value is not None:
                points.append((f"{key}_{row.dtype}", value, end, row.elements))
    for mlbench in result.mlbench_measurements:  # MLBench's statistic under its own name: a mean, not a median
        value = finite_number(mlbench.mean_latency_s)
        if value is not None:
            points.append((f"mlbench_mean_latency_ms_{mlbench.dtype}", value * 1e3, end, mlbench.elements))
    points += [(key, value, end, 0) for key, value in sweep_summary(result).items()]
    wall = finite_number(result.wall_time_s)
    if wall is not None:
        points.append(("wall_time_s", wall, end, 0))
    return points


def table_columns(outcomes: list[ConfigurationOutcome]) -> tuple[list[str], list[str]]:
    """(params, metrics) of a configuration's run that the saved runs-table view shows as columns:
    the headline figures of every dtype swept, then the wall time."""
    metrics = sorted({key for outcome in outcomes for key in sweep_summary(sweep_result(outcome))})
    return ["world_size", "algorithm"], metrics + ["wall_time_s"]


def child_plots(result: SweepResult | None) -> dict[str, Callable[[Path], Path]]:
    """File name under `plots/` -> what draws it there: the sweep's curves, for a run with a result."""
    if result is None:
        return {}
    return {"allreduce.png": lambda path: plot_result(result, path)}


def configuration_row(outcome: ConfigurationOutcome) -> dict:
    """A configuration's headline figures per dtype (`sweep_summary`), for `configurations.csv`."""
    return sweep_summary(sweep_result(outcome))


# The kind's rows and table under the names every kind module shares (dag_run.kind_of).
rows = communication_rows
table = format_communication_table
