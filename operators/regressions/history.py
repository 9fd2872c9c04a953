"""A series' history from MLflow, the system of record: the configuration runs of the same series in
the task's experiment (one paginated search, filtered by the series' tags), newest nights kept.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from operators.regressions.series import LoggedRun, SeriesKey
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
        metrics=dict(run.data.metrics), git_sha=tags.get("git_sha"), image=tags.get("image"))


def history(mlflow_client: Any, experiment_id: str, key: SeriesKey, *, nights: int = DEFAULT_NIGHTS,
            until_ms: int | None = None, dag_id: str | None = None, judged_dag_run: str | None = None
            ) -> list[LoggedRun]:
    """The series' runs of its newest `nights` DAG runs up to `until_ms` (the judged night; later
    nights are left out), oldest first, repeats of a night included. With `dag_id`, only that DAG's
    runs and those of `judged_dag_run` (a manual run judged against the nightly's history)."""
    tags = {ROLE_TAG: CHILD_ROLE, "task": key.task, "config_hash": key.config_hash}
    runs = [logged_run(run) for run in find_runs(mlflow_client, experiment_id, tags)
            if series_of(run) == key
            and (dag_id is None or run.data.tags.get("dag_id") == dag_id
                 or run.data.tags.get("dag_run_id") == judged_dag_run)]
    runs = [run for run in runs if until_ms is None or run.start_ms <= until_ms]
    night_start: dict[str, int] = {}
    for run in runs:
        night_start[run.dag_run_id] = min(night_start.get(run.dag_run_id, run.start_ms), run.start_ms)
    kept = set(sorted(night_start, key=lambda night: night_start[night])[-nights:])
    # a night's repeats share the night's time, so the detector sees them as one night
    return [dataclasses.replace(run, start_ms=night_start[run.dag_run_id]) for run in runs if run.dag_run_id in kept]
