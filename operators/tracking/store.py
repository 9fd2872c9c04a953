"""MLflow plumbing: where the store is, the client, experiments, finding runs again, and logging
to a run idempotently.

The MLflow client is used explicitly (`MlflowClient(uri)`): no global tracking URI and no active
run, since this runs inside Airflow workers. Runs are found again by their tags, and `log` skips
what a run already holds, so an Airflow retry never duplicates a run, a param or a metric point.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import Iterable

from operators.report.points import Point
from operators.tracking.values import MAX_TAG_VALUE, mlflow_key, text
from tasks.settings import Settings

__all__ = [
    "MLBENCH_HOME_ENV",
    "ROLE_TAG",
    "PARENT_ROLE",
    "CHILD_ROLE",
    "mlbench_home",
    "tracking_uri",
    "default_artifact_root",
    "client",
    "experiment",
    "find_runs",
    "open_run",
    "log",
    "failed_on_error",
]

logger = logging.getLogger(__name__)

MLBENCH_HOME_ENV = "MLBENCH_HOME"
# Every run says what it is: the parent run of (DAG run, task), or one configuration's run.
ROLE_TAG = "mlbench.role"
PARENT_ROLE = "benchmark"
CHILD_ROLE = "configuration"

_MAX_PARAMS_TAGS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000


# ---------------------------------------------------------------------------------------------
# Where things go
# ---------------------------------------------------------------------------------------------

def mlbench_home() -> Path:
    """The settings' home (`$MLBENCH_HOME`, default `<cwd>/.mlbench`): the local store lives here."""
    return Settings.from_env().home


def tracking_uri() -> str:
    """The settings' tracking URI (`$MLFLOW_TRACKING_URI`, else `$MLBENCH_HOME/mlflow.db`; dir created)."""
    settings = Settings.from_env()
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        settings.home.mkdir(parents=True, exist_ok=True)
    return settings.tracking_uri


def default_artifact_root() -> str:
    """The settings' artifact root (`$MLBENCH_HOME/artifacts`) as a file URI (created)."""
    path = Settings.from_env().artifact_root
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def _is_remote(uri: str) -> bool:
    """A tracking server chooses (and may proxy) artifact locations itself."""
    scheme = uri.split(":", 1)[0].lower() if "://" in uri or uri.startswith("databricks") else ""
    return scheme in ("http", "https") or scheme.startswith("databricks")


LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store by default


def experiment_url(tracking_uri: str, experiment_id: str, view: str | None = None) -> str:
    """The experiment's page in the MLflow UI, in its training-runs view, opened on the saved runs
    view `view` if given (operators.tracking.views). MLflow 3.17's UI opens an experiment in its
    GenAI view (traces, token usage) unless the link says `workflowType=machine_learning`: its
    workflow switch is always on in that version, and while it is, the UI ignores the
    experiment-kind tag and follows the link, else the last choice made in that browser.
    For a local store: the page as `mlflow ui` serves it by default."""
    base = tracking_uri.rstrip("/") if tracking_uri.lower().startswith(("http://", "https://")) else LOCAL_UI
    if view is None:
        return f"{base}/#/experiments/{experiment_id}?workflowType=machine_learning"
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={view}&workflowType=machine_learning"


def _as_uri(location: str) -> str:
    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", location):
        return location.rstrip("/")
    return Path(location).expanduser().resolve().as_uri()


def client(uri: str | None, artifact_root: str | None):
    """The MLflow client of `uri` (default: `tracking_uri()`) and the artifact root of new
    experiments (None: the tracking server decides)."""
    import mlflow

    uri = uri or tracking_uri()
    if artifact_root is not None:
        root: str | None = _as_uri(artifact_root)
    elif _is_remote(uri):
        root = None
    else:
        root = default_artifact_root()
    return mlflow.MlflowClient(tracking_uri=uri), root


# ---------------------------------------------------------------------------------------------
# Experiments and runs
# ---------------------------------------------------------------------------------------------

# MLflow 3 versions without the UI's workflow switch open an experiment without this tag in the
# GenAI view (traces, token usage); with it, in the training-runs view. 3.17 follows the link
# instead (experiment_url) but shows the tag as the kind in the experiment's header.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"


def experiment(mlflow_client, task: str, artifact_root: str | None) -> str:
    """The id of experiment `mlbench/<task>` (artifacts under `<artifact root>/<task>`): restored if
    deleted, created if missing."""
    from mlflow.exceptions import MlflowException

    name = f"mlbench/{task}"
    existing = mlflow_client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            mlflow_client.restore_experiment(existing.experiment_id)
        if existing.tags.get(EXPERIMENT_KIND_TAG) != TRAINING_KIND:
            mlflow_client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
        return existing.experiment_id
    location = None
    if artifact_root is not None:
        location = f"{artifact_root}/{re.sub(r'[^A-Za-z0-9_.-]', '_', task)}"
    try:
        return mlflow_client.create_experiment(name, artifact_location=location,
                                               tags={"mlbench.task": task, EXPERIMENT_KIND_TAG: TRAINING_KIND})
    except MlflowException:
        existing = mlflow_client.get_experiment_by_name(name)  # created meanwhile by a concurrent task
        if existing is None:
            raise
        return existing.experiment_id


