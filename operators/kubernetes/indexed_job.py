"""One configuration's [Service, Indexed Job] run to the end on the cluster, then deleted.

`KubernetesJobLauncher.run` creates the objects built by `operators.kubernetes.spec`, waits (bounded)
until every rank's pod exists and runs, follows rank 0's log (`job_logs`), and returns a
`KubernetesJobOutcome` with a specific one-line message (`pod_diagnosis` explains pending and
failed ranks). Whatever happens (success, failure, timeout, stop, exception) the Job (with its
pods) and the Service are deleted before `run` returns.

Names are fixed and pods are found by the `mlbench.io/job` label; the launcher never trusts a single
listing right after creation: it keeps polling until all `world_size` ranks are there (the race of
the provider's KubernetesJobOperator, apache/airflow#70585, cannot happen here). Pods are also
matched to the Job's uid, so pods of a previous try that are still terminating are never mistaken
for ranks of this one.

Only the CoreV1Api / BatchV1Api calls of this package touch the cluster, which is what the tests fake.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from kubernetes.client.exceptions import ApiException

from operators.kubernetes.api import describe_error, is_transient
from operators.kubernetes.job_logs import DRAIN_LOG_S, LogFollower, log_tail
from operators.kubernetes.job_pods import (
    JOB_LABEL,
    NOTHING_SEEN,
    STARTED,
    JobWatch,
    Observation,
    Verdict,
    failed_condition,
    observe,
    owned_by,
    phase,
)
from operators.kubernetes.pod_diagnosis import (
    describe_pending,
    explain_failures,
    failed_ranks,
    pending_ranks,
    reason_text,
)
from tasks.errors import ExitCode

PROGRESS_EVERY_S = 30.0
LEFTOVER_TIMEOUT_S = 300.0  # objects of a previous try must be gone within this
MAX_CONSECUTIVE_API_ERRORS = 3  # transient API errors tolerated in a row while polling


@dataclass
class KubernetesJobOutcome:
    returncode: int  # ExitCode: OK; RUN_FAILED a rank failed; TIMEOUT (startup or run); TERMINATED stopped
    message: str  # one line, names the job and what happened
    failed_ranks: list[int] = field(default_factory=list)
    pending: dict[int, str] = field(default_factory=dict)  # rank -> why it is not running (startup timeout)
    timed_out: bool = False
    exit_codes: dict[int, int | None] = field(default_factory=dict)  # failed rank -> container exit code


def _split(manifests: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    service = next((m for m in manifests if m.get("kind") == "Service"), None)
    job = next((m for m in manifests if m.get("kind") == "Job"), None)
    return service, job


@dataclass(frozen=True)
class JobStart:
    uid: str | None  # the Job's, to tell its pods from a previous try's
    outcome: KubernetesJobOutcome | None  # set when the job could not start


_SKIPPED = object()  # a poll that hit a transient API error


class KubernetesJobLauncher:
    """Runs [Service, Indexed Job] manifests to completion; see the module docstring."""

    def __init__(
        self,
        core_v1: Any,
        batch_v1: Any,
        *,
        namespace: str,
        startup_timeout_s: float,
        run_timeout_s: float,
        poll_interval_s: float = 5.0,
        log: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        leftover_timeout_s: float = LEFTOVER_TIMEOUT_S,
    ) -> None:
        self.core_v1 = core_v1
        self.batch_v1 = batch_v1
        self.namespace = namespace
        self.startup_timeout_s = float(startup_timeout_s)
        self.run_timeout_s = float(run_timeout_s)
        self.poll_interval_s = float(poll_interval_s)
        self.leftover_timeout_s = float(leftover_timeout_s)
        self.log = log
        self.clock = clock
        self.sleep = sleep

    def run(self, manifests: list[dict[str, Any]], *, stop: threading.Event | None = None) -> KubernetesJobOutcome:
        """Create, supervise and always delete one job; returns how it ended."""
        return _JobRun(self, manifests, stop).execute()

    def start(self, manifests: list[dict[str, Any]], *, stop: threading.Event | None = None) -> JobStart:
        """Create one job and return at once (a trigger waits for it): its uid, or how it ended
        already (the leftovers of a previous try would not go), everything deleted then."""
        run = _JobRun(self, manifests, stop)
        try:
            outcome = run._create()
        except BaseException:
            run.delete_quietly()
            raise
        if outcome is not None:
            run.delete_quietly()
        return JobStart(uid=run.uid, outcome=outcome)

    def conclude(self, manifests: list[dict[str, Any]], *, uid: str | None, verdict: Verdict | None,
                 startup_waited_s: float = 0.0, lost: str | None = None) -> KubernetesJobOutcome:
        """After a trigger's `verdict` on the job `start` created: the outcome with the reasons the
        poll loop gives (read now) and rank 0's last log lines; verdict None: the trigger lost track
        of the job (`lost` says why). Everything deleted."""
        run = _JobRun(self, manifests, None)
        run.uid = uid
        return run.conclude(verdict, startup_waited_s, lost)

    def delete(self, manifests: list[dict[str, Any]]) -> None:
        """Delete the Job (its pods go with it: background propagation) and the Service; 404 is fine.

        Tries every object even if one fails, then raises the first error."""
        service, job = _split(manifests)
        for manifest in (service, job):
            if manifest is not None:
                self._check_namespace(manifest)
        targets = []
        if job is not None:
            targets.append(("job", job["metadata"]["name"], self.batch_v1.delete_namespaced_job,
                            {"propagation_policy": "Background"}))
        if service is not None:
            targets.append(("service", service["metadata"]["name"], self.core_v1.delete_namespaced_service, {}))
        deleted, errors = [], []
        for kind, name, method, extra in targets:
            try:
                method(name=name, namespace=self.namespace, **extra)
            except ApiException as exc:
                if exc.status != 404:
                    errors.append((kind, name, exc))
                continue
            except Exception as exc:  # noqa: BLE001 - still try the other object
                errors.append((kind, name, exc))
                continue
            deleted.append(f"{kind} {name}" + (" (with its pods)" if kind == "job" else ""))
        if deleted:
            self.log(f"deleted {' and '.join(deleted)} in namespace {self.namespace}")
        for kind, name, exc in errors:
            self.log(f"could not delete {kind} {name}: {describe_error(exc)}")
        if errors:
            raise errors[0][2]

    # -- shared with _JobRun
    def _check_namespace(self, manifest: dict[str, Any]) -> None:
        declared = manifest.get("metadata", {}).get("namespace")
        if declared and declared != self.namespace:
            raise ValueError(f"{manifest.get('kind')} {manifest['metadata'].get('name')} is for namespace "
                             f"'{declared}' but the launcher works in '{self.namespace}'")

    def _pause(self, stop: threading.Event | None) -> None:
        if stop is not None and self.sleep is time.sleep:
            stop.wait(self.poll_interval_s)  # a kill is noticed at once, not after the poll interval
        else:
            self.sleep(self.poll_interval_s)


class _JobRun:
    """The state of one `KubernetesJobLauncher.run` call."""

    def __init__(self, launcher: KubernetesJobLauncher, manifests: list[dict[str, Any]],
                 stop: threading.Event | None) -> None:
        self.launcher = launcher
        self.core = launcher.core_v1
        self.batch = launcher.batch_v1
        self.ns = launcher.namespace
        self.log = launcher.log
        self.clock = launcher.clock
        self.stop = stop
        self.manifests = manifests
        self.service, self.job = _split(manifests)
        if self.service is None or self.job is None:
            raise ValueError("the manifests must hold a Service and a Job (see operators.kubernetes.spec)")
        launcher._check_namespace(self.service)
        launcher._check_namespace(self.job)
        self.name = self.job["metadata"]["name"]
        spec = self.job["spec"]
        self.world_size = int(spec.get("completions") or spec.get("parallelism") or 1)
        containers = spec["template"]["spec"].get("containers") or [{}]
        self.container = containers[0].get("name")
        self.selector = f"{JOB_LABEL}={self.name}"
        self.uid: str | None = None
        self.follower: LogFollower | None = None
        self.api_errors = 0
        self.started = self.clock()
        self.run_deadline = self.started + launcher.run_timeout_s

    # ------------------------------------------------------------------ lifecycle
    def execute(self) -> KubernetesJobOutcome:
        outcome = None
        try:
            outcome = self._create()
            if outcome is None:
                outcome = self._supervise()
            return outcome
        finally:
            if self.follower is not None:
                self.follower.finish(DRAIN_LOG_S if outcome is not None and outcome.returncode == ExitCode.OK else 0)
            self.delete_quietly()

    def delete_quietly(self) -> None:
        try:
            self.launcher.delete(self.manifests)
        except Exception as exc:  # noqa: BLE001 - keep the outcome (or the original error)
            self.log(f"job {self.name}: cleanup failed ({describe_error(exc)}); "
                     "the DAG's cleanup step deletes the leftovers by label")

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _stopped_outcome(self) -> KubernetesJobOutcome:
        self.log(f"job {self.name}: stop requested; deleting the job")
        return KubernetesJobOutcome(ExitCode.TERMINATED, f"job {self.name}: stopped on request")

    # ------------------------------------------------------------------ creation
    def _create(self) -> KubernetesJobOutcome | None:
        stale = self._pods_with_label()
        if stale:
            outcome = self._clear_leftovers(f"{len(stale)} pod(s) of a previous try still exist")
            if outcome is not None:
                return outcome
        try:
            self._create_objects()
        except ApiException as exc:
            if exc.status != 409:
                raise
            outcome = self._clear_leftovers("the job or service of a previous try still exists")
            if outcome is not None:
                return outcome
            self._create_objects()  # a second conflict means someone else is creating them: raise
        self.log(f"job {self.name}: created (service {self.service['metadata']['name']}, "
                 f"{self.world_size} rank(s)); waiting up to {self.launcher.startup_timeout_s:.0f}s "
                 "for every rank to run")
        return None

    def _create_objects(self) -> None:
        self.core.create_namespaced_service(namespace=self.ns, body=self.service)
        created = self.batch.create_namespaced_job(namespace=self.ns, body=self.job)
        metadata = getattr(created, "metadata", None)
        self.uid = getattr(metadata, "uid", None)

    def _pods_with_label(self) -> list[Any]:
        return list(self.core.list_namespaced_pod(namespace=self.ns, label_selector=self.selector).items or [])

    def _clear_leftovers(self, why: str) -> KubernetesJobOutcome | None:
        """Delete what a previous try left and wait (bounded) until it is gone: a retry starts clean."""
        self.log(f"job {self.name}: {why}; deleting them before starting again")
        self.launcher.delete(self.manifests)
        for pod in self._pods_with_label():
            if pod.metadata.deletion_timestamp is None:
                try:
                    self.core.delete_namespaced_pod(name=pod.metadata.name, namespace=self.ns)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
        deadline = self.clock() + self.launcher.leftover_timeout_s
        while True:
            left = self._leftovers()
            if not left:
                self.log(f"job {self.name}: leftovers of the previous try are gone")
                return None
            if self._stopped():
                return self._stopped_outcome()
            if self.clock() >= deadline:
                return KubernetesJobOutcome(
                    ExitCode.TIMEOUT, f"job {self.name}: leftovers of a previous try still exist after "
                                      f"{self.launcher.leftover_timeout_s:.0f}s: {', '.join(left)}", timed_out=True)
            self.launcher._pause(self.stop)

    def _leftovers(self) -> list[str]:
        left = []
        for kind, read, name in (("job", self.batch.read_namespaced_job, self.name),
                                 ("service", self.core.read_namespaced_service, self.service["metadata"]["name"])):
            try:
                read(name=name, namespace=self.ns)
                left.append(f"{kind} {name}")
            except ApiException as exc:
                if exc.status != 404:
                    raise
        pods = self._pods_with_label()
        if pods:
            left.append(f"{len(pods)} pod(s)")
        return left

    # ------------------------------------------------------------------ supervision
    def _supervise(self) -> KubernetesJobOutcome:
        """Startup (until every pod runs) then run phase (until the job ends), one poll loop."""
        startup_began = self.clock()
        watch = JobWatch(self.world_size, startup_deadline=startup_began + self.launcher.startup_timeout_s,
                         run_deadline=self.run_deadline)
        next_progress = startup_began + PROGRESS_EVERY_S
        last = NOTHING_SEEN
        while True:
            if self._stopped():
                return self._stopped_outcome()
            seen = self._observe()
            if seen is not _SKIPPED:
                last = seen
                if seen.job is not None:
                    self._follow_rank0(seen)  # first: a rank 0 that already finished is still shown
            was_running = watch.all_running
            now = self.clock()
            verdict = watch.judge(None if seen is _SKIPPED else seen, now)
            if watch.all_running and not was_running:
                self.log(f"job {self.name}: all {self.world_size} ranks running after {now - startup_began:.0f}s")
            if verdict is not None:
                return self.outcome(verdict, last, now - startup_began)
            if not watch.all_running and now >= next_progress:
                next_progress = now + PROGRESS_EVERY_S
                self._progress(last)
            self.launcher._pause(self.stop)

    def outcome(self, verdict: Verdict, seen: Observation, startup_waited_s: float) -> KubernetesJobOutcome:
        """How the job ended, as one line, for the verdict a watch (this loop or the trigger) reached."""
        if verdict is Verdict.DISAPPEARED or seen.job is None:
            return KubernetesJobOutcome(ExitCode.RUN_FAILED, f"job {self.name} disappeared before it "
                                                             "finished (deleted outside the launcher?)")
        if verdict is Verdict.FAILED:
            return self._failure(seen, failed_condition(seen.job))
        if verdict is Verdict.SUCCEEDED:
            if self.follower is not None:
                self.follower.finish(DRAIN_LOG_S)  # rank 0's last lines before our verdict
            message = f"job {self.name}: all {self.world_size} ranks succeeded"
            self.log(message)
            return KubernetesJobOutcome(ExitCode.OK, message)
        if verdict is Verdict.STARTUP_TIMEOUT:
            return self._startup_timeout(seen, startup_waited_s)
        self.log(f"job {self.name}: run timeout reached; deleting the job")
        return KubernetesJobOutcome(
            ExitCode.TIMEOUT, f"job {self.name}: timed out after {self.launcher.run_timeout_s:.0f}s "
                              f"({seen.running}/{self.world_size} ranks still running)", timed_out=True)

    def _observe(self) -> Observation | object:
        """The Job and its pods now, or _SKIPPED after a transient API error (too many in a row raise)."""
        try:
            job = self._read_job()
            pods = [pod for pod in self._pods_with_label() if owned_by(pod, self.uid)]
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.api_errors += 1
            if self.api_errors > MAX_CONSECUTIVE_API_ERRORS:
                raise
            self.log(f"job {self.name}: API error while polling ({describe_error(exc)}); "
                     f"retrying ({self.api_errors}/{MAX_CONSECUTIVE_API_ERRORS})")
            return _SKIPPED
        self.api_errors = 0
        return observe(job, pods, self.world_size)

    def _read_job(self) -> Any:
        """The Job (its status comes with it: needs only `get jobs`), None when it no longer exists."""
        try:
            return self.batch.read_namespaced_job(name=self.name, namespace=self.ns)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return None

    def _follow_rank0(self, seen: Observation) -> None:
        pod = seen.by_rank.get(0)
        if self.follower is None and pod is not None and phase(pod) in STARTED:  # a failed one: log tail
            self.follower = LogFollower(self.core, self.ns, pod.metadata.name, self.container,
                                        self.log, prefix="[rank 0] ")
            self.follower.start()

    # ------------------------------------------------------------------ verdicts
    def _failure(self, seen: Observation, condition: Any) -> KubernetesJobOutcome:
        """Name the failed ranks (the first to fail first), log each one's log tail, build the message."""
        failed = failed_ranks(seen.failed, self.container)
        parts = explain_failures(self.core, self.ns, self.name, self.container, failed, self.log)
        ranks = sorted(f.rank for f in failed)
        exit_codes = {f.rank: f.exit_code for f in sorted(failed, key=lambda f: f.rank)}
        if condition is not None and condition.reason == "DeadlineExceeded":
            deadline = self.job["spec"].get("activeDeadlineSeconds")
            message = f"job {self.name}: hit its activeDeadlineSeconds ({deadline}s) and was stopped by Kubernetes"
            if parts:
                message += "; " + "; ".join(parts)
            self.log(message)
            return KubernetesJobOutcome(ExitCode.TIMEOUT, message, ranks, timed_out=True, exit_codes=exit_codes)
        if parts:
            message = f"job {self.name}: " + "; ".join(parts)
        else:
            why = reason_text(condition.reason, condition.message) if condition is not None else None
            message = f"job {self.name} failed ({why or f'{seen.job.status.failed} pod(s) failed'})"
        self.log(message)
        return KubernetesJobOutcome(ExitCode.RUN_FAILED, message, ranks, exit_codes=exit_codes)

    def conclude(self, verdict: Verdict | None, startup_waited_s: float, lost: str | None) -> KubernetesJobOutcome:
        """After a trigger's wait: look once more (for the reasons), show rank 0's last lines,
        delete everything, return how the job ended."""
        try:
            if verdict is None:
                message = f"job {self.name}: stopped waiting: {lost}"
                self.log(message)
                return KubernetesJobOutcome(ExitCode.RUN_FAILED, message)
            job = self._read_job()
            seen = observe(job, [pod for pod in self._pods_with_label() if owned_by(pod, self.uid)], self.world_size)
            rank0 = seen.by_rank.get(0)
            if rank0 is not None and phase(rank0) != "Pending":
                lines, _ = log_tail(self.core, self.ns, rank0, self.container)
                self.log(f"job {self.name}: last {len(lines)} lines of rank 0's log:")
                for line in lines:
                    self.log(f"[rank 0] {line}")
            return self.outcome(verdict, seen, startup_waited_s)
        finally:
            self.delete_quietly()

    # ------------------------------------------------------------------ startup diagnostics
    def _progress(self, seen: Observation) -> None:
        if seen.suspended:
            self.log(f"job {self.name}: waiting for Kueue admission (the job is suspended); "
                     f"{seen.running}/{self.world_size} ranks running")
            return
        pending = pending_ranks(self.core, self.ns, seen, self.world_size)
        self.log(f"job {self.name}: {seen.running}/{self.world_size} ranks running, {len(pending)} pending: "
                 + describe_pending(pending))

    def _startup_timeout(self, seen: Observation, waited_s: float) -> KubernetesJobOutcome:
        pending = pending_ranks(self.core, self.ns, seen, self.world_size)
        head = f"job {self.name}: {len(pending)} of {self.world_size} ranks not running after {waited_s:.0f}s"
        if seen.suspended:
            head += " (the job is still suspended: waiting for Kueue admission)"
        message = head + ": " + describe_pending(pending)
        self.log(message)
        return KubernetesJobOutcome(ExitCode.TIMEOUT, message, pending=pending, timed_out=True)
