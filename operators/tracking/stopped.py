"""A DAG run that stopped before any configuration was planned (a failed data gate, an invalid
request): a FAILED parent run per task, the same run `log_benchmark` would make and update."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from operators.report.points import now_ms
from operators.tracking.parent import log_request, open_parent, parent_tags
from operators.tracking.store import client, experiment, log
from operators.tracking.values import flatten_params

__all__ = ["log_stopped_run"]


def log_stopped_run(request: dict, *, dag_id: str, dag_run_id: str, reason: str,
                    artifacts: Iterable[str | os.PathLike] = (), tracking_uri: str | None = None,
                    artifact_root: str | None = None, experiments: list[str] | None = None,
                    stopped: str = "before planning") -> dict:
    """Record a DAG run that stopped before any configuration was planned (a failed data gate, an
    invalid request).

    For each task of the request (or each name of `experiments`: an invalid request's task names
    may not be tasks): the parent run of (DAG run, task), as `log_benchmark` would make
    it (and found again the same way, so a later `log_benchmark` for the same DAG run updates it),
    with the request as params, status FAILED, tag `failure_reason`, and `artifacts` (the data
    validation reports) under `validation/`. Returns the same shape as `log_benchmark`, with no
    child runs.
    """
    mlflow_client, root = client(tracking_uri, artifact_root)
    tasks = experiments or [str(t) for t in (request or {}).get("tasks") or []] or ["unknown"]
    files = [Path(a) for a in artifacts]
    answer: dict[str, dict[str, str]] = {"experiments": {}, "parent_runs": {}, "child_runs": {}}
    for task in dict.fromkeys(tasks):
        experiment_id = experiment(mlflow_client, task, root)
        tags = parent_tags(task, dag_id=dag_id, dag_run_id=dag_run_id, request=request, status="failed",
                           failure_reason=reason, stopped=stopped)
        parent = open_parent(mlflow_client, experiment_id, tags, dag_id=dag_id, dag_run_id=dag_run_id)
        run_id = parent.info.run_id
        log(mlflow_client, parent, params=flatten_params(request or {}), tags=tags,
            metrics=[("configurations", 0.0, now_ms(), 0)])
        log_request(mlflow_client, run_id, request)
        for path in files:
            if path.is_file():
                mlflow_client.log_artifact(run_id, str(path), "validation")
        mlflow_client.set_terminated(run_id, status="FAILED")
        answer["experiments"][task] = experiment_id
        answer["parent_runs"][task] = run_id
    return answer
