"""Comparison of a benchmark DAG run's configurations: aggregation, tables, and what each task
kind logs. Pure logic: no MLflow and no Airflow here (`operators.tracking` logs what this package
computes); the drawing itself is `tasks.plots`, so importing this package does not import matplotlib.

Vocabulary:

- a *configuration* is one run of a DAG run: task x algorithm x world size x repeat, described by
  a `ConfigurationOutcome`;
- a *row* of the comparison aggregates the repeats of one (task, algorithm, world size).

Modules:

- `outcome`: `ConfigurationOutcome`, `olympic_mean`, `mlperf_score` (MLPerf's score of a set of
  repeats), grouping the repeats of a configuration;
- `training`, `communication`: one module per task kind (training tasks; task 0, the all-reduce
  sweep), each with the same functions: `rows`, `table`, `parent_metrics`, `parent_plots`,
  `child_metrics`, `child_plots`, `configuration_row`;
- `dag_run`: across kinds (`kind_of`, `configuration_rows`, `format_tables`);
- `tables`: fixed-width, markdown and CSV rendering of rows; `points`: metric points and clocks.
"""

from operators.report.communication import (
    communication_curves,
    communication_rows,
    format_communication_table,
    plot_communication,
    sweep_summary,
)
from operators.report.dag_run import configuration_rows, format_tables, kind_of
from operators.report.outcome import ConfigurationOutcome, mlperf_score, olympic_mean
from operators.report.tables import to_csv, to_markdown
from operators.report.training import comparison_rows, format_table, plot_time_split

__all__ = [
    "ConfigurationOutcome",
    "olympic_mean",
    "mlperf_score",
    "comparison_rows",
    "configuration_rows",
    "format_table",
    "to_markdown",
    "to_csv",
    "plot_time_split",
    "sweep_summary",
    "communication_rows",
    "communication_curves",
    "format_communication_table",
    "format_tables",
    "plot_communication",
    "kind_of",
]
