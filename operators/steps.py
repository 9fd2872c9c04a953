"""The pipeline's steps as plain functions: what each DAG task runs, testable without Airflow.

Data flow (one DAG run):
  validate request → prepare datasets → GX data gate → plan → launch (mapped) →
  GX results gate → MLflow → report → check

Steps hand each other small values (the request, the plan: ids and paths); everything large
lives on disk: datasets in the data root, bundles and validation reports in the run directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from operators.planning import plan_configurations, safe_name
from operators.request import BenchmarkRequest, config_overrides, default_roots, validate_request
from tasks.errors import ExitCode

DATA_VALIDATION_DIR = "data_validation"
RESULT_VALIDATION_FILE = "validation.json"


def log(message: str) -> None:
    print(f"[pipeline] {message}", flush=True)


def run_dir(run_id: str) -> Path:
    return default_roots()[1] / safe_name(run_id)


def _request(request: dict[str, Any]) -> BenchmarkRequest:
    return validate_request(request)


# ---------------------------------------------------------------------------------- request
DEFAULT_RUN_TIMEOUT_S = 6 * 3600
DEFAULT_RENDEZVOUS_S = 600
STEP_MARKERS = "steps"
STOPPED_FILE = "stopped.txt"
INVALID_REQUEST_FILE = "invalid_request.json"
INVALID_REQUESTS_EXPERIMENT = "invalid-requests"  # MLflow experiment mlbench/invalid-requests
# Steps that run after the launch whatever happened; `check` requires each to have finished.
RECORDING_STEPS = ("validate_results", "track", "report", "cleanup")


def _reset_run_dir(run_id: str) -> None:
    """A DAG run cleared and run again must not read the previous attempt's request, plan or markers."""
    import shutil

    directory = run_dir(run_id)
    for name in ("request.json", "plan.json", STOPPED_FILE, INVALID_REQUEST_FILE):
        (directory / name).unlink(missing_ok=True)
    shutil.rmtree(directory / STEP_MARKERS, ignore_errors=True)
    shutil.rmtree(directory / DATA_VALIDATION_DIR, ignore_errors=True)


def mark_done(run_id: str, step: str) -> None:
    markers = run_dir(run_id) / STEP_MARKERS
    markers.mkdir(parents=True, exist_ok=True)
    (markers / f"{step}.done").touch()


def _record_stop(run_id: str, message: str) -> None:
    """Why the run stopped before training: the track step records it in MLflow."""
    directory = run_dir(run_id)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / STOPPED_FILE).write_text(message)


def validate_request_step(params: dict[str, Any] | None, run_id: str, *, sweep_file: str | None = None
                          ) -> dict[str, Any]:
    """The validated request (from the trigger's params, or from sweep_file when given).

    An invalid one is written to the run directory with its reason before the error propagates, so
    the track step records it in MLflow (experiment mlbench/invalid-requests): nothing a user ran
    goes unrecorded.
    """
    from operators.request import InvalidRequest

    _reset_run_dir(run_id)
    try:
        if sweep_file is not None:
            params = load_sweep(sweep_file)
        request = validate_request(dict(params or {}))
        _check_local_capacity(request)
    except InvalidRequest as exc:
        directory = run_dir(run_id)
        directory.mkdir(parents=True, exist_ok=True)
        record = {"params": params if sweep_file is None else {"sweep_file": sweep_file}, "reason": str(exc)}
        (directory / INVALID_REQUEST_FILE).write_text(json.dumps(record, indent=2, default=str))
        log(f"run directory: {directory}")
        raise
    log(f"request valid: tasks={list(request.tasks)} preset={request.preset} "
        f"world_sizes={list(request.world_sizes)} repeats={request.repeats} launcher={request.launcher}")
    directory = run_dir(run_id)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "request.json").write_text(json.dumps(request.to_dict(), indent=2))
    log(f"run directory: {directory}")
    return request.to_dict()