def _quote(value: str) -> str | None:
    if "\\" in value:
        return None
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def find_runs(mlflow_client, experiment_id: str, tags: dict[str, str]) -> list:
    """Active runs of the experiment carrying all these tags, oldest first."""
    clauses = [f"tags.`{key}` = {quoted}" for key, value in tags.items()
               if (quoted := _quote(value)) is not None]
    runs, token = [], None
    while True:
        page = mlflow_client.search_runs([experiment_id], filter_string=" and ".join(clauses),
                                         max_results=1000, order_by=["attributes.start_time ASC"],
                                         page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return [run for run in runs if all(run.data.tags.get(k) == v for k, v in tags.items())]


def open_run(mlflow_client, experiment_id: str, found: list, *, tags: dict[str, str], name: str,
             start_time: int | None):
    """Reuse the oldest run found (set back to RUNNING while it is updated), or create one.
    Returns (run, reused)."""
    if found:
        if len(found) > 1:
            logger.warning("%d runs named %r match; updating the oldest, %s", len(found), name,
                           found[0].info.run_id)
        run = found[0]
        mlflow_client.update_run(run.info.run_id, status="RUNNING")
        return run, True
    run = mlflow_client.create_run(experiment_id, start_time=start_time, tags=tags, run_name=name)
    return run, False


@contextlib.contextmanager
def failed_on_error(mlflow_client, run_id: str):
    """A run this step opened never stays RUNNING: any error marks it FAILED with the reason."""
    try:
        yield
    except Exception as error:
        with contextlib.suppress(Exception):
            reason = text(f"tracking failed: {type(error).__name__}: {error}", MAX_TAG_VALUE)
            mlflow_client.set_tag(run_id, "failure_reason", reason)
            mlflow_client.set_terminated(run_id, status="FAILED")
        raise


# ---------------------------------------------------------------------------------------------
# Idempotent logging
# ---------------------------------------------------------------------------------------------

def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _new_params(run, params: dict[str, str]) -> tuple[list, list[str]]:
    """The params the run does not hold yet, and those it holds with another value (kept: MLflow
    params are immutable)."""
    from mlflow.entities import Param

    old = run.data.params
    conflicts = sorted(key for key, value in params.items() if key in old and old[key] != value)
    return [Param(key, value) for key, value in params.items() if key not in old], conflicts


def _new_metrics(mlflow_client, run, metrics: list[Point]) -> list:
    """The points whose step does not already have that value as its latest; a changed value gets
    a timestamp after the step's latest, so it becomes the step's value."""
    from mlflow.entities import Metric

    latest: dict[tuple[str, int], tuple[int, float]] = {}
    for key in {m[0] for m in metrics} & set(run.data.metrics):  # only a reused run has any
        for point in mlflow_client.get_metric_history(run.info.run_id, key):
            current = latest.get((key, point.step))
            if current is None or point.timestamp >= current[0]:
                latest[(key, point.step)] = (point.timestamp, point.value)
    new = []
    for key, value, stamp, step in metrics:
        current = latest.get((key, step))
        if current is not None:
            if current[1] == value:
                continue
            stamp = max(stamp, current[0] + 1)
        new.append(Metric(key, value, stamp, step))
    return new


def log(mlflow_client, run, *, params: dict[str, str], tags: dict[str, str],
        metrics: list[Point], drop_tags: Iterable[str] = ()) -> None:
    """Batch-log params, tags and metric points (keys made valid), skipping what the run already
    holds (Airflow retries): params already set (a different value is kept and reported in tag
    `mlbench.param_conflicts`), tags already at that value, and metric points whose step already
    has that value as its latest; then delete `drop_tags`. `run` is the run as read (or created)
    before this update."""
    from mlflow.entities import RunTag

    run_id = run.info.run_id
    new_params, conflicts = _new_params(run, params)
    if conflicts:
        logger.warning("run %s keeps its earlier values of params %s (MLflow params are immutable)",
                       run_id, ", ".join(conflicts))
        tags = {**tags, "mlbench.param_conflicts": text(",".join(conflicts), MAX_TAG_VALUE)}
    old_tags = run.data.tags
    new_tags = [RunTag(k, v) for k, v in tags.items() if old_tags.get(k) != v]
    metrics = [(mlflow_key(key), value, stamp, step) for key, value, stamp, step in metrics]
    new_metrics = _new_metrics(mlflow_client, run, metrics)

    for chunk in _chunks(new_params, _MAX_PARAMS_TAGS_PER_BATCH):
        mlflow_client.log_batch(run_id, params=chunk)
    for chunk in _chunks(new_tags, _MAX_PARAMS_TAGS_PER_BATCH):
        mlflow_client.log_batch(run_id, tags=chunk)
    for chunk in _chunks(new_metrics, _MAX_METRICS_PER_BATCH):
        mlflow_client.log_batch(run_id, metrics=chunk)
    for key in drop_tags:
        if key in old_tags:
            mlflow_client.delete_tag(run_id, key)
