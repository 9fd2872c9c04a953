"""The report of a whole DAG run, across task kinds: which kind reports a task (`kind_of`), one row
per configuration (`configuration_rows`) and the text tables of every kind (`format_tables`)."""

from __future__ import annotations

from types import ModuleType

from operators.kinds import pipeline_kind
from operators.report import training
from operators.report.outcome import ConfigurationOutcome, in_order

__all__ = ["kind_of", "configuration_rows", "format_tables"]


def kind_of(task: str) -> ModuleType:
    """The module that reports `task`: `communication` for task 0, `translation` for 4a and 4b,
    `training` for the others.

    All offer the same functions:

    - `rows(outcomes)`: the comparison rows; `table(rows)`: them as a fixed-width text table;
    - `parent_metrics(rows, outcomes, now)`, `parent_plots(rows, outcomes)`: what the parent run
      of (DAG run, task) logs (metric points; plot file name -> what draws it);
    - `child_metrics(result)`, `child_plots(result)`: what a configuration's run logs;
    - `configuration_row(outcome)`: the kind's columns of `configurations.csv`;
    - `table_columns(outcomes)`: the params and metrics shown in the MLflow runs-table view.
    """
    return pipeline_kind(task).report


def configuration_rows(outcomes: list[ConfigurationOutcome],
                       run_ids: dict[str, str] | None = None) -> list[dict]:
    """One row per configuration (no aggregation): what ran and how it ended.

    Training configurations show their time to accuracy and split; task 0's its small-message
    latency and peak bus bandwidth per dtype. `run_ids` (config_id -> tracking run id) adds a
    `run_id` column when given.
    """
    rows = []
    for o in in_order(outcomes):
        row = {
            "config_id": o.config_id,
            "task": o.task,
            "algorithm": o.algorithm,
            "world_size": o.world_size,
            "repeat": o.repeat,
            "backend": o.backend,
            "launcher": o.launcher,
            "status": "succeeded" if o.succeeded else "failed",
            **kind_of(o.task).configuration_row(o),
            "failure_reason": o.failure_summary,
        }
        if run_ids is not None:
            row["run_id"] = run_ids.get(o.config_id)
        rows.append(row)
    return rows


def format_tables(outcomes: list[ConfigurationOutcome]) -> str:
    """The report of a DAG run: one table per kind of task that ran, in the order tasks are listed
    (training, translation, then task 0); an empty training table when nothing ran."""
    from tasks.registry import TASKS

    listed = {name: position for position, name in enumerate(TASKS)}
    by_report: dict[ModuleType, list[ConfigurationOutcome]] = {}
    for outcome in sorted(in_order(outcomes), key=lambda o: listed.get(o.task, len(listed))):
        by_report.setdefault(kind_of(outcome.task), []).append(outcome)
    if not by_report:
        by_report[training] = []
    return "\n".join(report.table(report.rows(kept)) for report, kept in by_report.items())
