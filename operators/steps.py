"""The pipeline's steps as plain functions: what each DAG task runs, testable without Airflow.

Data flow (one DAG run):
  validate request → prepare datasets → GX data gate → plan → launch (mapped, operators.launch) →
  GX results gate → MLflow → history (regressions) → report → cleanup → check

Steps hand each other small values (the request, the plan: ids and paths); everything large
lives on disk: datasets in the data root, bundles and validation reports in the run directory
(operators.run_directory). Each step reads the settings once, at its start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from operators.planning import Configuration, plan_configurations
from operators.request import BenchmarkRequest, InvalidRequest, config_overrides, validate_request
from operators.run_directory import RunDirectory
from tasks.runtime.results import RESULT_FILE, ResultError, ResultRecord, read_result
from tasks.settings import Settings

RESULT_VALIDATION_FILE = "validation.json"
INVALID_REQUESTS_EXPERIMENT = "invalid-requests"  # MLflow experiment mlbench/invalid-requests
# Steps that run after the launch whatever happened; `check` requires each to have finished.
RECORDING_STEPS = ("validate_results", "track", "compare_history", "report", "cleanup")


def log(message: str) -> None:
    print(f"[pipeline] {message}", flush=True)


def run_dir(run_id: str, settings: Settings | None = None) -> Path:
    return RunDirectory.of(run_id, settings).path


# ---------------------------------------------------------------------------------- request
def validate_request_step(params: dict[str, Any] | None, run_id: str, *, sweep_file: str | None = None
                          ) -> dict[str, Any]:
    """The validated request (from the trigger's params, or from sweep_file when given).

    An invalid one is written to the run directory with its reason before the error propagates, so
    the track step records it in MLflow (experiment mlbench/invalid-requests): nothing a user ran
    goes unrecorded.
    """
    directory = RunDirectory.of(run_id)
    directory.reset()
    try:
        if sweep_file is not None:
            params = load_sweep(sweep_file)
        request = validate_request(dict(params or {}))
        _check_local_capacity(request)
    except InvalidRequest as exc:
        directory.record_invalid_request(params if sweep_file is None else {"sweep_file": sweep_file}, str(exc))
        log(f"run directory: {directory.path}")
        raise
    log(f"request valid: tasks={list(request.tasks)} preset={request.preset} "
        f"world_sizes={list(request.world_sizes)} repeats={request.repeats} launcher={request.launcher}")
    directory.write_request(request.to_dict())
    log(f"run directory: {directory.path}")
    return request.to_dict()


def load_sweep(path: str) -> dict[str, Any]:
    """The request of a versioned sweep file (YAML: `version: 1`, `request: {...}`)."""
    import yaml

    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidRequest(f"cannot read sweep file {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("version") != 1 or not isinstance(document.get("request"), dict):
        raise InvalidRequest(f"sweep file {path} must hold `version: 1` and a `request:` mapping")
    return document["request"]


def load_request(run_id: str) -> dict[str, Any] | None:
    return RunDirectory.of(run_id).read_request()


def load_plan(run_id: str) -> list[Configuration] | None:
    return RunDirectory.of(run_id).read_plan()


def _check_local_capacity(request: BenchmarkRequest) -> None:
    """Local ranks beyond the CPU count would share cores and distort every timing."""
    import os

    cores = os.cpu_count() or 1
    if request.launcher == "local" and request.accelerator == "cpu" and max(request.world_sizes) > cores:
        raise InvalidRequest(
            f"invalid request field 'world_sizes': {max(request.world_sizes)} local ranks exceed the "
            f"{cores} CPU cores of this machine; valid here: 1 to {cores} (or launcher 'kubernetes')"
        )


# ---------------------------------------------------------------------------------- data
def datasets_of(request: BenchmarkRequest) -> dict[str, Any]:
    """Dataset name -> resolved config of its first task, once per dataset however many tasks share it."""
    from tasks.registry import kind_of, resolve

    datasets = {}
    for task in request.tasks:
        if not kind_of(task).needs_data:  # task 0 all-reduces random tensors
            continue
        config = resolve(task, request.preset, world_size=1, backend=request.backend[0],
                         device="cuda" if request.accelerator == "gpu" else "cpu",
                         algorithm=request.algorithm, overrides=config_overrides(request, task))
        datasets.setdefault(config.data.dataset, config)
    return datasets


def prepare_data_step(request: dict[str, Any], run_id: str) -> list[dict[str, str]]:
    from tasks.data import catalog

    settings = Settings.from_env()
    prepared = []
    for name, config in datasets_of(validate_request(request)).items():
        try:
            path = catalog.prepare_for(config.data, settings.data_root,
                                       log=lambda line: print(line, flush=True))  # lines carry "[data]"
        except Exception as exc:
            RunDirectory.of(run_id, settings).record_stop(f"data preparation failed for {name}: {exc}")
            raise
        prepared.append({"dataset": name, "path": str(path)})
    return prepared


def validate_data_step(request: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """Great Expectations gate: every dataset must pass before any training starts."""
    from operators.gates import ValidationFailed, validate_dataset
    from tasks.data import catalog
    from tasks.errors import DataError
    from tasks.workloads import get_workload

    settings = Settings.from_env()
    parsed = validate_request(request)
    directory = RunDirectory.of(run_id, settings)
    summaries, failed = [], []
    for name, config in datasets_of(parsed).items():
        arrays = catalog.load(name, settings.data_root)
        workload = get_workload(config.workload)
        vocabulary = (catalog.vocabulary_size(name, settings.data_root)
                      if catalog.kind(name) in catalog.VOCABULARY_KINDS else None)
        try:
            plans = {k: workload.shard_plan(config, arrays, k) for k in parsed.world_sizes}
        except ValueError as exc:  # more ranks than samples: no configuration could train
            message = f"dataset {name}: {exc}; lower the worker counts or the batch size, or use more data"
            directory.record_stop(message)
            raise DataError(message) from None
        report = validate_dataset(name, catalog.kind(name), arrays, num_classes=config.num_classes or 0,
                                  shard_plans=plans, vocabulary_size=vocabulary)
        directory.write_data_report(name, report.to_dict())
        log(report.summary())
        summaries.append({"dataset": name, "success": report.success, "summary": report.summary()})
        if not report.success:
            failed.append(report)
    if failed:
        raise ValidationFailed(failed[0])
    return summaries


# ---------------------------------------------------------------------------------- plan
def plan_step(request: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """The configurations to launch, as the small dicts the mapped launch task receives."""
    settings = Settings.from_env()
    plan = plan_configurations(validate_request(request), run_id=run_id, runs_root=settings.runs_root,
                               data_root=settings.data_root)
    RunDirectory.of(run_id, settings).write_plan(plan)
    log(f"planned {len(plan)} configuration(s): {', '.join(c.config_id for c in plan)}")
    return [c.to_dict() for c in plan]


def cleanup_step(run_id: str, *, dag_id: str) -> int:
    """Remove anything of this DAG run left on the cluster (a killed worker may not have cleaned up)."""
    settings = Settings.from_env()
    directory = RunDirectory.of(run_id, settings)
    request = directory.read_request()
    if not request or request.get("launcher") != "kubernetes":
        directory.mark_done("cleanup")
        return 0
    from operators.kubernetes.api import clients_from_hook
    from operators.kubernetes.run_cleanup import cleanup_run, label_selector
    from operators.kubernetes.spec import run_labels

    core, batch = clients_from_hook(settings.k8s_conn_id)
    deleted = cleanup_run(core, batch, namespace=settings.k8s_namespace,
                          label_selector=label_selector(run_labels(dag_id, run_id)))
    log(f"cleanup: {deleted} leftover object(s) of this run deleted")
    directory.mark_done("cleanup")
    return deleted


# ---------------------------------------------------------------------------------- results
def _read_bundle_document(configuration: Configuration) -> Any:
    """The bundle's result.json as JSON, for the gate to judge; None if there is none (or no JSON)."""
    try:
        return json.loads((configuration.output_dir / RESULT_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _read_bundle(configuration: Configuration) -> tuple[ResultRecord | None, str | None]:
    """The bundle's result.json as its kind's record, or None and why it could not be read (None
    and None when there is no result.json at all)."""
    if not (configuration.output_dir / RESULT_FILE).exists():
        return None, None
    try:
        return read_result(configuration.output_dir), None
    except (OSError, ResultError) as exc:
        return None, f"unreadable result.json: {exc}"


def validate_results_step(run_id: str) -> list[dict[str, Any]]:
    """Great Expectations gate on every bundle that exists; the verdict is stored beside it."""
    from operators.kinds import pipeline_kind

    directory = RunDirectory.of(run_id)
    verdicts = []
    for configuration in directory.read_plan() or []:
        document = _read_bundle_document(configuration)
        if document is None:
            verdicts.append({"config_id": configuration.config_id, "success": False,
                             "summary": "no result.json: the configuration never produced a bundle"})
            continue
        report = pipeline_kind(configuration.task).validate_result(
            document, expected_world_size=configuration.world_size, suite_name=f"result:{configuration.config_id}")
        (configuration.output_dir / RESULT_VALIDATION_FILE).write_text(
            json.dumps(report.to_dict(), indent=2, default=str))
        log(report.summary())
        verdicts.append({"config_id": configuration.config_id, "success": report.success,
                         "summary": report.summary()})
    directory.mark_done("validate_results")
    return verdicts


def outcomes_of(plan: list[Configuration]) -> list:
    """Everything known about each configuration, read back from its bundle directory."""
    from operators.gates.report import ValidationReport
    from operators.report import ConfigurationOutcome

    outcomes = []
    compares_backends = len({c.backend for c in plan}) > 1
    pools = _pools_of(plan)
    for c in plan:
        result, unreadable = _read_bundle(c)
        validation_path = c.output_dir / RESULT_VALIDATION_FILE
        validation = (ValidationReport.from_dict(json.loads(validation_path.read_text()))
                      if validation_path.exists() else None)
        reason = None
        if unreadable is not None:
            reason = unreadable
        elif result is None:
            reason = "no result.json: the configuration never produced a bundle"
        elif not result.completed:
            reason = result.reason
        elif validation is not None and not validation.success:
            reason = f"results failed validation: {validation.failures[:3]}"
        outcomes.append(ConfigurationOutcome(
            config_id=c.config_id, task=c.task, world_size=c.world_size, repeat=c.repeat,
            algorithm=c.algorithm, backend=c.backend, launcher=c.launcher, output=c.output,
            result=result, validation=validation, failure_reason=reason, compares_backends=compares_backends,
            pool=c.pool if c.pool in pools else None,
            price_per_hour=pools[c.pool].hourly_cost(c.world_size) if c.pool in pools else None,
        ))
    return outcomes


def _pools_of(plan: list[Configuration]) -> dict[str, Any]:
    """The pool profiles the plan's kubernetes configurations ran on (their prices: cost to accuracy)."""
    if not any(c.launcher == "kubernetes" and c.pool for c in plan):
        return {}
    from operators.kubernetes.pools import load_pools

    return load_pools(Settings.from_env().pools_file)


def track_step(run_id: str, *, dag_id: str) -> dict[str, Any]:
    """Log the whole run to MLflow, failed configurations and failed gates included."""
    from operators import tracking

    settings = Settings.from_env()
    directory = RunDirectory.of(run_id, settings)
    request, plan, invalid = directory.read_request(), directory.read_plan(), directory.invalid_request()
    if request is None and invalid is not None:
        ids = tracking.log_stopped_run(invalid["params"], dag_id=dag_id, dag_run_id=run_id, reason=invalid["reason"],
                                       experiments=[INVALID_REQUESTS_EXPERIMENT], stopped="invalid request",
                                       tracking_uri=settings.tracking_uri)
        log(f"request was invalid, nothing ran; recorded in MLflow at {settings.tracking_uri} "
            f"(experiment mlbench/{INVALID_REQUESTS_EXPERIMENT})")
    elif request is None:
        log("no request was recorded (validate_request did not run): nothing to track")
        ids = {}
    elif not plan:
        data_failures = directory.data_gate_failures()
        reason = (directory.stop_reason()
                  or (data_failures[0] if data_failures else "the run stopped before planning"))
        ids = tracking.log_stopped_run(request, dag_id=dag_id, dag_run_id=run_id, reason=reason,
                                       artifacts=directory.data_reports(), tracking_uri=settings.tracking_uri)
        log(f"run stopped before training ({reason}); recorded in MLflow at {settings.tracking_uri}")
    else:
        ids = tracking.log_benchmark(outcomes_of(plan), dag_id=dag_id, dag_run_id=run_id, request=request,
                                     tracking_uri=settings.tracking_uri)
        log(f"logged {len(plan)} configuration(s) to MLflow at {settings.tracking_uri}")
    for task, experiment_id in sorted(ids.get("experiments", {}).items()):
        view = ids.get("views", {}).get(task)
        log(f"MLflow UI, {task}: {tracking.experiment_url(settings.tracking_uri, experiment_id, view)}")
    directory.mark_done("track")
    return ids


def compare_history_step(run_id: str) -> dict[str, int]:
    """Every configuration of this run against its series' nightly history, from MLflow: verdicts in
    regressions.json, tags and trend plots on the runs (operators.regressions.nightly)."""
    from operators.regressions.nightly import compare_dag_run

    settings = Settings.from_env()
    directory = RunDirectory.of(run_id, settings)
    request, plan = directory.read_request(), directory.read_plan()
    counts = {"verdicts": 0, "regressions": 0, "improvements": 0}
    if request is not None and plan:
        policy = validate_request(request).regression_policy
        found = compare_dag_run(run_id, tracking_uri=settings.tracking_uri, policy=policy,
                                plots_dir=directory.path / "trends")
        found.write(directory.path)
        print(found.section(), flush=True)
        counts = {"verdicts": len(found.verdicts), "regressions": len(found.regressions),
                  "improvements": len(found.improvements)}
    directory.mark_done("compare_history")
    return counts


def report_step(run_id: str) -> str:
    from operators import report
    from operators.regressions.compare import RegressionReport

    settings = Settings.from_env()
    directory = RunDirectory.of(run_id, settings)
    plan = directory.read_plan()
    table = ""
    if plan:
        table = report.format_tables(outcomes_of(plan))
        regressions = RegressionReport.read(directory.path)
        if regressions is not None:
            table = f"{table}\n\n{regressions.section()}"
        directory.write_summary(table)
        print(table, flush=True)
        print(f"MLFLOW_TRACKING_URI={settings.tracking_uri}", flush=True)
    directory.mark_done("report")
    return table


def check_step(run_id: str) -> None:
    """The DAG run fails when any configuration failed, after everything has been recorded."""
    directory = RunDirectory.of(run_id)
    plan = directory.read_plan()
    if plan is None:
        raise RuntimeError("the run stopped before any configuration was planned; see the failed step")
    unfinished = directory.unfinished(RECORDING_STEPS)
    if unfinished:
        raise RuntimeError(f"step(s) {', '.join(unfinished)} did not finish: the run is not fully "
                           "validated, recorded or cleaned up; see their logs")
    problems = []
    failed = [o for o in outcomes_of(plan) if not o.succeeded]
    if failed:
        details = "; ".join(f"{o.config_id}: {o.failure_reason}" for o in failed[:5])
        problems.append(f"{len(failed)} of {len(plan)} configuration(s) failed: {details}")
    problems += _regression_problems(directory)
    if problems:
        raise RuntimeError("\n".join(problems))
    log(f"all {len(plan)} configuration(s) completed and passed validation")


def _regression_problems(directory: RunDirectory) -> list[str]:
    """The regressions against the history, one line each: a problem under `on_regression: fail`,
    logged as a warning under `warn`."""
    from operators.regressions.compare import RegressionReport

    found = RegressionReport.read(directory.path)
    request = directory.read_request()
    if found is None or not found.regressions or request is None:
        return []
    policy = validate_request(request).regression_policy
    lines = [f"{len(found.regressions)} regression(s) against the nightly history (on_regression: "
             f"{policy.on_regression}):", *(f"  {v.line()}" for v in found.regressions)]
    if policy.on_regression == "fail":
        return lines
    log("warning: " + "\n".join(lines))
    return []
