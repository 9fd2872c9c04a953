"""The parent run of (DAG run, task): tag `mlbench.role=benchmark`, named after the DAG run. The
request as params, the task kind's comparison metrics, the comparison tables and plots as
artifacts, the comparison table as the run's description (`mlflow.note.content`); FAILED if any
configuration failed. Its configurations' runs are its children (`operators.tracking.child`).

The same parent run records a DAG run that stopped before planning (`operators.tracking.stopped`):
its tags are built here for both (`parent_tags`), so a later `log_benchmark` finds and updates it.
"""

from __future__ import annotations

import datetime
import json
import logging
import tempfile
from typing import NamedTuple
from pathlib import Path

from operators.report.dag_run import configuration_rows, kind_of
from operators.report.outcome import ConfigurationOutcome, primary_algorithm
from operators.report.points import now_ms
from operators.report.tables import to_csv, to_markdown
from operators.tracking.child import log_configuration
from operators.tracking.store import (
    CHILD_ROLE,
    PARENT_ROLE,
    ROLE_TAG,
    client,
    experiment,
    failed_on_error,
    find_runs,
    log,
    open_run,
)
from operators.tracking.values import MAX_TAG_VALUE, flatten_params, tag_values, text
from operators.tracking.views import save_runs_view

__all__ = ["parent_identity", "parent_tags", "open_parent", "log_request", "log_benchmark"]

logger = logging.getLogger(__name__)


def parent_identity(dag_id: str, dag_run_id: str) -> dict[str, str]:
    """The tags the parent run of a DAG run is found again by (in its task's experiment)."""
    return {ROLE_TAG: PARENT_ROLE, "dag_id": dag_id, "dag_run_id": dag_run_id}


def parent_tags(task: str, *, dag_id: str, dag_run_id: str, request: dict | None,
                **status: str | None) -> dict[str, str]:
    """The parent run's tags: its identity, name (`parent_run_name`) and task, plus `status` (tags
    such as `status`, `failure_reason`, `stopped`; None ones are left out)."""
    return tag_values({**parent_identity(dag_id, dag_run_id), "task": task,
                       "mlflow.runName": parent_run_name(task, dag_run_id, request), **status})


def parent_run_name(task: str, dag_run_id: str, request: dict | None) -> str:
    """What ran, for the runs table: `cifar10-resnet20 demo w1,2 manual 2026-11-30 09:40` (task,
    preset, worker counts, how the DAG run was triggered, when, UTC); the raw DAG run id when it
    is not Airflow's `<trigger>__<ISO time>`."""
    request = request or {}
    sizes = ",".join(str(size) for size in request.get("world_sizes") or [])
    trigger, _, stamp = dag_run_id.partition("__")
    try:
        when = datetime.datetime.fromisoformat(stamp).astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        trigger, when = dag_run_id, ""
    parts = [task, str(request.get("preset") or ""), f"w{sizes}" if sizes else "", trigger, when]
    return " ".join(part for part in parts if part)


def _benchmark_status(outcomes: list[ConfigurationOutcome]) -> dict[str, str | None]:
    """The parent's status tags after its configurations ran: what ran, and what failed."""
    results = [o.result for o in outcomes if o.result is not None]
    shas = {r.provenance_record.git_sha for r in results} - {None}
    failed = [o.config_id for o in outcomes if not o.succeeded]
    return {
        "mlbench_id": next((r.mlbench_id for r in results if r.mlbench_id), None),
        "primary_algorithm": primary_algorithm(outcomes),
        "git_sha": shas.pop() if len(shas) == 1 else None,
        "status": "failed" if failed else "completed",
        "failed_configurations": ",".join(failed) if failed else None,
        "failure_reason": f"{len(failed)} of {len(outcomes)} configuration(s) failed" if failed else None,
    }


def open_parent(mlflow_client, experiment_id: str, tags: dict[str, str], *, dag_id: str, dag_run_id: str):
    """The parent run of the DAG run in this experiment, found again or created (see `store.open_run`)."""
    found = find_runs(mlflow_client, experiment_id, parent_identity(dag_id, dag_run_id))
    run, _ = open_run(mlflow_client, experiment_id, found, tags=tags, name=tags["mlflow.runName"], start_time=None)
    return run


def log_request(mlflow_client, run_id: str, request: dict | None) -> None:
    """The request as the artifact `request.json`."""
    with tempfile.TemporaryDirectory(prefix="mlbench-track-") as scratch:
        request_file = Path(scratch) / "request.json"
        request_file.write_text(json.dumps(request or {}, indent=2, sort_keys=True, default=str))
        mlflow_client.log_artifact(run_id, str(request_file))


def _log_children(mlflow_client, experiment_id: str, outcomes: list[ConfigurationOutcome], *, dag_id: str,
                  dag_run_id: str, parent_id: str, request: dict) -> tuple[dict[str, str], list[str]]:
    """Every configuration's run: {config_id: run id}, and what could not be logged."""
    # Looked up even for a new parent: children outlive a parent deleted by hand, and are
    # re-attached to the new one (their mlflow.parentRunId tag is rewritten).
    existing: dict[str, list] = {}
    for run in find_runs(mlflow_client, experiment_id,
                         {ROLE_TAG: CHILD_ROLE, "dag_id": dag_id, "dag_run_id": dag_run_id}):
        existing.setdefault(run.data.tags.get("config_id"), []).append(run)
    child_runs: dict[str, str] = {}
    errors: list[str] = []
    for outcome in outcomes:
        try:
            child_runs[outcome.config_id] = log_configuration(
                mlflow_client, experiment_id, outcome, existing.get(outcome.config_id, []),
                dag_id=dag_id, dag_run_id=dag_run_id, parent_id=parent_id, request=request)
        except Exception as error:  # log the others, then fail the task so Airflow retries
            logger.exception("could not log configuration %s", outcome.config_id)
            errors.append(f"{outcome.config_id}: {type(error).__name__}: {error}")
    return child_runs, errors


