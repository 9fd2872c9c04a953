"""Reading logged benchmark runs back (`mlbench compare`, `mlbench rerun`): a DAG run's parent runs
and their configuration runs, each with its result.json as the typed record.

A DAG run is found by its `dag_run_id` tag across the `mlbench/*` experiments (one parent run per
task), or by the id of one of its parent runs. Problems the user can fix (no store there, an
unknown id, a run of the wrong role) are `UserError`s naming what is valid.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from operators.compare.pairing import BenchmarkSide
from operators.compare.samples import ConfigurationKey, RunSample
from operators.rerun import LoggedConfiguration
from operators.tracking.store import CHILD_ROLE, PARENT_ROLE, ROLE_TAG, find_runs, tracking_uri
from tasks.errors import UserError
from tasks.registry import TASKS, kind_of
from tasks.runtime.results import RESULT_FILE, ResultError, ResultRecord, parse_result

__all__ = ["Store", "open_store", "benchmark_side", "logged_configuration"]

_RUN_ID = re.compile(r"[0-9a-f]{32}")
_SHOWN = 5  # recent DAG runs named in an error


@dataclass(frozen=True)
class Store:
    client: Any  # mlflow.MlflowClient
    uri: str


def _local_path(uri: str) -> Path | None:
    """The file behind a local store (SQLite database, file store); None for a server."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    return None if "://" in uri else Path(uri)


def open_store(uri: str | None) -> Store:
    """The store at `uri` (default: the settings' tracking URI); a local one must exist already
    (opening a missing SQLite store would create an empty one)."""
    import mlflow

    uri = uri or tracking_uri()
    path = _local_path(uri)
    if path is not None and not path.exists():
        raise UserError(f"no MLflow store at {uri} ({path} does not exist); give --tracking-uri or set "
                        "MLFLOW_TRACKING_URI to the store the DAG runs were logged to")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # stderr stays for errors
    return Store(mlflow.MlflowClient(tracking_uri=uri), uri)


def _unreadable(store: Store, exc: Any) -> UserError:
    return UserError(f"cannot read the MLflow store at {store.uri}: {exc.message}")


def _experiment_ids(store: Store) -> list[str]:
    from mlflow.exceptions import MlflowException

    try:
        found = store.client.search_experiments(filter_string="name LIKE 'mlbench/%'")
    except MlflowException as exc:
        raise _unreadable(store, exc) from None
    return [e.experiment_id for e in found]


def _get_run(store: Store, run_id: str) -> Any | None:
    """The run, or None when the store has no such run (a store it cannot read is an error)."""
    from mlflow.exceptions import MlflowException

    try:
        return store.client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise _unreadable(store, exc) from None


def _recent_dag_runs(store: Store, experiment_ids: list[str]) -> str:
    runs = store.client.search_runs(experiment_ids, filter_string=f"tags.`{ROLE_TAG}` = '{PARENT_ROLE}'",
                                    max_results=50, order_by=["attributes.start_time DESC"]) if experiment_ids else []
    names = list(dict.fromkeys(r.data.tags.get("dag_run_id") for r in runs if r.data.tags.get("dag_run_id")))
    return ", ".join(names[:_SHOWN]) or "none"


def _role_line(run: Any) -> str:
    tags = run.data.tags
    where = f" (config {tags['config_id']}, DAG run {tags.get('dag_run_id')})" if tags.get("config_id") else ""
    return f"run {run.info.run_id} is a {tags.get(ROLE_TAG) or 'non-mlbench'} run{where}"


def parent_runs(store: Store, reference: str) -> list[Any]:
    """The parent runs a reference names: a parent run id, or a DAG run id (one per task)."""
    experiment_ids = _experiment_ids(store)
    if _RUN_ID.fullmatch(reference):
        run = _get_run(store, reference)
        if run is not None and run.data.tags.get(ROLE_TAG) == PARENT_ROLE:
            return [run]
        if run is not None:
            parent = run.data.tags.get("mlflow.parentRunId")
            hint = f"; its parent run is {parent}" if parent else ""
            raise UserError(f"{_role_line(run)}, not a parent run; compare takes a DAG run id or a parent run id "
                            f"(tag {ROLE_TAG}={PARENT_ROLE}){hint}")
    parents = [run for experiment_id in experiment_ids
               for run in find_runs(store.client, experiment_id, {ROLE_TAG: PARENT_ROLE, "dag_run_id": reference})]
    if not parents:
        raise UserError(f"no DAG run or parent run '{reference}' in {store.uri}; give a DAG run id or a parent run "
                        f"id; recent DAG runs there: {_recent_dag_runs(store, experiment_ids)}")
    return parents


