"""Launching one planned configuration: locally (ranks as processes, one configuration per
machine at a time) or on Kubernetes (an Indexed Job + headless Service). Always leaves a
result.json in the configuration's bundle directory, whatever happened."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.errors import ExitCode, UserError
from tasks.settings import Settings

if TYPE_CHECKING:  # the Airflow operator imports this module when a DAG file is parsed: keep it light
    from operators.kubernetes.indexed_job import KubernetesJobLauncher, KubernetesJobOutcome
    from operators.kubernetes.spec import LaunchTarget
    from operators.planning import Configuration
    from tasks.runtime.results import ResultRecord

DEFAULT_RUN_TIMEOUT_S = 6 * 3600
DEFAULT_RENDEZVOUS_S = 600
LOCAL_LOCK_FILE = "local-launcher.lock"


def log(message: str) -> None:
    print(f"[pipeline] {message}", flush=True)


@dataclass(frozen=True)
class LaunchSummary:
    """What the launch task returns (its XCom) and decides retries on."""

    config_id: str
    output: str
    status: str
    reason: str | None
    goal_reached: bool | None  # None for a task without a target (task 0)
    # Bad input or data and divergence fail the same way again: no retry. Crashes, timeouts and
    # kills (preempted nodes) are retried and resume from the checkpoint.
    retryable: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def as_task_result(self) -> dict[str, Any]:
        """The launch task's XCom, or the exception that fails it: for good (bad input or data,
        divergence: a retry would fail the same way) or retryable (resumes from the checkpoint)."""
        if self.status == "completed":
            return self.to_dict()
        from airflow.sdk.exceptions import AirflowFailException

        message = f"configuration {self.config_id} failed: {self.reason}"
        raise RuntimeError(message) if self.retryable else AirflowFailException(message)


def launch_configuration(
    configuration: Configuration,
    *,
    run_timeout_s: float,
    rendezvous_timeout_s: float,
    stop: threading.Event | None = None,
    dag_id: str = "mlbench_benchmark",
    settings: Settings | None = None,
) -> LaunchSummary:
    """Run one configuration with its launcher; always leaves a result.json."""
    settings = settings or Settings.from_env()
    c = configuration
    c.output_dir.mkdir(parents=True, exist_ok=True)
    try:
        with recording_failures(c):
            if c.launcher == "kubernetes":
                returncode, result = _launch_on_kubernetes(c, settings, dag_id=dag_id, run_timeout_s=run_timeout_s,
                                                           rendezvous_timeout_s=rendezvous_timeout_s, stop=stop)
            else:
                returncode, result = _launch_locally(c, _resolved(c), settings, run_timeout_s=run_timeout_s,
                                                     rendezvous_timeout_s=rendezvous_timeout_s, stop=stop)
    except UserError as exc:  # e.g. the directory holds another configuration's checkpoints
        return refused(c, exc)
    return _summary(c, result, returncode)


@contextlib.contextmanager
def recording_failures(c: Configuration) -> Iterator[None]:
    """An unexpected error (the cluster API, a missing connection...) still leaves a failed
    result.json naming it, then fails the task."""
    from tasks.runtime.results import failed_result, write_result

    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        c.output_dir.mkdir(parents=True, exist_ok=True)
        write_result(c.output_dir, failed_result(_resolved(c), f"launch failed: {type(exc).__name__}: {exc}"))
        raise


def refused(c: Configuration, exc: UserError) -> LaunchSummary:
    """The summary (and failed result.json) of a launch refused for bad input: not retried."""
    from tasks.runtime.results import failed_result, write_result

    result = failed_result(_resolved(c), str(exc))
    c.output_dir.mkdir(parents=True, exist_ok=True)
    write_result(c.output_dir, result)
    return _summary(c, result, exc.exit_code)


def _summary(c: Configuration, result: ResultRecord, returncode: int | None) -> LaunchSummary:
    summary = LaunchSummary(
        config_id=c.config_id, output=str(c.output_dir), status=result.status, reason=result.reason,
        goal_reached=result.reached_goal(),
        retryable=(returncode not in (ExitCode.OK, ExitCode.BAD_INPUT, ExitCode.DATA)
                   and not str(result.reason).startswith("diverged")),
    )
    log(f"{c.config_id}: {result.outcome_text()}")
    return summary


def runs_as_one_pod(c: Configuration, settings: Settings | None = None) -> bool:
    """A kubernetes configuration that fits on one node of its pool: the KubernetesPodOperator path."""
    if c.launcher != "kubernetes":
        return False
    from operators.kubernetes.pools import get_pool, placement

    settings = settings or Settings.from_env()
    return placement(c.world_size, get_pool(c.pool or "", settings.pools_file)).single_node


def prepare_kubernetes_bundle(c: Configuration) -> None:
    """The bundle directory on the shared results volume, with the config.json the pods read."""
    from tasks.runtime.bundle import prepare_output

    c.output_dir.mkdir(parents=True, exist_ok=True)
    # Pods write into this directory as another uid in the volume's group: setgid, group-writable.
    os.chmod(c.output_dir, 0o2775)
    prepare_output(_resolved(c), c.output_dir)


def summarize_kubernetes_run(c: Configuration, failure: str | None, exit_code: int | None) -> LaunchSummary:
    """After a single-node pod ended: its result.json (a failed record with `failure` when the ranks
    left none), retryable by the pod's exit code as for every launch."""
    from tasks.runtime.bundle import collect_result

    c.output_dir.mkdir(parents=True, exist_ok=True)  # a failure before the pod started leaves none
    result = collect_result(_resolved(c), c.output_dir, failure or "the pod ended without a result.json")
    return _summary(c, result, exit_code)  # no exit code (the pod is gone): retryable unless diverged


