"""MLflow logging of a benchmark DAG run: one experiment per task, a parent run per (DAG run,
task) that carries the comparison, and a child run per configuration.

Layout in MLflow:

- experiment `mlbench/<task>` (artifact location `<artifact root>/<task>`);
- parent run (tag `mlbench.role=benchmark`, named after the DAG run): the request as params,
  the comparison metrics, the comparison tables and plots as artifacts, the comparison table as
  the run's description (`mlflow.note.content`); FAILED if any configuration failed;
- child run per configuration (tag `mlbench.role=configuration`, `mlflow.parentRunId`, named
  after the configuration id): the resolved config as dotted params, the task kind's metrics,
  provenance tags, the bundle files and plots as artifacts; FAILED with tag `failure_reason` when
  it failed, was invalid, or left no result at all.

Which metrics and plots a run gets is the task kind's (`operators.report.training`: per-epoch
metrics with step = epoch, speedups on the parent; `operators.report.communication`, task 0:
curves with step = tensor size in elements, per world size and dtype on the parent).

Modules: `store` (the client, experiments, finding runs again, idempotent logging), `values`
(MLflow's keys and limits), `parent` (`log_benchmark`), `child` (a configuration's run),
`stopped` (`log_stopped_run`). Logging is idempotent per DAG run: runs are found again by their
tags (dag_id, dag_run_id, config_id) and updated, so an Airflow retry of the tracking task never
duplicates a run, a param or a metric point.
"""

from operators.tracking.parent import log_benchmark
from operators.tracking.stopped import log_stopped_run
from operators.tracking.store import (
    MLBENCH_HOME_ENV,
    default_artifact_root,
    experiment_url,
    mlbench_home,
    tracking_uri,
)
from operators.tracking.values import flatten_params

__all__ = [
    "MLBENCH_HOME_ENV",
    "mlbench_home",
    "tracking_uri",
    "default_artifact_root",
    "experiment_url",
    "flatten_params",
    "log_benchmark",
    "log_stopped_run",
]
