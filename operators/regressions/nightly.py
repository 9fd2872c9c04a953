"""A DAG run against the nightly history, through MLflow: find the run's configuration runs, read
each one's series history, judge every watched metric (`compare.judge`), and record the verdicts
on the runs (tags `regression`, `regression_metrics`; the parent's metric `regressions`).
"""

from __future__ import annotations

from typing import Any

from operators.regressions.compare import RegressionReport, judge
from operators.regressions.detector import DetectorSettings
from operators.regressions.history import DEFAULT_NIGHTS, history, logged_run, series_of
from operators.regressions.series import TRAINING_METRICS, WatchedMetric, sweep_metrics
from operators.tracking.store import CHILD_ROLE, PARENT_ROLE, ROLE_TAG, client, find_runs


def watched_metrics(task: str) -> tuple[WatchedMetric, ...]:
    """What a task's series watch: its kind's metrics (operators.kinds)."""
    from operators.kinds import pipeline_kind

    return TRAINING_METRICS if pipeline_kind(task).has_target else sweep_metrics()


def compare_dag_run(dag_run_id: str, *, tracking_uri: str | None, nights: int = DEFAULT_NIGHTS,
                    settings: DetectorSettings | None = None) -> RegressionReport:
    """Every configuration run of `dag_run_id` (in every `mlbench/*` experiment) against its series."""
    mlflow_client, _ = client(tracking_uri, None)
    settings = settings or DetectorSettings()
    report = RegressionReport()
    for experiment in mlflow_client.search_experiments(filter_string="name LIKE 'mlbench/%'"):
        children = find_runs(mlflow_client, experiment.experiment_id, {ROLE_TAG: CHILD_ROLE, "dag_run_id": dag_run_id})
        judged = RegressionReport()
        for child in children:
            key, current = series_of(child), logged_run(child)
            runs = history(mlflow_client, experiment.experiment_id, key, nights=nights, until_ms=current.start_ms)
            verdicts, trends = judge(child.data.tags.get("config_id", child.info.run_id), current, key,
                                     runs, watched_metrics(key.task), settings)
            judged.verdicts += verdicts
            judged.trends.update(trends)
        _record(mlflow_client, experiment.experiment_id, dag_run_id, judged)
        report.verdicts += judged.verdicts
        report.trends.update(judged.trends)
    return report


def _record(mlflow_client: Any, experiment_id: str, dag_run_id: str, judged: RegressionReport) -> None:
    """Tags on each judged configuration run and the regression count on the experiment's parent run."""
    regressed: dict[str, list[str]] = {verdict.run_id: [] for verdict in judged.verdicts}
    for verdict in judged.regressions:
        regressed[verdict.run_id].append(verdict.metric)
    for run_id, metrics in regressed.items():
        mlflow_client.set_tag(run_id, "regression", "true" if metrics else "false")
        mlflow_client.set_tag(run_id, "regression_metrics", ",".join(metrics) or "-")
    if not regressed:
        return
    for parent in find_runs(mlflow_client, experiment_id, {ROLE_TAG: PARENT_ROLE, "dag_run_id": dag_run_id}):
        mlflow_client.log_metric(parent.info.run_id, "regressions", float(len(judged.regressions)))