def _resolved(c: Configuration) -> Any:
    from tasks.registry import resolve

    return resolve(c.task, c.preset, world_size=c.world_size, backend=c.backend, device=c.device,
                   algorithm=c.algorithm, overrides=c.overrides)


def _launch_locally(c: Configuration, config: Any, settings: Settings, *, run_timeout_s: float,
                    rendezvous_timeout_s: float, stop: threading.Event | None) -> tuple[int, ResultRecord]:
    from tasks.runtime.local_job import launch_local

    with local_machine_lock(settings):
        log(f"launching {c.config_id}: {c.world_size} local rank(s), output {c.output}")
        outcome, result = launch_local(
            config, output=c.output_dir, data_root=Path(c.data_root), timeout_s=run_timeout_s,
            rendezvous_timeout_s=rendezvous_timeout_s, stop=stop,
        )
    return outcome.returncode, result


@contextlib.contextmanager
def local_machine_lock(settings: Settings) -> Iterator[None]:
    """One local configuration at a time per machine, whatever the Airflow pools say: two would
    share the cores and distort both timings."""
    path = settings.locks_dir / LOCAL_LOCK_FILE
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


def rendezvous_timeout(requested_s: float, settings: Settings) -> float:
    """Early ranks wait at the rendezvous while the autoscaler adds nodes for the late ones: they
    must not give up before the launcher's own (clearer) startup timeout does."""
    return max(requested_s, settings.k8s_startup_timeout_s)


def launch_target(c: Configuration, settings: Settings, *, dag_id: str, run_timeout_s: float,
                  rendezvous_timeout_s: float, image: str | None = None, namespace: str | None = None) -> LaunchTarget:
    """Where a kubernetes configuration's objects go and what they run (image and namespace from the
    settings unless given)."""
    from operators.kubernetes.pools import get_pool
    from operators.kubernetes.spec import LaunchTarget, default_image

    pool = get_pool(c.pool or "", settings.pools_file)
    return LaunchTarget(pool=pool, image=image or default_image(pool, settings), dag_id=dag_id, dag_run_id=c.run_id,
                        namespace=namespace or settings.k8s_namespace, run_timeout_s=int(run_timeout_s),
                        rendezvous_timeout_s=int(rendezvous_timeout(rendezvous_timeout_s, settings)))