def load_sweep(path: str) -> dict[str, Any]:
    """The request of a versioned sweep file (YAML: `version: 1`, `request: {...}`)."""
    import yaml

    from operators.request import InvalidRequest

    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidRequest(f"cannot read sweep file {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("version") != 1 or not isinstance(document.get("request"), dict):
        raise InvalidRequest(f"sweep file {path} must hold `version: 1` and a `request:` mapping")
    return document["request"]


def load_request(run_id: str) -> dict[str, Any] | None:
    path = run_dir(run_id) / "request.json"
    return json.loads(path.read_text()) if path.exists() else None


def load_plan(run_id: str) -> list[dict[str, Any]] | None:
    path = run_dir(run_id) / "plan.json"
    return json.loads(path.read_text()) if path.exists() else None


def _check_local_capacity(request: BenchmarkRequest) -> None:
    """Local ranks beyond the CPU count would share cores and distort every timing."""
    from operators.request import InvalidRequest

    cores = os.cpu_count() or 1
    if request.launcher == "local" and request.accelerator == "cpu" and max(request.world_sizes) > cores:
        raise InvalidRequest(
            f"invalid request field 'world_sizes': {max(request.world_sizes)} local ranks exceed the "
            f"{cores} CPU cores of this machine; valid here: 1 to {cores} (or launcher 'kubernetes')"
        )


# ---------------------------------------------------------------------------------- data
def datasets_of(request: BenchmarkRequest) -> dict[str, Any]:
    """Dataset name -> resolved data spec, once per dataset however many tasks share it."""
    from tasks.registry import is_communication_task, resolve

    datasets = {}
    for task in request.tasks:
        if is_communication_task(task):  # task 0 all-reduces random tensors: no dataset
            continue
        config = resolve(task, request.preset, world_size=1, backend=request.backend[0],
                         device="cuda" if request.accelerator == "gpu" else "cpu",
                         algorithm=request.algorithm, overrides=config_overrides(request, task))
        datasets.setdefault(config.data.dataset, config)
    return datasets


def prepare_data_step(request: dict[str, Any], run_id: str) -> list[dict[str, str]]:
    from tasks.data import catalog

    data_root = default_roots()[0]
    prepared = []
    for name, config in datasets_of(_request(request)).items():
        try:
            path = catalog.prepare(name, data_root, url=config.data.url, md5=config.data.md5,
                                   log=lambda line: print(line, flush=True))  # lines carry "[data]"
        except Exception as exc:
            _record_stop(run_id, f"data preparation failed for {name}: {exc}")
            raise
        prepared.append({"dataset": name, "path": str(path)})
    return prepared


def validate_data_step(request: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """Great Expectations gate: every dataset must pass before any training starts."""
    from operators.validation import ValidationFailed, validate_dataset
    from tasks.data import catalog
    from tasks.errors import DataError
    from tasks.runtime.sharding import column_plan, shard_plan

    parsed = _request(request)
    data_root = default_roots()[0]
    out_dir = run_dir(run_id) / DATA_VALIDATION_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries, failed = [], []
    for name, config in datasets_of(parsed).items():
        arrays = catalog.load(name, data_root)
        vocabulary = None
        try:
            if catalog.kind(name) == "text":
                vocabulary = catalog.vocabulary_size(name, data_root)
                plans = {k: column_plan(len(arrays["train_tokens"]), len(arrays["val_tokens"]), k,
                                        config.batch_size, config.eval_batch_size or config.batch_size)
                         for k in parsed.world_sizes}
            else:
                num_train = min(len(arrays["train_labels"]), config.data.max_train_samples or len(arrays["train_labels"]))
                num_val = min(len(arrays["val_labels"]), config.data.max_val_samples or len(arrays["val_labels"]))
                plans = {k: shard_plan(num_train, num_val, k, config.seed) for k in parsed.world_sizes}
        except ValueError as exc:  # more ranks than samples: no configuration could train
            message = f"dataset {name}: {exc}; lower the worker counts or the batch size, or use more data"
            _record_stop(run_id, message)
            raise DataError(message) from None
        report = validate_dataset(name, arrays, num_classes=config.num_classes or 0, shard_plans=plans,
                                  vocabulary_size=vocabulary)
        (out_dir / f"{name}.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
        log(report.summary())
        summaries.append({"dataset": name, "success": report.success, "summary": report.summary()})
        if not report.success:
            failed.append(report)
    if failed:
        raise ValidationFailed(failed[0])
    return summaries


# ---------------------------------------------------------------------------------- plan + launch
def plan_step(request: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    data_root, runs_root = default_roots()
    plan = plan_configurations(_request(request), run_id=run_id, runs_root=runs_root, data_root=data_root)
    (run_dir(run_id)).mkdir(parents=True, exist_ok=True)
    (run_dir(run_id) / "plan.json").write_text(json.dumps(plan, indent=2))
    log(f"planned {len(plan)} configuration(s): {', '.join(c['config_id'] for c in plan)}")
    return plan


def launch_configuration(
    configuration: dict[str, Any],
    *,
    run_timeout_s: float,
    rendezvous_timeout_s: float,
    stop: threading.Event | None = None,
    dag_id: str = "mlbench_benchmark",
) -> dict[str, Any]:
    """Run one configuration with its launcher; returns a small summary. Always leaves a result.json."""
    from tasks.errors import UserError
    from tasks.registry import resolve
    from tasks.runtime.launcher import collect_result, launch_local, prepare_output
    from tasks.runtime.results import failed_result, write_result

    c = configuration
    output = Path(c["output"])
    output.mkdir(parents=True, exist_ok=True)
    config = resolve(c["task"], c["preset"], world_size=c["world_size"], backend=c["backend"],
                     device=c["device"], algorithm=c["algorithm"], overrides=c["overrides"])
    try:
        if c["launcher"] == "kubernetes":
            # Pods write into this directory as another uid in the volume's group: setgid, group-writable.
            os.chmod(output, 0o2775)
            prepare_output(config, output)
            returncode, message = _launch_on_kubernetes(c, dag_id=dag_id, run_timeout_s=run_timeout_s,
                                                        rendezvous_timeout_s=rendezvous_timeout_s, stop=stop)
            result = collect_result(config, output, message)
        else:
            with _local_machine_lock():
                log(f"launching {c['config_id']}: {c['world_size']} local rank(s), output {output}")
                outcome, result = launch_local(
                    config, output=output, data_root=Path(c["data_root"]), overrides=c["overrides"],
                    timeout_s=run_timeout_s, rendezvous_timeout_s=rendezvous_timeout_s, stop=stop,
                )
            returncode = outcome.returncode
    except UserError as exc:  # e.g. the directory holds another configuration's checkpoints
        result = failed_result(config, str(exc))
        write_result(output, result)
        returncode = exc.exit_code
    except Exception as exc:  # the cluster API, a missing connection...: still a record, then fail
        write_result(output, failed_result(config, f"launch failed: {type(exc).__name__}: {exc}"))
        raise
    summary = {
        "config_id": c["config_id"],
        "output": str(output),
        "status": result["status"],
        "reason": result["reason"],
        "goal_reached": result.get("goal_reached"),  # None for task 0, which has no target
        "time_to_accuracy_s": result.get("time_to_accuracy_s"),
        # Bad input or data (exit 2, 3) and divergence fail the same way again: no retry.
        # Crashes, timeouts and kills (preempted nodes) are retried and resume from the checkpoint.
        "retryable": returncode not in (ExitCode.OK, ExitCode.BAD_INPUT, ExitCode.DATA) and not str(result["reason"]).startswith("diverged"),
    }
    detail = (f", goal reached: {result['goal_reached']}, time to accuracy: {result['time_to_accuracy_s']}"
              if "goal_reached" in result else "")  # task 0 has no target
    log(f"{c['config_id']}: {result['status']}{detail}")
    return summary


@contextlib.contextmanager
def _local_machine_lock():
    """One local configuration at a time per machine, whatever the Airflow pools say: two would
    share the cores and distort both timings."""
    import fcntl

    path = Path(os.environ.get("MLBENCH_HOME", Path.cwd() / ".mlbench")) / "locks" / "local-launcher.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for the local benchmark already running on this machine ({path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def kubernetes_settings() -> dict[str, Any]:
    """Where and how the kubernetes launcher works: from the deployment's environment."""
    return {
        "namespace": os.environ.get("MLBENCH_K8S_NAMESPACE", "mlbench"),
        "conn_id": os.environ.get("MLBENCH_K8S_CONN_ID", "kubernetes_default"),
        # Autoscaled GPU pools can take many minutes to add a node: size this to your cluster.
        "startup_timeout_s": float(os.environ.get("MLBENCH_K8S_STARTUP_TIMEOUT_S", 1200)),
    }


def rendezvous_timeout(requested_s: float, settings: dict[str, Any]) -> float:
    """Early ranks wait at the rendezvous while the autoscaler adds nodes for the late ones: they
    must not give up before the launcher's own (clearer) startup timeout does."""
    return max(requested_s, settings["startup_timeout_s"])


def _launch_on_kubernetes(c: dict[str, Any], *, dag_id: str, run_timeout_s: float, rendezvous_timeout_s: float,
                          stop: threading.Event | None) -> tuple[int, str]:
    from operators.kubernetes.launcher import KubernetesJobLauncher, clients_from_hook
    from operators.kubernetes.pools import get_pool
    from operators.kubernetes.spec import build_manifests, default_image

    settings = kubernetes_settings()
    pool = get_pool(c["pool"])
    rendezvous_timeout_s = rendezvous_timeout(rendezvous_timeout_s, settings)
    manifests = build_manifests(c, pool, image=default_image(pool), dag_id=dag_id, dag_run_id=c["run_id"],
                                namespace=settings["namespace"], run_timeout_s=int(run_timeout_s),
                                rendezvous_timeout_s=int(rendezvous_timeout_s))
    log(f"launching {c['config_id']}: Indexed Job {manifests[1]['metadata']['name']} of {c['world_size']} pod(s) "
        f"on pool {pool.name} in namespace {settings['namespace']}")
    core, batch = clients_from_hook(settings["conn_id"])
    launcher = KubernetesJobLauncher(core, batch, namespace=settings["namespace"],
                                     startup_timeout_s=settings["startup_timeout_s"], run_timeout_s=run_timeout_s,
                                     log=lambda line: print(line, flush=True))
    outcome = launcher.run(manifests, stop=stop)
    codes = {code for code in outcome.exit_codes.values() if code is not None}
    if outcome.returncode == 1 and codes and codes <= {ExitCode.BAD_INPUT, ExitCode.DATA}:
        return max(codes), outcome.message  # every failed rank rejected its input or data: no retry
    return outcome.returncode, outcome.message


def cleanup_step(run_id: str, *, dag_id: str) -> int:
    """Remove anything of this DAG run left on the cluster (a killed worker may not have cleaned up)."""
    request = load_request(run_id)
    if not request or request.get("launcher") != "kubernetes":
        mark_done(run_id, "cleanup")
        return 0
    from operators.kubernetes.launcher import cleanup_run, clients_from_hook, label_selector
    from operators.kubernetes.spec import run_labels

    settings = kubernetes_settings()
    core, batch = clients_from_hook(settings["conn_id"])
    deleted = cleanup_run(core, batch, namespace=settings["namespace"],
                          label_selector=label_selector(run_labels(dag_id, run_id)))
    log(f"cleanup: {deleted} leftover object(s) of this run deleted")
    mark_done(run_id, "cleanup")
    return deleted


# ---------------------------------------------------------------------------------- results
def _read_bundle(configuration: dict[str, Any]) -> dict[str, Any] | None:
    path = Path(configuration["output"]) / "result.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def validate_results_step(run_id: str) -> list[dict[str, Any]]:
    """Great Expectations gate on every bundle that exists; the verdict is stored beside it."""
    from operators.validation import validate_communication_result, validate_result
    from tasks.registry import is_communication_task

    verdicts = []
    for configuration in load_plan(run_id) or []:
        result = _read_bundle(configuration)
        if result is None:
            verdicts.append({"config_id": configuration["config_id"], "success": False,
                             "summary": "no result.json: the configuration never produced a bundle"})
            continue
        validate = validate_communication_result if is_communication_task(configuration["task"]) else validate_result
        report = validate(result, expected_world_size=configuration["world_size"],
                          suite_name=f"result:{configuration['config_id']}")
        (Path(configuration["output"]) / RESULT_VALIDATION_FILE).write_text(
            json.dumps(report.to_dict(), indent=2, default=str))
        log(report.summary())
        verdicts.append({"config_id": configuration["config_id"], "success": report.success,
                         "summary": report.summary()})
    mark_done(run_id, "validate_results")
    return verdicts


def outcomes_of(plan: list[dict[str, Any]]) -> list:
    """Everything known about each configuration, read back from its bundle directory."""
    from operators.report import ConfigurationOutcome

    outcomes = []
    compares_backends = len({c["backend"] for c in plan or []}) > 1
    for c in plan or []:
        result = _read_bundle(c)
        validation_path = Path(c["output"]) / RESULT_VALIDATION_FILE
        validation = json.loads(validation_path.read_text()) if validation_path.exists() else None
        reason = None
        if result is None:
            reason = "no result.json: the configuration never produced a bundle"
        elif result["status"] != "completed":
            reason = result["reason"]
        elif validation is not None and not validation["success"]:
            reason = f"results failed validation: {validation.get('failures', [])[:3]}"
        outcomes.append(ConfigurationOutcome(
            config_id=c["config_id"], task=c["task"], world_size=c["world_size"], repeat=c["repeat"],
            algorithm=c["algorithm"], backend=c["backend"], launcher=c["launcher"], output=c["output"],
            result=result, validation=validation, failure_reason=reason, compares_backends=compares_backends,
        ))
    return outcomes


def track_step(run_id: str, *, dag_id: str) -> dict[str, Any]:
    """Log the whole run to MLflow, failed configurations and failed gates included."""
    from operators import tracking

    request, plan = load_request(run_id), load_plan(run_id)
    invalid = run_dir(run_id) / INVALID_REQUEST_FILE
    if request is None and invalid.exists():
        record = json.loads(invalid.read_text())
        ids = tracking.log_stopped_run(record["params"], dag_id=dag_id, dag_run_id=run_id, reason=record["reason"],
                                       experiments=[INVALID_REQUESTS_EXPERIMENT], stopped="invalid request")
        log(f"request was invalid, nothing ran; recorded in MLflow at {tracking.tracking_uri()} "
            f"(experiment mlbench/{INVALID_REQUESTS_EXPERIMENT})")
        mark_done(run_id, "track")
        return ids
    if request is None:
        log("no request was recorded (validate_request did not run): nothing to track")
        mark_done(run_id, "track")
        return {}
    if not plan:
        stopped = run_dir(run_id) / STOPPED_FILE
        data_failures = _data_gate_failures(run_id)
        reason = (stopped.read_text() if stopped.exists() else
                  data_failures[0] if data_failures else "the run stopped before planning")
        ids = tracking.log_stopped_run(request, dag_id=dag_id, dag_run_id=run_id, reason=reason,
                                       artifacts=sorted((run_dir(run_id) / DATA_VALIDATION_DIR).glob("*.json")))
        log(f"run stopped before training ({reason}); recorded in MLflow at {tracking.tracking_uri()}")
    else:
        ids = tracking.log_benchmark(outcomes_of(plan), dag_id=dag_id, dag_run_id=run_id, request=request)
        log(f"logged {len(plan)} configuration(s) to MLflow at {tracking.tracking_uri()}")
    mark_done(run_id, "track")
    return ids


def _data_gate_failures(run_id: str) -> list[str]:
    failures = []
    for path in sorted((run_dir(run_id) / DATA_VALIDATION_DIR).glob("*.json")):
        report = json.loads(path.read_text())
        if not report["success"]:
            failures.append(f"data validation failed: {'; '.join(report['failures'][:3])}")
    return failures


def report_step(run_id: str) -> str:
    from operators import report, tracking

    plan = load_plan(run_id)
    table = ""
    if plan:
        table = report.format_tables(outcomes_of(plan))
        (run_dir(run_id) / "summary.txt").write_text(table + "\n")
        print(table, flush=True)
        print(f"MLFLOW_TRACKING_URI={tracking.tracking_uri()}", flush=True)
    mark_done(run_id, "report")
    return table


def check_step(run_id: str) -> None:
    """The DAG run fails when any configuration failed, after everything has been recorded."""
    plan = load_plan(run_id)
    if plan is None:
        raise RuntimeError("the run stopped before any configuration was planned; see the failed step")
    markers = run_dir(run_id) / STEP_MARKERS
    unfinished = [step for step in RECORDING_STEPS if not (markers / f"{step}.done").exists()]
    if unfinished:
        raise RuntimeError(f"step(s) {', '.join(unfinished)} did not finish: the run is not fully "
                           "validated, recorded or cleaned up; see their logs")
    failed = [o for o in outcomes_of(plan or []) if not o.succeeded]
    if failed:
        details = "; ".join(f"{o.config_id}: {o.failure_reason}" for o in failed[:5])
        raise RuntimeError(f"{len(failed)} of {len(plan)} configuration(s) failed: {details}")
    log(f"all {len(plan or [])} configuration(s) completed and passed validation")
