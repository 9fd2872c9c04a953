"""The report of a training task (every task but task 0): what its runs log and how its
configurations compare.

Time to accuracy is scored the MLPerf way (`mlperf_score`: the olympic mean, a run that did not
reach the target counting as the slowest, no score with two such runs), and speedups follow MLBench:
speedup(k) = time to accuracy with 1 worker / time to accuracy with k workers, efficiency(k) =
speedup(k) / k; the compute-only variants use `compute_s` (forward + loss + backward + optimizer,
communication excluded) instead of the time to accuracy.

A run logs its history per epoch (step = epoch), every evaluation when it evaluates inside epochs
(step = hundredths of an epoch), and its summary; the parent run the speedups per
algorithm and world size. `rows` is `comparison_rows` and `table` is `format_table`, under the
names every kind module shares (see `operators.report.dag_run.kind_of`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from operators.report.outcome import (
    ConfigurationOutcome,
    by_configuration,
    configuration_identity,
    configuration_name,
    in_order,
    mlperf_score,
    olympic_mean,
    primary_algorithm,
)
from operators.report.points import Point, configuration_counts, millis, now_ms
from operators.report.tables import render_table
from tasks.plots import plot_curves, plot_scaling, plot_time_bars
from tasks.runtime.history import EpochRecord
from tasks.runtime.results import TrainingResult, finite_number

__all__ = [
    "comparison_rows",
    "format_table",
    "parent_metrics",
    "parent_plots",
    "plot_time_split",
    "child_metrics",
    "child_plots",
    "configuration_row",
]

# Metric key -> its value in an epoch of the history (step = epoch). The per-epoch training time
# gets its own key so that `train_time_s` stays the run's total, as in result.json.
_EPOCH_METRICS: dict[str, Callable[[EpochRecord], float | None]] = {
    "train_loss": lambda e: e.train_loss,
    "validation_metric": lambda e: e.validation_metric,
    "validation_loss": lambda e: e.validation_loss,
    "validation_top5": lambda e: e.validation_top5,
    "lr": lambda e: e.lr,
    "epoch_time_s": lambda e: e.epoch_time_s,
    "epoch_train_time_s": lambda e: e.train_time_s,
    "cumulative_train_time_s": lambda e: e.cumulative_train_time_s,
}
# Metric key -> its value in the run's summary (step 0).
_SUMMARY_METRICS: dict[str, Callable[[TrainingResult], float | None]] = {
    "time_to_accuracy_s": lambda r: r.time_to_accuracy_s,
    "wall_time_to_accuracy_s": lambda r: r.wall_time_to_accuracy_s,
    "compute_s": lambda r: r.compute_s,
    "communication_s": lambda r: r.communication_s,
    "train_time_s": lambda r: r.train_time_s,
    "wall_time_s": lambda r: r.wall_time_s,
    "throughput_samples_per_s": lambda r: r.throughput_samples_per_s,
    "epochs_run": lambda r: r.epochs_run,
    "epochs_trained": lambda r: r.epochs_trained,  # epochs_run less what a goal inside the last epoch left
    "steps": lambda r: r.steps,
    "final_validation_metric": lambda r: r.final_validation_metric,
    "best_validation_metric": lambda r: r.best_validation_metric,
    "resumes": lambda r: r.resumes,
    "lost_time_s": lambda r: r.lost_time_s,
}
# Comparison row fields a parent run logs, per algorithm and world size.
_PARENT_FIELDS = ("speedup", "efficiency", "compute_speedup", "compute_efficiency", "hit_rate",
                  "comm_share", "tta_s", "compute_s", "communication_s", "cost_usd", "price_index")


# ---------------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------------

def comparison_rows(outcomes: list[ConfigurationOutcome]) -> list[dict]:
    """One row per (task, algorithm, world size), aggregated over its repeats.

    - `runs`: every repeat, failed ones included; `goal_reached`: those that succeeded and
      reached the target; `failed`: those that did not succeed; `hit_rate` = goal_reached / runs.
    - `tta_s`, `wall_tta_s`: MLPerf's score of the repeats (`mlperf_score`): the olympic mean, where
      each run that did not reach the goal (failed runs included) counts as the slowest; None when
      two or more did not, or one did not among fewer than 3 runs. `tta_min_s`, `tta_max_s`: the
      extremes over the runs that reached the goal (None if none did).
    - `compute_s`, `communication_s`: olympic means over the runs that reached the goal (each run
      stops at the target, so these are compute and communication *to accuracy*); if none did,
      over the runs that succeeded, so the split is still shown (speedups stay None then).
    - `speedup`, `efficiency`: against the same task and algorithm at world size 1, from
      `tta_s`; `compute_speedup`, `compute_efficiency`: the same from `compute_s`. None when
      either side did not reach the goal (no baseline, or this row never got there).
    - `comm_share` = communication_s / (compute_s + communication_s).
    - `cost_usd`: cost to accuracy, the wall-clock time to accuracy (what the nodes are billed for)
      times the hourly price of what the configuration occupied on its pool; `price_index`: that
      cost relative to the 1-worker configuration's (MLBench's price index, 1/efficiency on
      wall-clock time). None without a price (`pool` and `priced` say which case it is).

    Rows are sorted by task, algorithm, world size.
    """
    aggregated = [(_aggregate(key, group), any(o.goal_reached for o in group))
                  for key, group in by_configuration(outcomes)]
    baselines = {(row["task"], row["algorithm"]): (row, reached)
                 for row, reached in aggregated if row["world_size"] == 1}
    for row, reached in aggregated:
        row.update(_speedups(row, reached, baselines.get((row["task"], row["algorithm"]))))
    return [row for row, _ in aggregated]


def training_result(outcome: ConfigurationOutcome) -> TrainingResult | None:
    """The outcome's result: a training task's bundle holds a TrainingResult (None without one)."""
    return outcome.result if isinstance(outcome.result, TrainingResult) else None


def _figures(outcomes: list[ConfigurationOutcome], value_of: Callable[[TrainingResult], float | None]
             ) -> list[float]:
    """The finite values of a result figure over these outcomes."""
    results = [r for r in map(training_result, outcomes) if r is not None]
    return [v for v in (finite_number(value_of(r)) for r in results) if v is not None]


def _aggregate(key: tuple[str, str, int], group: list[ConfigurationOutcome]) -> dict:
    """A comparison row without its speedups: counts, time to accuracy, compute/communication split."""
    reached = [o for o in group if o.goal_reached]
    timed = reached or [o for o in group if o.succeeded]
    ttas = _figures(reached, lambda r: r.time_to_accuracy_s)
    missed = len(group) - len(ttas)
    wall_tta_s = mlperf_score(_figures(reached, lambda r: r.wall_time_to_accuracy_s), missed)
    compute_s = olympic_mean(_figures(timed, lambda r: r.compute_s))
    communication_s = olympic_mean(_figures(timed, lambda r: r.communication_s))
    busy = (compute_s or 0.0) + (communication_s or 0.0)
    return {
        **configuration_identity(key, group),
        "configuration": configuration_name(key),
        "runs": len(group),
        "goal_reached": len(reached),
        "failed": sum(1 for o in group if not o.succeeded),
        "hit_rate": len(reached) / len(group),
        "tta_s": mlperf_score(ttas, missed),
        "tta_min_s": min(ttas) if ttas else None,
        "tta_max_s": max(ttas) if ttas else None,
        "wall_tta_s": wall_tta_s,
        "compute_s": compute_s,
        "communication_s": communication_s,
        "comm_share": (communication_s or 0.0) / busy if busy > 0 else None,
        **_cost(group, wall_tta_s),
    }


def _cost(group: list[ConfigurationOutcome], wall_tta_s: float | None) -> dict:
    pool = next((o.pool for o in group if o.pool), None)
    price = next((o.price_per_hour for o in group if o.price_per_hour is not None), None)
    cost = wall_tta_s * price / 3600 if wall_tta_s is not None and price is not None else None
    return {"pool": pool, "priced": price is not None, "cost_usd": cost}


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _speedups(row: dict, reached: bool, baseline: tuple[dict, bool] | None) -> dict:
    """Speedup and efficiency of a row against its 1-worker baseline (row, baseline reached the goal)."""
    speedup = compute_speedup = None
    if baseline is not None:
        base, base_reached = baseline
        speedup = _ratio(base["tta_s"], row["tta_s"])
        if base_reached and reached:
            compute_speedup = _ratio(base["compute_s"], row["compute_s"])
    k = row["world_size"]
    return {
        "speedup": speedup,
        "efficiency": speedup / k if speedup is not None else None,
        "compute_speedup": compute_speedup,
        "compute_efficiency": compute_speedup / k if compute_speedup is not None else None,
        "price_index": _ratio(row["cost_usd"], baseline[0]["cost_usd"]) if baseline is not None else None,
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def format_table(rows: list[dict], quality: str = "accuracy") -> str:
    """Fixed-width text table of comparison rows, for a terminal or a task log.

    Columns: configuration, runs, goal reached (count/runs and hit rate), time to accuracy (olympic
    mean), speedup, efficiency, compute-only speedup, communication share. '-' marks a value that
    cannot be computed (goal not reached, no 1-worker baseline). Rows that ran on a Kubernetes pool
    add cost to accuracy and the price index; a pool without a price says so under the table.
    """
    header = ["configuration", "runs", "goal reached", f"time to {quality}", "speedup",
              "efficiency", "compute speedup", "comm share"]
    on_pools = any(row.get("pool") for row in rows)
    if on_pools:
        header += ["cost to accuracy", "price index"]
    body = [[
        str(row["configuration"]),
        str(row["runs"]),
        f"{row['goal_reached']}/{row['runs']} ({_percent(row['hit_rate'])})",
        _seconds(row["tta_s"]),
        _times(row["speedup"]),
        _percent(row["efficiency"]),
        _times(row["compute_speedup"]),
        _percent(row["comm_share"]),
        *([_dollars(row), _times(row.get("price_index"))] if on_pools else []),
    ] for row in rows]
    unpriced = sorted({row["pool"] for row in rows if row.get("pool") and not row.get("priced")})
    note = (f"\nno cost for pool(s) {', '.join(unpriced)}: the profile has no price_per_node_hour "
            "(set it, with price_source, in the pools file)\n" if unpriced else "")
    return render_table(header, body) + note


def _dollars(row: dict) -> str:
    if not row.get("pool"):
        return "-"
    if not row.get("priced"):
        return "no price"
    return "-" if row["cost_usd"] is None else f"${row['cost_usd']:.2f}"


# ---------------------------------------------------------------------------------------------
# The parent run of (DAG run, task)
# ---------------------------------------------------------------------------------------------

def parent_metrics(rows: list[dict], outcomes: list[ConfigurationOutcome], now: int) -> list[Point]:
    """`speedup_<algorithm>_w<k>` (and the rest of `_PARENT_FIELDS`) for every algorithm, plus the
    unprefixed `speedup_w<k>` ... for the primary algorithm; counts of configurations. Step 0."""
    primary = primary_algorithm(outcomes)
    metrics: dict[str, float] = {}
    for row in rows:
        k = row["world_size"]
        for field in _PARENT_FIELDS:
            value = finite_number(row.get(field))
            if value is None:
                continue
            metrics[f"{field}_{row['algorithm']}_w{k}"] = value
            if row["algorithm"] == primary:
                metrics[f"{field}_w{k}"] = value
    metrics.update(configuration_counts(outcomes))
    metrics["goal_reached_configurations"] = float(sum(1 for o in outcomes if o.goal_reached))
    return [(key, value, now, 0) for key, value in metrics.items()]


def parent_plots(rows: list[dict], outcomes: list[ConfigurationOutcome]) -> dict[str, Callable[[Path], Path]]:
    """File name under `plots/` -> what draws it there: the scaling and the time split."""
    return {"scaling.png": lambda path: plot_scaling(rows, path),
            "time_split.png": lambda path: plot_time_split(outcomes, path)}


def plot_time_split(outcomes: list[ConfigurationOutcome], path: Path) -> Path:
    """Stacked compute / communication / other training time per configuration.

    'other' is the rest of the measured training time (host-to-device data copies). Failed
    configurations are hatched and marked, and one without a result shows an empty slot labelled
    'no result', so every configuration that ran appears.
    """
    ordered = in_order(outcomes)
    several_tasks = len({o.task for o in ordered}) > 1
    bars = []
    for o in ordered:
        result = training_result(o)
        bars.append({
            "label": f"{o.task}\n{o.label}" if several_tasks else o.label,
            "compute_s": finite_number(result.compute_s) if result else None,
            "communication_s": finite_number(result.communication_s) if result else None,
            "train_time_s": finite_number(result.train_time_s) if result else None,
            "status": "succeeded" if o.succeeded else "failed" if o.result is not None else "no result",
        })
    return plot_time_bars(bars, path)


# ---------------------------------------------------------------------------------------------
# A configuration's run
# ---------------------------------------------------------------------------------------------

def child_metrics(result: TrainingResult | None) -> list[Point]:
    """The points of a result: per epoch (step = epoch), then summary and phases (step 0).

    The validation metric is logged twice per epoch: as `validation_metric` (whatever the task) and
    under its own name (`validation_top1`, `validation_accuracy`, `validation_perplexity`); the
    training-batch metrics as `train_<name>` (`train_top1`, `train_perplexity`, ...).
    Timestamps: started_at + the wall time of the epochs so far; finished_at for the summary.
    """
    if result is None:
        return []
    start = millis(result.started_at) or now_ms()
    end = millis(result.finished_at) or start
    points: list[Point] = []
    elapsed = 0.0
    for entry in result.history:
        elapsed += finite_number(entry.epoch_time_s) or 0.0
        stamp = start + int(elapsed * 1000)
        for key, value_of in _EPOCH_METRICS.items():
            value = finite_number(value_of(entry))
            if value is not None:
                points.append((key, value, stamp, entry.epoch))
        for name, value in entry.train_metrics.items():  # MLBench's per-batch metrics, the epoch's mean
            finite = finite_number(value)
            if finite is not None:
                points.append((f"train_{name}", finite, stamp, entry.epoch))
        metric = finite_number(entry.validation_metric)
        if metric is not None:  # also by its own name, for charts across tasks
            points.append((f"validation_{result.target.metric}", metric, stamp, entry.epoch))
        for name, value in entry.validation_metrics.items():  # e.g. translation's per-batch BLEU
            finite = finite_number(value)
            if finite is not None:
                points.append((f"validation_{name}", finite, stamp, entry.epoch))
    points += evaluation_points(result, start)
    for key, summary_of in _SUMMARY_METRICS.items():
        value = finite_number(summary_of(result))
        if value is not None:
            points.append((key, value, end, 0))
    for phase, seconds in result.phases_s.items():
        value = finite_number(seconds)
        if value is not None:
            points.append((f"phase_{phase}_s", value, end, 0))
    return points


def evaluation_points(result: TrainingResult, start_ms: int) -> list[Point]:
    """A run that evaluates inside epochs also logs every evaluation as one series per figure,
    `evaluation_<name>` (the target metric's name, `loss`, and the other validation metrics), with
    step = hundredths of an epoch (230: 30 % into the third epoch), so MLflow draws one curve through
    them. Timestamps place an evaluation at its share of its epoch's wall time."""
    if all(entry.mid_epoch_evaluations is None for entry in result.history):
        return []
    points: list[Point] = []
    elapsed = 0.0
    for entry in result.history:
        epoch_time = finite_number(entry.epoch_time_s) or 0.0
        for evaluation in entry.evaluations():
            share = (evaluation.position - entry.epoch + 1) / entry.fraction_trained
            stamp = start_ms + int((elapsed + share * epoch_time) * 1000)
            step = round(100 * evaluation.position)
            figures = {result.target.metric: evaluation.metric, "loss": evaluation.loss, **evaluation.metrics}
            for name, value in figures.items():
                finite = finite_number(value)
                if finite is not None:
                    points.append((f"evaluation_{name}", finite, stamp, step))
        elapsed += epoch_time
    return points


def table_columns(outcomes: list[ConfigurationOutcome]) -> tuple[list[str], list[str]]:
    """(params, metrics) of a configuration's run that the saved runs-table view shows as columns."""
    return ["world_size", "algorithm"], ["time_to_accuracy_s", "best_validation_metric", "throughput_samples_per_s"]


def child_plots(result: TrainingResult | None) -> dict[str, Callable[[Path], Path]]:
    """File name under `plots/` -> what draws it there: the curves, for a run with any epoch."""
    if result is None or not result.history:
        return {}
    return {"curves.png": lambda path: plot_curves(result, path)}


def configuration_row(outcome: ConfigurationOutcome) -> dict:
    """A configuration's time to accuracy and time split, for `configurations.csv`."""
    result = training_result(outcome)
    return {
        "goal_reached": outcome.goal_reached,
        "tta_s": finite_number(result.time_to_accuracy_s) if result else None,
        "wall_tta_s": finite_number(result.wall_time_to_accuracy_s) if result else None,
        "compute_s": finite_number(result.compute_s) if result else None,
        "communication_s": finite_number(result.communication_s) if result else None,
        "epochs_run": result.epochs_run if result else None,
    }


# The kind's rows and table under the names every kind module shares (dag_run.kind_of).
rows = comparison_rows
table = format_table