def _log_comparison(mlflow_client, parent_id: str, task: str, dag_run_id: str,
                    outcomes: list[ConfigurationOutcome], child_runs: dict[str, str]) -> None:
    """The task kind's comparison: metrics, the markdown table as the run's description, and
    `comparison/` (the rows as csv/md/txt, configurations.csv/md) and `plots/` as artifacts."""
    kind = kind_of(task)
    rows = kind.rows(outcomes)
    table = to_markdown(rows)
    note = f"Benchmark `{task}`, DAG run `{dag_run_id}`\n\n{table}"
    log(mlflow_client, mlflow_client.get_run(parent_id), params={},
        tags={"mlflow.note.content": text(note, MAX_TAG_VALUE)},
        metrics=kind.parent_metrics(rows, outcomes, now_ms()))
    configurations = configuration_rows(outcomes, child_runs)
    files = {"comparison.csv": to_csv(rows), "comparison.md": table, "comparison.txt": kind.table(rows),
             "configurations.csv": to_csv(configurations), "configurations.md": to_markdown(configurations)}
    with tempfile.TemporaryDirectory(prefix="mlbench-track-") as scratch:
        comparison, plot_dir = Path(scratch) / "comparison", Path(scratch) / "plots"
        comparison.mkdir()
        for name, content in files.items():
            (comparison / name).write_text(content)
        for name, plot in kind.parent_plots(rows, outcomes).items():
            plot(plot_dir / name)
        mlflow_client.log_artifacts(parent_id, str(comparison), "comparison")
        mlflow_client.log_artifacts(parent_id, str(plot_dir), "plots")


class LoggedTask(NamedTuple):
    experiment_id: str
    parent_id: str
    child_runs: dict[str, str]  # config_id -> run id
    view: str  # the key of the experiment's saved runs-table view
    errors: list[str]


def _log_task(mlflow_client, task: str, outcomes: list[ConfigurationOutcome], *, dag_id: str,
              dag_run_id: str, request: dict, artifact_root: str | None) -> LoggedTask:
    """The parent run of (DAG run, task), its children, and the experiment's saved view."""
    experiment_id = experiment(mlflow_client, task, artifact_root)
    failed = any(not o.succeeded for o in outcomes)
    tags = parent_tags(task, dag_id=dag_id, dag_run_id=dag_run_id, request=request,
                       **_benchmark_status(outcomes))
    parent = open_parent(mlflow_client, experiment_id, tags, dag_id=dag_id, dag_run_id=dag_run_id)
    parent_id = parent.info.run_id
    with failed_on_error(mlflow_client, parent_id):
        log(mlflow_client, parent, params=flatten_params(request or {}), tags=tags, metrics=[],
            drop_tags=("stopped",) if failed else ("stopped", "failed_configurations", "failure_reason"))
        child_runs, errors = _log_children(mlflow_client, experiment_id, outcomes, dag_id=dag_id,
                                           dag_run_id=dag_run_id, parent_id=parent_id, request=request or {})
        _log_comparison(mlflow_client, parent_id, task, dag_run_id, outcomes, child_runs)
        params, metrics = kind_of(task).table_columns(outcomes)
        view = save_runs_view(mlflow_client, experiment_id, params=params, metrics=metrics)
        log_request(mlflow_client, parent_id, request)
        mlflow_client.set_terminated(parent_id, status="FAILED" if failed or errors else "FINISHED")
    return LoggedTask(experiment_id, parent_id, child_runs, view, errors)


def log_benchmark(outcomes: list[ConfigurationOutcome], *, dag_id: str, dag_run_id: str,
                  request: dict, tracking_uri: str | None = None,
                  artifact_root: str | None = None) -> dict:
    """Log a DAG run's configurations to MLflow; safe to call again for the same DAG run.

    `tracking_uri`: default `tracking_uri()` ($MLFLOW_TRACKING_URI, else the local SQLite store).
    `artifact_root`: where new experiments keep artifacts (`<root>/<task>`; a path or a URI).
    Default: `$MLBENCH_HOME/artifacts` for a local or database store, the server's choice for an
    http(s)/Databricks tracking server. Existing experiments keep their location.

    Returns `{"experiments": {task: experiment_id}, "parent_runs": {task: run_id},
    "child_runs": {config_id: run_id}, "views": {task: key of the experiment's saved runs-table view}}`
    (for `experiment_url`). Raises ValueError on duplicate config ids, and
    RuntimeError after logging everything else if some configuration could not be logged.
    """
    ids = [o.config_id for o in outcomes]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate configuration ids: {', '.join(duplicates)}")
    mlflow_client, root = client(tracking_uri, artifact_root)

    by_task: dict[str, list[ConfigurationOutcome]] = {}
    for outcome in outcomes:
        by_task.setdefault(outcome.task, []).append(outcome)
    answer: dict[str, dict[str, str]] = {"experiments": {}, "parent_runs": {}, "child_runs": {}, "views": {}}
    errors: list[str] = []
    for task, group in by_task.items():
        logged = _log_task(mlflow_client, task, group, dag_id=dag_id, dag_run_id=dag_run_id,
                           request=request, artifact_root=root)
        answer["experiments"][task] = logged.experiment_id
        answer["parent_runs"][task] = logged.parent_id
        answer["views"][task] = logged.view
        answer["child_runs"].update(logged.child_runs)
        errors += logged.errors
    if errors:
        raise RuntimeError("could not log to MLflow: " + "; ".join(errors))
    return answer
