"""Comparison of a benchmark DAG run's configurations: aggregation, tables and plots.

Pure logic: no MLflow and no Airflow here (`operators.tracking` logs what this module computes).
matplotlib is imported lazily inside the plotting functions, so importing this module is cheap.

Vocabulary:

- a *configuration* is one training run of a DAG run: task x algorithm x world size x repeat,
  described by a `ConfigurationOutcome`;
- a *row* of the comparison aggregates the repeats of one (task, algorithm, world size).

Time to accuracy is aggregated the MLPerf way (`olympic_mean`), and speedups follow MLBench:
speedup(k) = time to accuracy with 1 worker / time to accuracy with k workers, efficiency(k) =
speedup(k) / k; the compute-only variants use `compute_s` (forward + loss + backward + optimizer,
communication excluded) instead of the time to accuracy.

Task 0 (the all-reduce sweep) has no target: its rows (`communication_rows`) compare latency and
bus bandwidth per world size and dtype instead, each size's figures an olympic mean over repeats.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from tasks.registry import is_communication_task

__all__ = [
    "ConfigurationOutcome",
    "olympic_mean",
    "comparison_rows",
    "configuration_rows",
    "format_table",
    "to_markdown",
    "to_csv",
    "plot_scaling",
    "plot_time_split",
    "plot_curves",
    "sweep_summary",
    "communication_rows",
    "communication_curves",
    "format_communication_table",
    "format_tables",
    "plot_communication",
]


@dataclass
class ConfigurationOutcome:
    """What one configuration of a DAG run produced, as the pipeline saw it.

    `result` is the parsed `result.json` (None if the bundle has none), `validation` the Great
    Expectations report of the bundle (`{"suite", "success", "failures", "statistics", "results"}`,
    None if it was not validated), and `failure_reason` what the caller knows went wrong outside
    the bundle (launch failed, pod evicted, bundle unreadable or invalid).
    """

    config_id: str
    task: str
    world_size: int
    repeat: int
    algorithm: str
    backend: str
    launcher: str
    output: str
    result: dict | None = None
    validation: dict | None = None
    failure_reason: str | None = None
    compares_backends: bool = False  # the DAG run ran each configuration on several backends

    @property
    def series(self) -> str:
        """What comparisons group by besides task and world size: the algorithm, qualified by the
        backend when the run compares several (`allreduce-gloo`, `allreduce-nccl`)."""
        return f"{self.algorithm}-{self.backend}" if self.compares_backends else self.algorithm

    @property
    def succeeded(self) -> bool:
        """The run completed, its bundle passed validation (or was not validated), nothing failed.

        Not reaching the target is still a success: the run did what was asked, and the comparison
        counts it in the hit rate.
        """
        return (
            self.result is not None
            and self.result.get("status") == "completed"
            and (self.validation is None or self.validation.get("success") is True)
            and not self.failure_reason
        )

    @property
    def goal_reached(self) -> bool:
        """Succeeded and reached the target, with a time to accuracy to show for it."""
        return (
            self.succeeded
            and bool(self.result.get("goal_reached"))
            and _number(self.result.get("time_to_accuracy_s")) is not None
        )

    @property
    def failure_summary(self) -> str | None:
        """Why this configuration failed, in one line; None if it succeeded.

        The caller's `failure_reason` comes first, then the run's own reason (`status: failed`),
        then the validation failures.
        """
        if self.succeeded:
            return None
        if self.failure_reason:
            return self.failure_reason
        if self.result is None:
            return "result.json is missing"
        if self.result.get("status") != "completed":
            return str(self.result.get("reason") or f"run status {self.result.get('status')!r}")
        return _validation_summary(self.validation or {})

    @property
    def label(self) -> str:
        """Short name of the configuration for plots: algorithm, world size, repeat."""
        return f"{self.series} w{self.world_size} r{self.repeat}"


def _validation_summary(validation: dict) -> str:
    suite = validation.get("suite") or "validation"
    failures = validation.get("failures") or []
    shown = []
    for failure in failures[:3]:
        if isinstance(failure, dict):
            name = (failure.get("expectation") or failure.get("expectation_type")
                    or failure.get("type") or failure.get("name"))
            column = failure.get("column") or (failure.get("kwargs") or {}).get("column")
            text = " ".join(str(part) for part in (name, column) if part) or json.dumps(
                failure, sort_keys=True, default=str)
        else:
            text = str(failure)
        shown.append(text[:200])
    more = f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
    detail = ": " + "; ".join(shown) + more if shown else ""
    return f"validation failed: suite {suite}{detail}"


def _number(value: Any) -> float | None:
    """A finite float, or None (None, bools, strings and non-finite values are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def olympic_mean(values: Iterable[float]) -> float | None:
    """Mean that drops one fastest and one slowest value, as MLPerf scores repeated runs.

    With 3 or more values the single smallest and single largest are dropped and the rest
    averaged. With 1 or 2 values there is nothing to drop: the plain mean is returned. None for
    no values.
    """
    values = sorted(float(v) for v in values)
    if not values:
        return None
    if len(values) >= 3:
        values = values[1:-1]
    return sum(values) / len(values)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def comparison_rows(outcomes: list[ConfigurationOutcome]) -> list[dict]:
    """One row per (task, algorithm, world size), aggregated over its repeats.

    - `runs`: every repeat, failed ones included; `goal_reached`: those that succeeded and
      reached the target; `failed`: those that did not succeed; `hit_rate` = goal_reached / runs.
    - `tta_s`, `wall_tta_s`: olympic means over the runs that reached the goal; `tta_min_s`,
      `tta_max_s`: their extremes. None if no run reached the goal.
    - `compute_s`, `communication_s`: olympic means over the runs that reached the goal (each run
      stops at the target, so these are compute and communication *to accuracy*); if none did,
      over the runs that succeeded, so the split is still shown (speedups stay None then).
    - `speedup`, `efficiency`: against the same task and algorithm at world size 1, from
      `tta_s`; `compute_speedup`, `compute_efficiency`: the same from `compute_s`. None when
      either side did not reach the goal (no baseline, or this row never got there).
    - `comm_share` = communication_s / (compute_s + communication_s).

    Rows are sorted by task, algorithm, world size.
    """
    groups: dict[tuple[str, str, int], list[ConfigurationOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.task, outcome.series, int(outcome.world_size)), []).append(outcome)

    rows: list[dict] = []
    for (task, algorithm, world_size), group in sorted(groups.items()):
        reached = [o for o in group if o.goal_reached]
        timed = reached or [o for o in group if o.succeeded]
        ttas = [_number(o.result.get("time_to_accuracy_s")) for o in reached]
        walls = [w for w in (_number(o.result.get("wall_time_to_accuracy_s")) for o in reached)
                 if w is not None]
        computes = [c for c in (_number(o.result.get("compute_s")) for o in timed) if c is not None]
        comms = [c for c in (_number(o.result.get("communication_s")) for o in timed) if c is not None]
        compute_s = olympic_mean(computes)
        communication_s = olympic_mean(comms)
        busy = (compute_s or 0.0) + (communication_s or 0.0)
        rows.append({
            "task": task,
            "algorithm": algorithm,
            "world_size": world_size,
            "backend": ",".join(sorted({o.backend for o in group})),
            "configuration": f"{task} {algorithm} w{world_size}",
            "runs": len(group),
            "goal_reached": len(reached),
            "failed": sum(1 for o in group if not o.succeeded),
            "hit_rate": len(reached) / len(group),
            "tta_s": olympic_mean(ttas),
            "tta_min_s": min(ttas) if ttas else None,
            "tta_max_s": max(ttas) if ttas else None,
            "wall_tta_s": olympic_mean(walls),
            "compute_s": compute_s,
            "communication_s": communication_s,
            "comm_share": (communication_s or 0.0) / busy if busy > 0 else None,
            "_compute_reached": bool(reached),
        })

    baselines = {(r["task"], r["algorithm"]): r for r in rows if r["world_size"] == 1}
    for row in rows:
        base = baselines.get((row["task"], row["algorithm"]))
        k = row["world_size"]
        speedup = compute_speedup = None
        if base is not None:
            speedup = _ratio(base["tta_s"], row["tta_s"])
            if base["_compute_reached"] and row["_compute_reached"]:
                compute_speedup = _ratio(base["compute_s"], row["compute_s"])
        row["speedup"] = speedup
        row["efficiency"] = speedup / k if speedup is not None else None
        row["compute_speedup"] = compute_speedup
        row["compute_efficiency"] = compute_speedup / k if compute_speedup is not None else None
    for row in rows:
        del row["_compute_reached"]
    return rows


def configuration_rows(outcomes: list[ConfigurationOutcome],
                       run_ids: dict[str, str] | None = None) -> list[dict]:
    """One row per configuration (no aggregation): what ran and how it ended.

    Training configurations show their time to accuracy and split; task 0's its small-message
    latency and peak bus bandwidth per dtype. `run_ids` (config_id -> tracking run id) adds a
    `run_id` column when given.
    """
    rows = []
    for o in sorted(outcomes, key=lambda o: (o.task, o.series, o.world_size, o.repeat, o.config_id)):
        r = o.result or {}
        row = {
            "config_id": o.config_id,
            "task": o.task,
            "algorithm": o.algorithm,
            "world_size": o.world_size,
            "repeat": o.repeat,
            "backend": o.backend,
            "launcher": o.launcher,
            "status": "succeeded" if o.succeeded else "failed",
        }
        if is_communication_task(o.task):
            row.update(sweep_summary(r.get("measurements") or []))
        else:
            row.update({
                "goal_reached": o.goal_reached,
                "tta_s": _number(r.get("time_to_accuracy_s")),
                "wall_tta_s": _number(r.get("wall_time_to_accuracy_s")),
                "compute_s": _number(r.get("compute_s")),
                "communication_s": _number(r.get("communication_s")),
                "epochs_run": r.get("epochs_run"),
            })
        row["failure_reason"] = o.failure_summary
        if run_ids is not None:
            row["run_id"] = run_ids.get(o.config_id)
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Task 0: latency and bus bandwidth per world size
# ---------------------------------------------------------------------------------------------

_CURVE_FIELDS = ("latency_median_s", "latency_p10_s", "latency_p90_s", "algbw_gbps", "busbw_gbps")


def _curves_by_dtype(measurements: list[dict]) -> dict[str, list[dict]]:
    """dtype -> its measurement rows, ascending size, finite figures only."""
    curves: dict[str, list[dict]] = {}
    for row in measurements:
        if all(_number(row.get(field)) is not None for field in _CURVE_FIELDS):
            curves.setdefault(row["dtype"], []).append(row)
    return {dtype: sorted(rows, key=lambda r: r["elements"]) for dtype, rows in curves.items()}


def sweep_summary(measurements: list[dict]) -> dict[str, float]:
    """One sweep's headline figures per dtype: `small_message_latency_ms_<dtype>` (median latency
    at the smallest size) and `peak_busbw_gbps_<dtype>` (the highest bus bandwidth over sizes)."""
    summary = {}
    for dtype, curve in _curves_by_dtype(measurements).items():
        summary[f"small_message_latency_ms_{dtype}"] = curve[0]["latency_median_s"] * 1e3
        summary[f"peak_busbw_gbps_{dtype}"] = max(point["busbw_gbps"] for point in curve)
    return summary


def communication_curves(outcomes: list[ConfigurationOutcome]) -> dict[tuple[str, str, int, str], list[dict]]:
    """(task, algorithm, world size, dtype) -> one curve over size: per size, every figure is the
    olympic mean over the repeats that succeeded. Failed repeats are left out."""
    samples: dict[tuple[str, str, int, str], dict[int, list[dict]]] = {}
    for o in outcomes:
        if not o.succeeded:
            continue
        for dtype, curve in _curves_by_dtype(o.result.get("measurements") or []).items():
            per_size = samples.setdefault((o.task, o.series, int(o.world_size), dtype), {})
            for row in curve:
                per_size.setdefault(row["elements"], []).append(row)
    curves = {}
    for key, per_size in sorted(samples.items()):
        curves[key] = [
            {"elements": elements, "dtype": key[3], "bytes": rows[0]["bytes"],
             **{field: olympic_mean(row[field] for row in rows) for field in _CURVE_FIELDS}}
            for elements, rows in sorted(per_size.items())
        ]
    return curves


def communication_rows(outcomes: list[ConfigurationOutcome]) -> list[dict]:
    """One row per (task, algorithm, world size, dtype) of task 0, from `communication_curves`.

    - `runs`, `failed`: the repeats, and those that did not succeed;
    - `small_message_latency_ms` at the smallest size (`small_message_elements`),
      `large_message_latency_ms` at the largest (`large_message_elements`);
    - `peak_busbw_gbps`: the highest bus bandwidth over sizes, at `peak_busbw_elements`.

    A configuration whose every repeat failed still gets a row (dtype '-', figures None).
    """
    curves = communication_curves(outcomes)
    groups: dict[tuple[str, str, int], list[ConfigurationOutcome]] = {}
    for o in outcomes:
        groups.setdefault((o.task, o.series, int(o.world_size)), []).append(o)
    rows = []
    for (task, algorithm, world_size), group in sorted(groups.items()):
        dtypes = [key[3] for key in curves if key[:3] == (task, algorithm, world_size)] or ["-"]
        for dtype in dtypes:
            curve = curves.get((task, algorithm, world_size, dtype), [])
            peak = max(curve, key=lambda point: point["busbw_gbps"]) if curve else None
            rows.append({
                "task": task,
                "algorithm": algorithm,
                "world_size": world_size,
                "backend": ",".join(sorted({o.backend for o in group})),
                "dtype": dtype,
                "configuration": f"{task} {algorithm} w{world_size}",
                "runs": len(group),
                "failed": sum(1 for o in group if not o.succeeded),
                "small_message_elements": curve[0]["elements"] if curve else None,
                "small_message_latency_ms": curve[0]["latency_median_s"] * 1e3 if curve else None,
                "large_message_elements": curve[-1]["elements"] if curve else None,
                "large_message_latency_ms": curve[-1]["latency_median_s"] * 1e3 if curve else None,
                "peak_busbw_gbps": peak["busbw_gbps"] if peak else None,
                "peak_busbw_elements": peak["elements"] if peak else None,
            })
    return rows


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def format_table(rows: list[dict]) -> str:
    """Fixed-width text table of comparison rows, for a terminal or a task log.

    Columns: configuration, runs, goal reached (count/runs and hit rate), time to accuracy (olympic
    mean), speedup, efficiency, compute-only speedup, communication share. '-' marks a value that
    cannot be computed (goal not reached, no 1-worker baseline).
    """
    header = ["configuration", "runs", "goal reached", "time to accuracy", "speedup",
              "efficiency", "compute speedup", "comm share"]
    body = [[
        str(row["configuration"]),
        str(row["runs"]),
        f"{row['goal_reached']}/{row['runs']} ({_percent(row['hit_rate'])})",
        _seconds(row["tta_s"]),
        _times(row["speedup"]),
        _percent(row["efficiency"]),
        _times(row["compute_speedup"]),
        _percent(row["comm_share"]),
    ] for row in rows]
    return _render_table(header, body)


def _render_table(header: list[str], body: list[list[str]], first_left: int = 1) -> str:
    """Columns padded to their widest cell: the first `first_left` left-aligned, the rest right."""
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        padded = [cell.ljust(width) if index < first_left else cell.rjust(width)
                  for index, (cell, width) in enumerate(zip(cells, widths))]
        return "  ".join(padded).rstrip()

    lines = [render(header), "  ".join("-" * w for w in widths)]
    lines += [render(cells) for cells in body]
    if not body:
        lines.append("(no configurations)")
    return "\n".join(lines) + "\n"


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
    return _render_table(header, body, first_left=2)


def format_tables(outcomes: list[ConfigurationOutcome]) -> str:
    """The report of a DAG run: the training comparison for training tasks, then task 0's."""
    training = [o for o in outcomes if not is_communication_task(o.task)]
    communication = [o for o in outcomes if is_communication_task(o.task)]
    tables = []
    if training or not communication:
        tables.append(format_table(comparison_rows(training)))
    if communication:
        tables.append(format_communication_table(communication_rows(communication)))
    return "\n".join(tables)


def _columns(rows: list[dict]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    return columns


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def to_markdown(rows: list[dict]) -> str:
    """Markdown table of any rows (comparison or configuration rows): every column, in order.

    Floats are shown with 6 significant digits; an empty cell is a value that does not exist.
    """
    if not rows:
        return "_no configurations_\n"
    columns = _columns(rows)

    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(escape(_cell(row.get(c))) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    """CSV of any rows: a header of every column, full float precision, None as an empty cell."""
    buffer = io.StringIO()
    columns = _columns(rows)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([
            "" if row.get(c) is None else (repr(row[c]) if isinstance(row.get(c), float) else _cell(row[c]))
            for c in columns
        ])
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Plots (matplotlib's Agg backend, object API only: no pyplot global state in Airflow workers)
# ---------------------------------------------------------------------------------------------

def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_scaling(rows: list[dict], path: Path) -> Path:
    """Speedup and efficiency over worker counts, total (solid) and compute-only (dashed).

    One line per task and algorithm, with the ideal (linear speedup, efficiency 1) as a dotted
    line. Rows without a speedup (goal not reached, no 1-worker baseline) are left out; a plot
    with nothing to show says so.
    """
    fig = _figure(11, 4.2)
    ax_speed, ax_eff = fig.subplots(1, 2)
    series: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        series.setdefault((row["task"], row["algorithm"]), []).append(row)
    several_tasks = len({task for task, _ in series}) > 1
    workers = sorted({int(row["world_size"]) for row in rows}) or [1]
    plotted = False
    for index, ((task, algorithm), group) in enumerate(sorted(series.items())):
        group = sorted(group, key=lambda r: r["world_size"])
        color = f"C{index % 10}"
        name = f"{task} {algorithm}" if several_tasks else algorithm
        for key_speed, key_eff, style, suffix in (
            ("speedup", "efficiency", "-o", "total"),
            ("compute_speedup", "compute_efficiency", "--s", "compute only"),
        ):
            points = [(r["world_size"], r[key_speed], r[key_eff]) for r in group
                      if r.get(key_speed) is not None]
            if not points:
                continue
            plotted = True
            xs = [p[0] for p in points]
            ax_speed.plot(xs, [p[1] for p in points], style, color=color, label=f"{name} ({suffix})")
            ax_eff.plot(xs, [p[2] for p in points], style, color=color, label=f"{name} ({suffix})")
    ax_speed.plot(workers, workers, ":", color="grey", label="ideal")
    ax_eff.plot(workers, [1.0] * len(workers), ":", color="grey", label="ideal")
    for ax, ylabel in ((ax_speed, "speedup vs 1 worker"), (ax_eff, "efficiency (speedup / workers)")):
        ax.set_xlabel("workers")
        ax.set_ylabel(ylabel)
        ax.set_xticks(workers)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_ylim(bottom=0)
    ax_speed.set_title("Speedup (time to accuracy)")
    ax_eff.set_title("Efficiency")
    if not plotted:
        for ax in (ax_speed, ax_eff):
            ax.text(0.5, 0.5, "no speedup: no 1-worker baseline\nor goal not reached",
                    transform=ax.transAxes, ha="center", va="center", color="grey")
    return _save(fig, path)


def plot_time_split(outcomes: list[ConfigurationOutcome], path: Path) -> Path:
    """Stacked compute / communication / other training time per configuration.

    'other' is the rest of the measured training time (host-to-device data copies). Failed
    configurations are hatched and marked, and one without a result shows an empty slot labelled
    'no result', so every configuration that ran appears.
    """
    ordered = sorted(outcomes, key=lambda o: (o.task, o.series, o.world_size, o.repeat, o.config_id))
    several_tasks = len({o.task for o in ordered}) > 1
    fig = _figure(max(6.0, 0.65 * len(ordered) + 2.5), 4.5)
    ax = fig.subplots()
    labels, computes, comms, others = [], [], [], []
    for o in ordered:
        r = o.result or {}
        compute = _number(r.get("compute_s")) or 0.0
        comm = _number(r.get("communication_s")) or 0.0
        train = _number(r.get("train_time_s")) or 0.0
        labels.append(f"{o.task}\n{o.label}" if several_tasks else o.label)
        computes.append(compute)
        comms.append(comm)
        others.append(max(0.0, train - compute - comm))
    xs = list(range(len(ordered)))
    bars_compute = ax.bar(xs, computes, label="compute", color="C0")
    bars_comm = ax.bar(xs, comms, bottom=computes, label="communication", color="C1")
    bottoms = [a + b for a, b in zip(computes, comms)]
    bars_other = ax.bar(xs, others, bottom=bottoms, label="other (data)", color="C7", alpha=0.6)
    top = max([b + o for b, o in zip(bottoms, others)] + [1e-9])
    for x, o, total in zip(xs, ordered, [b + o for b, o in zip(bottoms, others)]):
        if o.succeeded:
            if total > 0:
                share = comms[x] / (computes[x] + comms[x]) if computes[x] + comms[x] > 0 else 0.0
                ax.text(x, total, f"{100 * share:.0f}%", ha="center", va="bottom", fontsize="x-small")
            continue
        for bars in (bars_compute, bars_comm, bars_other):
            bars[x].set_hatch("//")
            bars[x].set_alpha(0.5)
        ax.text(x, total + 0.02 * top, "failed" if o.result is not None else "no result",
                ha="center", va="bottom", fontsize="x-small", color="C3", rotation=90)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=45 if len(xs) > 6 else 0, ha="right" if len(xs) > 6 else "center",
                       fontsize="small")
    ax.set_ylabel("training time (s, summed over steps)")
    ax.set_title("Compute / communication split per configuration")
    ax.set_xlabel("configuration (bar label: communication share)")
    ax.set_ylim(0, top * 1.25)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    if not ordered:
        ax.text(0.5, 0.5, "no configurations", transform=ax.transAxes, ha="center", va="center")
    return _save(fig, path)


def plot_curves(result: dict, path: Path) -> Path:
    """Training loss and validation metric per epoch of one run, with the target as a line.

    Loss on the left axis, metric on the right; epochs without a value (diverged, not evaluated)
    are left out. A run without any epoch gives a plot that says so.
    """
    history = result.get("history") or []
    target = result.get("target") or {}
    fig = _figure(8, 4.5)
    ax_loss = fig.subplots()
    ax_metric = ax_loss.twinx()

    def series(key: str) -> tuple[list[int], list[float]]:
        points = [(h.get("epoch"), _number(h.get(key))) for h in history]
        points = [(e, v) for e, v in points if e is not None and v is not None]
        return [p[0] for p in points], [p[1] for p in points]

    handles = []
    epochs, losses = series("train_loss")
    if epochs:
        handles += ax_loss.plot(epochs, losses, "-o", color="C0", markersize=3, label="train loss")
    epochs, losses = series("validation_loss")
    if epochs:
        handles += ax_loss.plot(epochs, losses, "--", color="C0", alpha=0.6, label="validation loss")
    metric_name = target.get("metric") or "metric"
    epochs, metrics = series("validation_metric")
    if epochs:
        handles += ax_metric.plot(epochs, metrics, "-s", color="C2", markersize=3,
                                  label=f"validation {metric_name}")
    target_value = _number(target.get("value"))
    if target_value is not None:
        handles.append(ax_metric.axhline(target_value, color="C3", linestyle=":",
                                         label=f"target {metric_name} {target_value:g}"))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss", color="C0")
    ax_metric.set_ylabel(f"validation {metric_name}", color="C2")
    ax_loss.grid(True, alpha=0.3)
    title = (f"{result.get('task', '?')} {result.get('algorithm', '')} "
             f"w{result.get('world_size', '?')}: {result.get('status', '?')}")
    if result.get("goal_reached") and _number(result.get("time_to_accuracy_s")) is not None:
        title += f", target reached in {result['time_to_accuracy_s']:.2f} s"
    elif result.get("reason"):
        title += f" ({str(result['reason'])[:60]})"
    ax_loss.set_title(title, fontsize="medium")
    if handles:
        ax_loss.legend(handles=handles, fontsize="small", loc="center right")
    if not history:
        ax_loss.text(0.5, 0.5, "no epoch completed", transform=ax_loss.transAxes,
                     ha="center", va="center", color="grey")
    return _save(fig, path)


def plot_communication(outcomes: list[ConfigurationOutcome], path: Path) -> Path:
    """Task 0 over world sizes (and backends, when the run compares several): latency and bus
    bandwidth over tensor size, one line per backend, world size and dtype (each point an olympic
    mean over the repeats that succeeded)."""
    from tasks.runtime.allreduce_results import plot_series

    curves = communication_curves(outcomes)
    several = len({key[1] for key in curves}) > 1  # algorithms, or algorithm-backend pairs
    series = {(f"{variant} " if several else "") + f"w{world_size} {dtype}": curve
              for (_task, variant, world_size, dtype), curve in curves.items()}
    backends = sorted({o.backend for o in outcomes})
    title = ("all-reduce by backend and world size" if len(backends) > 1 else "all-reduce by world size")
    return plot_series(series, Path(path), f"{title} ({', '.join(backends) or '?'})")
