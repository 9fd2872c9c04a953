"""A series' history from MLflow, the system of record: the configuration runs of the same series in
the task's experiment (one paginated search, filtered by the series' tags), newest nights kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from operators.regressions.series import LoggedRun, SeriesKey, configuration_of
from operators.regressions.settings import DEFAULT_NIGHTS
from operators.tracking.store import CHILD_ROLE, ROLE_TAG, find_runs



def series_of(run: Any) -> SeriesKey:
    """The series of an MLflow configuration run (its tags and params as `operators.tracking.child` logs them)."""
    tags, params = run.data.tags, run.data.params
    return SeriesKey(task=tags.get("task", "?"), config_hash=tags.get("config_hash", "?"),
                     accelerator=params.get("accelerator", "?"),
                     hardware=tags.get("node_type") or tags.get("hardware") or "?")


def logged_run(run: Any) -> LoggedRun:
    tags = run.data.tags
    goal = tags.get("goal_reached")
    return LoggedRun(
        run_id=run.info.run_id, dag_run_id=tags.get("dag_run_id", "?"), start_ms=int(run.info.start_time or 0),
        succeeded=run.info.status == "FINISHED", goal_reached=None if goal is None else goal == "true",
        metrics=dict(run.data.metrics), git_sha=tags.get("git_sha"), image=tags.get("image"),
        configuration=configuration_of(tags.get("config_id", "")))


def experiment_history(mlflow_client: Any, experiment_id: str, *, dag_id: str | None = None,
                       judged: Sequence[Any] = ()) -> dict[SeriesKey, list[LoggedRun]]:
    """Every configuration run of the experiment by series, from one paginated search: those of
    `dag_id` (all DAGs when None), plus the `judged` MLflow runs (a manual run judged against the
    nightly's history). One search per experiment instead of one per series: a nightly of 100
    configurations spent most of its comparison in 100 searches."""
    tags = {ROLE_TAG: CHILD_ROLE, **({"dag_id": dag_id} if dag_id else {})}
    found = find_runs(mlflow_client, experiment_id, tags)
    seen = {run.info.run_id for run in found}
    grouped: dict[SeriesKey, list[LoggedRun]] = {}
    for run in [*found, *(run for run in judged if run.info.run_id not in seen)]:
        grouped.setdefault(series_of(run), []).append(logged_run(run))
    return grouped


def newest_nights(runs: list[LoggedRun], *, nights: int = DEFAULT_NIGHTS, until_ms: int | None = None
                  ) -> list[LoggedRun]:
    """The runs of the newest `nights` DAG runs up to `until_ms` (the judged night; later nights are
    left out), oldest first, repeats of a night included at the night's time."""
    runs = sorted((run for run in runs if until_ms is None or run.start_ms <= until_ms), key=lambda r: r.start_ms)
    night_start: dict[str, int] = {}
    for run in runs:
        night_start[run.dag_run_id] = min(night_start.get(run.dag_run_id, run.start_ms), run.start_ms)
    kept = set(sorted(night_start, key=lambda night: night_start[night])[-nights:])
    # a night's repeats share the night's time, so the detector sees them as one night
    return [dataclasses.replace(run, start_ms=night_start[run.dag_run_id]) for run in runs if run.dag_run_id in kept]


def history(mlflow_client: Any, experiment_id: str, key: SeriesKey, *, nights: int = DEFAULT_NIGHTS,
            until_ms: int | None = None, dag_id: str | None = None) -> list[LoggedRun]:
    """One series' history (`experiment_history`, then `newest_nights`)."""
    grouped = experiment_history(mlflow_client, experiment_id, dag_id=dag_id)
    return newest_nights(grouped.get(key, []), nights=nights, until_ms=until_ms)
