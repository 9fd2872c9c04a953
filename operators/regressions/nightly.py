"""A DAG run against the nightly history, through MLflow: find the run's configuration runs, read
each configuration's series history (the nightly's runs, plus this run's), judge every watched
metric (`compare.judge`), and record the verdicts on the runs (tags `regression`,
`regression_metrics` on every repeat; the parent's metrics `regressions` and `improvements`; a
trend plot per configuration, `plots/trend.png`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from operators.regressions.compare import RegressionReport, judge
from operators.regressions.history import experiment_history, logged_run, newest_nights, series_of
from operators.regressions.series import (
    TRAINING_METRICS,
    LoggedRun,
    SeriesKey,
    WatchedMetric,
    configuration_of,
    sweep_metrics,
)
from operators.regressions.settings import HISTORY_DAG_ID, RegressionPolicy
from operators.tracking.store import CHILD_ROLE, PARENT_ROLE, ROLE_TAG, client, find_runs

TREND_PLOT = "trend.png"  # under the configuration runs' plots/


def watched_metrics(task: str) -> tuple[WatchedMetric, ...]:
    """What a task's series watch: its kind's metrics (operators.kinds)."""
    from operators.kinds import pipeline_kind

    return TRAINING_METRICS if pipeline_kind(task).has_target else sweep_metrics()


def compare_dag_run(dag_run_id: str, *, tracking_uri: str | None, policy: RegressionPolicy | None = None,
                    history_dag_id: str = HISTORY_DAG_ID, plots_dir: Path | None = None) -> RegressionReport:
    """Every configuration of `dag_run_id` (in every `mlbench/*` experiment) against its series'
    history: the runs of `history_dag_id` and of this DAG run, newest `policy.nights` nights. With
    `plots_dir`, a trend plot per configuration is drawn there and logged to its runs."""
    mlflow_client, _ = client(tracking_uri, None)
    policy = policy or RegressionPolicy()
    report = RegressionReport()
    for experiment in mlflow_client.search_experiments(filter_string="name LIKE 'mlbench/%'"):
        children = find_runs(mlflow_client, experiment.experiment_id, {ROLE_TAG: CHILD_ROLE, "dag_run_id": dag_run_id})
        configurations: dict[str, list[Any]] = {}
        for child in children:
            configurations.setdefault(configuration_of(child.data.tags.get("config_id", child.info.run_id)),
                                      []).append(child)
        judged = RegressionReport()
        by_series = experiment_history(mlflow_client, experiment.experiment_id, dag_id=history_dag_id,
                                       judged=children) if children else {}
        for config_id, runs in sorted(configurations.items()):
            key, night = series_of(runs[0]), [logged_run(run) for run in runs]
            past = newest_nights(by_series.get(key, []), nights=policy.nights,
                                 until_ms=max(run.start_ms for run in night))
            verdicts, trends = judge(config_id, night, key, past, watched_metrics(key.task), policy.detector)
            judged.verdicts += verdicts
            judged.trends.update(trends)
            note = replaced_series(config_id, key, past, by_series)
            if note and len({run.dag_run_id for run in past}) < policy.detector.min_history_nights:
                judged.notes.append(note)
        _record(mlflow_client, experiment.experiment_id, dag_run_id, judged, plots_dir=plots_dir)
        report.verdicts += judged.verdicts
        report.trends.update(judged.trends)
        report.notes += judged.notes
    return report


def replaced_series(config_id: str, key: SeriesKey, past: list[LoggedRun],
                    by_series: dict[SeriesKey, list[LoggedRun]]) -> str | None:
    """A note when this configuration ran under another config hash before its series began (a
    changed hyperparameter, preset or task version starts a new series, with no history)."""
    if not past:
        return None
    first = min(run.start_ms for run in past)
    earlier = [(run.start_ms, other) for other, runs in by_series.items() if other != key
               and (other.task, other.accelerator, other.hardware) == (key.task, key.accelerator, key.hardware)
               for run in runs if run.configuration == config_id and run.start_ms < first]
    if not earlier:
        return None
    _, previous = max(earlier, key=lambda pair: pair[0])
    nights = len({run.dag_run_id for run in past})
    return (f"{config_id}: config hash changed ({previous.config_hash[:12]} -> {key.config_hash[:12]}): a new series "
            f"starts, {nights} night(s) of history so far")


def _record(mlflow_client: Any, experiment_id: str, dag_run_id: str, judged: RegressionReport, *,
            plots_dir: Path | None) -> None:
    """Tags and a trend plot on each judged configuration run; counts on the experiment's parent run."""
    from mlflow.entities import RunTag

    if not judged.verdicts:
        return
    by_config = judged.by_config()
    drawn: dict[str, Path] = {}
    if plots_dir is not None:
        from operators.regressions.plots import plot_all

        jobs = [(judged.trends_to_plot(config_id), plots_dir / config_id / TREND_PLOT, config_id)
                for config_id in by_config]
        drawn = dict(zip(by_config, plot_all(jobs), strict=True))
    for config_id, verdicts in by_config.items():
        regressed = ",".join(v.metric for v in verdicts if v.is_regression)
        for run_id in verdicts[0].run_ids:
            mlflow_client.log_batch(run_id, tags=[RunTag("regression", "true" if regressed else "false"),
                                                  RunTag("regression_metrics", regressed or "-")])
            if config_id in drawn:
                mlflow_client.log_artifact(run_id, str(drawn[config_id]), "plots")
    for parent in find_runs(mlflow_client, experiment_id, {ROLE_TAG: PARENT_ROLE, "dag_run_id": dag_run_id}):
        mlflow_client.log_metric(parent.info.run_id, "regressions", float(len(judged.regressions)))
        mlflow_client.log_metric(parent.info.run_id, "improvements", float(len(judged.improvements)))