def kubernetes_job(c: Configuration, settings: Settings, *, dag_id: str, run_timeout_s: float,
                   rendezvous_timeout_s: float) -> tuple[KubernetesJobLauncher, list[dict[str, Any]]]:
    """The launcher and the [Service, Indexed Job] of a configuration on the Job path; names are
    fixed, so the same call after a deferral finds the objects the first one created."""
    from operators.kubernetes.api import clients_from_hook
    from operators.kubernetes.indexed_job import KubernetesJobLauncher
    from operators.kubernetes.spec import build_manifests

    target = launch_target(c, settings, dag_id=dag_id, run_timeout_s=run_timeout_s,
                           rendezvous_timeout_s=rendezvous_timeout_s)
    manifests = build_manifests(c, target)
    core, batch = clients_from_hook(settings.k8s_conn_id)
    launcher = KubernetesJobLauncher(core, batch, namespace=target.namespace,
                                     startup_timeout_s=settings.k8s_startup_timeout_s, run_timeout_s=run_timeout_s,
                                     log=lambda line: print(line, flush=True))
    return launcher, manifests


def open_kubernetes_job(c: Configuration, settings: Settings, *, dag_id: str, run_timeout_s: float,
                        rendezvous_timeout_s: float) -> tuple[KubernetesJobLauncher, list[dict[str, Any]]]:
    """Before a Job is created (waited on here or by the trigger): the bundle with its config.json on
    the results volume, the launcher and manifests, and one line saying what is launched where."""
    prepare_kubernetes_bundle(c)
    launcher, manifests = kubernetes_job(c, settings, dag_id=dag_id, run_timeout_s=run_timeout_s,
                                         rendezvous_timeout_s=rendezvous_timeout_s)
    _announce_job(c, manifests)
    return launcher, manifests


def _announce_job(c: Configuration, manifests: list[dict[str, Any]]) -> None:
    job = manifests[1]
    pods = job["spec"]["completions"]
    log(f"launching {c.config_id}: Indexed Job {job['metadata']['name']} of {pods} pod(s), "
        f"{c.world_size // pods} rank(s) each, on pool {c.pool} in namespace {job['metadata']['namespace']}")


def job_result(c: Configuration, outcome: KubernetesJobOutcome) -> tuple[int, ResultRecord]:
    """The exit code retries are decided on, and the bundle's result (a failed record with the
    outcome's message when the ranks left none)."""
    from tasks.runtime.bundle import collect_result

    returncode = outcome.returncode
    codes = {code for code in outcome.exit_codes.values() if code is not None}
    if returncode == ExitCode.RUN_FAILED and codes and codes <= {ExitCode.BAD_INPUT, ExitCode.DATA}:
        returncode = max(codes)  # every failed rank rejected its input or data: no retry
    # the launcher's account (first rank to fail first) leads rank 0's, which saw only a peer vanish
    root_cause = outcome.message if outcome.returncode == ExitCode.RUN_FAILED and outcome.failed_ranks else None
    return returncode, collect_result(_resolved(c), c.output_dir, outcome.message, root_cause=root_cause)


def job_summary(c: Configuration, outcome: KubernetesJobOutcome) -> LaunchSummary:
    """The launch summary of a Job that ended while the task was deferred."""
    returncode, result = job_result(c, outcome)
    return _summary(c, result, returncode)


def _launch_on_kubernetes(c: Configuration, settings: Settings, *, dag_id: str, run_timeout_s: float,
                          rendezvous_timeout_s: float, stop: threading.Event | None) -> tuple[int, ResultRecord]:
    launcher, manifests = open_kubernetes_job(c, settings, dag_id=dag_id, run_timeout_s=run_timeout_s,
                                              rendezvous_timeout_s=rendezvous_timeout_s)
    return job_result(c, launcher.run(manifests, stop=stop))