def configuration_runs(store: Store, parent: Any) -> list[Any]:
    return find_runs(store.client, parent.info.experiment_id,
                     {ROLE_TAG: CHILD_ROLE, "mlflow.parentRunId": parent.info.run_id})


def logged_result(store: Store, run_id: str) -> tuple[ResultRecord | None, str | None]:
    """The run's result.json artifact as its record, or (None, why it cannot be read); (None, None)
    when the run logged none (it left no result: its failure_reason says why)."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="mlbench-lookup-") as scratch:
        try:
            path = store.client.download_artifacts(run_id, RESULT_FILE, scratch)
        except (MlflowException, OSError):
            return None, None
        try:
            return parse_result(json.loads(Path(path).read_text())), None
        except (ValueError, ResultError) as exc:
            return None, f"unreadable {RESULT_FILE}: {exc}"


def run_sample(store: Store, run: Any) -> RunSample:
    """A configuration run as compare reads it; its identity from its result, else from its tags."""
    tags, params = run.data.tags, run.data.params
    result, problem = logged_result(store, run.info.run_id)
    if result is not None:
        key = ConfigurationKey(result.task, result.algorithm, result.world_size, result.backend)
    else:
        world_size = tags.get("world_size") or params.get("world_size") or "0"
        key = ConfigurationKey(tags.get("task", "?"), tags.get("algorithm", "?"),
                               int(world_size) if world_size.isdigit() else 0, params.get("backend", "?"))
    has_target = kind_of(key.task).has_target if key.task in TASKS else True
    failure = tags.get("failure_reason") or problem or (None if result is not None else "no result.json")
    return RunSample(run_id=run.info.run_id, config_id=tags.get("config_id", run.info.run_id), key=key,
                     has_target=has_target, result=result, failure=failure)


def benchmark_side(store: Store, reference: str) -> BenchmarkSide:
    """One side of a comparison: the DAG run a reference names, with every configuration run."""
    parents = parent_runs(store, reference)
    dag_runs = sorted({p.data.tags.get("dag_run_id") for p in parents} - {None})
    samples = tuple(run_sample(store, child) for parent in parents for child in configuration_runs(store, parent))
    return BenchmarkSide(reference=reference, dag_run_id=dag_runs[0] if len(dag_runs) == 1 else None,
                         parent_run_ids=tuple(p.info.run_id for p in parents), samples=samples)


def _configuration_run(store: Store, run_id: str) -> Any:
    """The run, which must be a configuration run; the error for a parent run names its children."""
    run = _get_run(store, run_id)
    if run is None:
        raise UserError(f"no run '{run_id}' in {store.uri}; rerun takes the id of a configuration run "
                        f"(tag {ROLE_TAG}={CHILD_ROLE}), a child of a DAG run's parent run")
    role = run.data.tags.get(ROLE_TAG)
    if role == CHILD_ROLE:
        return run
    children = ", ".join(f"{c.info.run_id} ({c.data.tags.get('config_id')})"
                         for c in configuration_runs(store, run)) if role == PARENT_ROLE else ""
    raise UserError(f"{_role_line(run)}, not a configuration run; rerun takes the id of a configuration run "
                    f"(tag {ROLE_TAG}={CHILD_ROLE})" + (f": one of {children}" if children else ""))


def logged_configuration(store: Store, run_id: str) -> LoggedConfiguration:
    """A configuration run with what a rerun needs: its result.json, launcher, accelerator, pool,
    git sha and image."""
    run = _configuration_run(store, run_id)
    tags, params = run.data.tags, run.data.params
    result, problem = logged_result(store, run_id)
    if result is None:
        raise UserError(f"run {run_id} has no readable {RESULT_FILE} ({problem or 'none was logged'}); "
                        "there is no logged config to rebuild")
    parent_id = tags.get("mlflow.parentRunId")
    parent = _get_run(store, parent_id) if parent_id else None
    pool = parent.data.params.get("pool") if parent is not None else None  # the parent's params: the request
    return LoggedConfiguration(
        run_id=run_id, config_id=tags.get("config_id"), result=result,
        config_hash=tags.get("config_hash") or result.config_hash,
        launcher=tags.get("launcher") or params.get("launcher") or "local", accelerator=params.get("accelerator"),
        pool=None if pool in (None, "", "None") else pool, git_sha=tags.get("git_sha"), image=tags.get("image"))
