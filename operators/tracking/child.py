"""The run of one configuration (a child of the parent run of its DAG run and task): tag
`mlbench.role=configuration` and `mlflow.parentRunId`, named after the configuration id. The
resolved config as dotted params, provenance tags, the task kind's metrics and plots, and the
bundle's files as artifacts; FAILED with tag `failure_reason` when it failed, was invalid, or left
no result at all."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

from operators.report.dag_run import kind_of
from operators.report.outcome import ConfigurationOutcome
from operators.report.points import millis
from operators.tracking.store import CHILD_ROLE, ROLE_TAG, failed_on_error, log, open_run
from operators.tracking.values import MAX_PARAM_VALUE, flatten_params, tag_values, text
from operators.kinds import pipeline_kind
from tasks.runtime.bundle import CONFIG_FILE, TRANSLATIONS_FILE
from tasks.runtime.results import ResultRecord

__all__ = ["child_params", "child_tags", "log_configuration"]


def _accelerator(outcome: ConfigurationOutcome, request: dict) -> str:
    """The request's accelerator (cpu/gpu); without one, what the run used (or its backend)."""
    if request.get("accelerator"):
        return str(request["accelerator"])
    device = outcome.result.device if outcome.result is not None else None
    return "gpu" if device == "cuda" or (device is None and outcome.backend == "nccl") else "cpu"


def child_params(outcome: ConfigurationOutcome, request: dict) -> dict[str, str]:
    """The resolved config as dotted params, completed with what identifies the configuration."""
    params = flatten_params(outcome.result.config if outcome.result is not None else {})
    for key, value in (("task", outcome.task), ("algorithm", outcome.algorithm),
                       ("world_size", outcome.world_size), ("backend", outcome.backend),
                       ("launcher", outcome.launcher), ("accelerator", _accelerator(outcome, request)),
                       ("repeat", outcome.repeat)):
        params.setdefault(key, text(value, MAX_PARAM_VALUE))
    return params


def _provenance_tags(result: ResultRecord | None) -> dict[str, Any]:
    if result is None:
        return {}
    provenance = result.provenance_record
    tags: dict[str, Any] = {
        "config_hash": result.config_hash,
        "mlbench_id": result.mlbench_id,
        "preset": result.preset,
        "git_sha": provenance.git_sha,
        "mlflow.source.git.commit": provenance.git_sha,
        "image": provenance.image,
        "hardware": provenance.device_name,
        "node_type": provenance.node_type,
        "hostname": provenance.hostname,
        "torch": provenance.torch,
        "cuda": provenance.cuda,
        "nccl": provenance.nccl,
    }
    for backend, why in (provenance.backends_unavailable or {}).items():  # task 0: what it could not measure
        tags[f"backend_unavailable.{backend}"] = why
    return tags


def child_tags(outcome: ConfigurationOutcome, *, dag_id: str, dag_run_id: str,
               parent_id: str) -> dict[str, str]:
    """Identity (role, parent, DAG run, configuration), outcome, provenance and validation tags."""
    result = outcome.result
    goal_reached = "true" if outcome.goal_reached else "false"
    tags: dict[str, Any] = {
        ROLE_TAG: CHILD_ROLE,
        "mlflow.parentRunId": parent_id,
        "mlflow.runName": outcome.config_id,
        "dag_id": dag_id,
        "dag_run_id": dag_run_id,
        "config_id": outcome.config_id,
        "task": outcome.task,
        "algorithm": outcome.algorithm,
        "world_size": outcome.world_size,
        "repeat": outcome.repeat,
        "launcher": outcome.launcher,
        "output": outcome.output,
        "status": result.status if result is not None else "missing",
        "outcome": "succeeded" if outcome.succeeded else "failed",
        # Task 0 has no target, so no goal to reach.
        "goal_reached": goal_reached if pipeline_kind(outcome.task).has_target else None,
        **_provenance_tags(result),
        "failure_reason": outcome.failure_summary,
    }
    if outcome.validation is not None:
        tags["validation_suite"] = outcome.validation.suite
        tags["validation_success"] = "true" if outcome.validation.success else "false"
    return tag_values(tags)


def _log_bundle(mlflow_client, run_id: str, outcome: ConfigurationOutcome,
                plots: dict[str, Callable[[Path], Path]]) -> None:
    """The bundle's result.json (or the result as the pipeline read it), mllog.log, config.json, a
    translation run's sample translations and logs/, the validation report, and `plots` (file name ->
    what draws it) under plots/."""
    output = Path(outcome.output) if outcome.output else None
    result = outcome.result
    with tempfile.TemporaryDirectory(prefix="mlbench-track-") as scratch:
        scratch = Path(scratch)
        bundle_result = output / "result.json" if output else None
        if bundle_result is not None and bundle_result.is_file():
            mlflow_client.log_artifact(run_id, str(bundle_result))
        elif result is not None:
            (scratch / "result.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
            mlflow_client.log_artifact(run_id, str(scratch / "result.json"))
        if output is not None:
            for name in ("mllog.log", CONFIG_FILE, TRANSLATIONS_FILE):
                if (output / name).is_file():
                    mlflow_client.log_artifact(run_id, str(output / name))
            if (output / "logs").is_dir() and any((output / "logs").iterdir()):
                mlflow_client.log_artifacts(run_id, str(output / "logs"), "logs")
        if outcome.validation is not None:
            (scratch / "validation.json").write_text(
                json.dumps(outcome.validation.to_dict(), indent=2, sort_keys=True, default=str))
            mlflow_client.log_artifact(run_id, str(scratch / "validation.json"))
        for name, plot in plots.items():
            mlflow_client.log_artifact(run_id, str(plot(scratch / name)), "plots")


def log_configuration(mlflow_client, experiment_id: str, outcome: ConfigurationOutcome, found: list, *,
                      dag_id: str, dag_run_id: str, parent_id: str, request: dict) -> str:
    """Log one configuration's run (the oldest of `found`, else a new one); returns its run id."""
    kind = kind_of(outcome.task)
    result = outcome.result
    tags = child_tags(outcome, dag_id=dag_id, dag_run_id=dag_run_id, parent_id=parent_id)
    start = millis(result.started_at) if result is not None else None
    run, _ = open_run(mlflow_client, experiment_id, found, tags=tags, name=outcome.config_id, start_time=start)
    run_id = run.info.run_id
    with failed_on_error(mlflow_client, run_id):
        log(mlflow_client, run, params=child_params(outcome, request), tags=tags,
            metrics=kind.child_metrics(result),
            drop_tags=() if outcome.failure_summary else ("failure_reason",))
        _log_bundle(mlflow_client, run_id, outcome, kind.child_plots(result))
        end = millis(result.finished_at) if result is not None else None
        mlflow_client.set_terminated(run_id, status="FINISHED" if outcome.succeeded else "FAILED",
                                     end_time=end if end is not None and (start is None or end >= start) else None)
    return run_id
