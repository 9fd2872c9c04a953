"""The Kubernetes launcher: run one configuration's [Service, Indexed Job] to the end, then delete it.

`KubernetesJobLauncher.run` creates the objects built by `operators.kubernetes.spec`, waits (bounded)
until every rank's pod exists and runs, follows rank 0's log, and returns a `KubernetesJobOutcome`
with a specific one-line message. Whatever happens (success, failure, timeout, stop, exception) the
Job (with its pods) and the Service are deleted before `run` returns.

Names are fixed and pods are found by the `mlbench.io/job` label; the launcher never trusts a single
listing right after creation: it keeps polling until all `world_size` ranks are there (the race of
the provider's KubernetesJobOperator, apache/airflow#70585, cannot happen here). Pods are also
matched to the Job's uid, so pods of a previous try that are still terminating are never mistaken
for ranks of this one.

Only the CoreV1Api / BatchV1Api calls below touch the cluster, which is what the tests fake.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from kubernetes.client.exceptions import ApiException

from operators.kubernetes.spec import LABEL_PREFIX

JOB_LABEL = f"{LABEL_PREFIX}/job"
RANK_KEY = "batch.kubernetes.io/job-completion-index"  # label (k8s >= 1.28) and annotation
CONTROLLER_UID_KEYS = ("batch.kubernetes.io/controller-uid", "controller-uid")
PROGRESS_EVERY_S = 30.0
LOG_TAIL_LINES = 50
DRAIN_LOG_S = 10.0  # after success: how long rank 0's log may take to deliver its last lines
LEFTOVER_TIMEOUT_S = 300.0  # objects of a previous try must be gone within this
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_CONSECUTIVE_API_ERRORS = 3  # transient API errors tolerated in a row while polling
GENERIC_WAITING = frozenset({"ContainerCreating", "PodInitializing"})
REASON_CHARS = 300

_STARTED = ("Running", "Succeeded")


@dataclass
class KubernetesJobOutcome:
    returncode: int  # 0 success; 1 a rank failed; 124 timeout (startup or run); 143 stopped
    message: str  # one line, names the job and what happened
    failed_ranks: list[int] = field(default_factory=list)
    pending: dict[int, str] = field(default_factory=dict)  # rank -> why it is not running (startup timeout)
    timed_out: bool = False
    exit_codes: dict[int, int | None] = field(default_factory=dict)  # failed rank -> container exit code


# ----------------------------------------------------------------------------------- helpers
def label_selector(labels: dict[str, str]) -> str:
    """`k1=v1,k2=v2` for the API's label_selector; refuses an empty selector (it matches everything)."""
    if not labels:
        raise ValueError("an empty label selector would select every object in the namespace")
    return ",".join(f"{key}={value}" for key, value in labels.items())


def _one_line(text: Any, limit: int = REASON_CHARS) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def _reason(reason: str | None, message: str | None) -> str | None:
    """`Reason: message` without a trailing period, or whichever of the two exists."""
    message = _one_line(message).rstrip(".") if message else ""
    if reason and message:
        return f"{reason}: {message}"
    return reason or message or None


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        detail = exc.reason or ""
        try:
            detail = json.loads(exc.body).get("message") or detail
        except (TypeError, ValueError, AttributeError):
            pass
        return _one_line(f"HTTP {exc.status}: {detail}".rstrip(": "))
    return _one_line(f"{type(exc).__name__}: {exc}")


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ApiException):
        return exc.status in TRANSIENT_STATUSES
    import urllib3

    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


def _split(manifests: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    service = next((m for m in manifests if m.get("kind") == "Service"), None)
    job = next((m for m in manifests if m.get("kind") == "Job"), None)
    return service, job


def pod_rank(pod: Any) -> int | None:
    """The rank of an Indexed Job pod: its completion index (label, else annotation)."""
    metadata = pod.metadata
    for source in (metadata.labels or {}, metadata.annotations or {}):
        value = source.get(RANK_KEY)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _timestamp(value: Any) -> float:
    try:
        return value.timestamp()
    except AttributeError:
        return 0.0


def _phase(pod: Any) -> str:
    return (pod.status.phase if pod.status else None) or "Pending"


def _iter_lines(response: Any) -> Iterator[str]:
    """Lines of a streamed (unpreloaded) response as they arrive; chunks may split lines."""
    if hasattr(response, "stream"):
        chunks = response.stream(amt=None, decode_content=False)  # chunked: yields each chunk on arrival
    else:
        chunks = iter(response)
    pending = b""
    for chunk in chunks:
        pending += chunk.encode() if isinstance(chunk, str) else chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace").rstrip("\r")
    if pending:
        yield pending.decode("utf-8", "replace").rstrip("\r")


def _close_response(response: Any) -> None:
    """Unblock a reader in another thread (urllib3 >= 2.3 has shutdown) and release the connection."""
    if response is None:
        return
    for method in ("shutdown", "close", "release_conn"):
        try:
            getattr(response, method, lambda: None)()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


class _LogFollower:
    """Follows one pod's log in a daemon thread and hands each line to `emit`; never raises."""

    def __init__(self, core_v1: Any, namespace: str, pod: str, container: str | None,
                 emit: Callable[[str], None], prefix: str) -> None:
        self._core = core_v1
        self._namespace = namespace
        self._pod = pod
        self._container = container
        self._emit = emit
        self._prefix = prefix
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None
        self.thread = threading.Thread(target=self._run, name=f"mlbench-log-{pod}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _say(self, line: str) -> None:
        try:
            self._emit(self._prefix + line)
        except Exception:  # noqa: BLE001 - a broken log sink must not kill the follower loudly
            self._stopping.set()

    def _run(self) -> None:
        response = None
        try:
            response = self._core.read_namespaced_pod_log(
                name=self._pod, namespace=self._namespace, container=self._container,
                follow=True, _preload_content=False,
            )
            with self._lock:
                self._response = response
            if self._stopping.is_set():
                return
            for line in _iter_lines(response):
                if self._stopping.is_set():
                    return
                self._say(line)
        except Exception as exc:  # noqa: BLE001 - the stream ending badly must not affect the run
            if not self._stopping.is_set():
                self._say(f"(log stream ended: {_describe_error(exc)})")
        finally:
            _close_response(response)

    def finish(self, drain_s: float) -> None:
        """Let the stream deliver what is left (up to `drain_s`), then close it and end the thread."""
        if drain_s > 0:
            self.thread.join(drain_s)
        self._stopping.set()
        with self._lock:
            response = self._response
        _close_response(response)
        self.thread.join(2.0)


@dataclass
class _Observation:
    job: Any  # V1Job, or None when it no longer exists
    pods: list[Any]
    by_rank: dict[int, Any]  # rank -> its current pod
    failed: list[Any]  # pods in phase Failed

    @property
    def running(self) -> int:
        return sum(1 for pod in self.by_rank.values() if _phase(pod) in _STARTED)

    @property
    def suspended(self) -> bool:
        return bool(self.job is not None and self.job.spec is not None and self.job.spec.suspend)


_SKIPPED = object()  # a poll that hit a transient API error


# ---------------------------------------------------------------------------------- launcher
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
            self.log(f"could not delete {kind} {name}: {_describe_error(exc)}")
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
        self.follower: _LogFollower | None = None
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
                self.follower.finish(DRAIN_LOG_S if outcome is not None and outcome.returncode == 0 else 0)
            try:
                self.launcher.delete(self.manifests)
            except Exception as exc:  # noqa: BLE001 - keep the outcome (or the original error)
                self.log(f"job {self.name}: cleanup failed ({_describe_error(exc)}); "
                         "the DAG's cleanup step deletes the leftovers by label")

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _stopped_outcome(self) -> KubernetesJobOutcome:
        self.log(f"job {self.name}: stop requested; deleting the job")
        return KubernetesJobOutcome(143, f"job {self.name}: stopped on request")

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
                    124, f"job {self.name}: leftovers of a previous try still exist after "
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
        """Startup (until every rank runs) then run phase (until the job ends), one poll loop."""
        startup_began = self.clock()
        startup_deadline = min(startup_began + self.launcher.startup_timeout_s, self.run_deadline)
        next_progress = startup_began + PROGRESS_EVERY_S
        all_running = False
        last = _Observation(job=None, pods=[], by_rank={}, failed=[])
        while True:
            if self._stopped():
                return self._stopped_outcome()
            seen = self._observe()
            if seen is not _SKIPPED:
                last = seen
                if seen.job is None:
                    return KubernetesJobOutcome(1, f"job {self.name} disappeared before it finished "
                                                   "(deleted outside the launcher?)")
                self._follow_rank0(seen)  # first: a rank 0 that already finished is still shown
                outcome = self._finished(seen)
                if outcome is not None:
                    return outcome
                if not all_running and seen.running == self.world_size:
                    all_running = True
                    self.log(f"job {self.name}: all {self.world_size} ranks running after "
                             f"{self.clock() - startup_began:.0f}s")
            now = self.clock()
            if not all_running:
                if now >= startup_deadline:
                    return self._startup_timeout(last, now - startup_began)
                if now >= next_progress:
                    next_progress = now + PROGRESS_EVERY_S
                    self._progress(last)
            elif now >= self.run_deadline:
                self.log(f"job {self.name}: run timeout reached; deleting the job")
                return KubernetesJobOutcome(
                    124, f"job {self.name}: timed out after {self.launcher.run_timeout_s:.0f}s "
                         f"({last.running}/{self.world_size} ranks still running)", timed_out=True)
            self.launcher._pause(self.stop)

    def _observe(self) -> Any:
        """The Job and its pods now, or _SKIPPED after a transient API error (too many in a row raise)."""
        try:
            try:
                job = self.batch.read_namespaced_job(name=self.name, namespace=self.ns)  # status included; needs only `get jobs`
            except ApiException as exc:
                if exc.status != 404:
                    raise
                job = None
            pods = [pod for pod in self._pods_with_label() if self._owned(pod)]
        except Exception as exc:
            if not _is_transient(exc):
                raise
            self.api_errors += 1
            if self.api_errors > MAX_CONSECUTIVE_API_ERRORS:
                raise
            self.log(f"job {self.name}: API error while polling ({_describe_error(exc)}); "
                     f"retrying ({self.api_errors}/{MAX_CONSECUTIVE_API_ERRORS})")
            return _SKIPPED
        self.api_errors = 0
        by_rank: dict[int, Any] = {}
        for pod in pods:
            rank = pod_rank(pod)
            if rank is None or not 0 <= rank < self.world_size:
                continue
            current = by_rank.get(rank)
            if current is None or self._newer(pod, current):
                by_rank[rank] = pod
        failed = [pod for pod in pods if _phase(pod) == "Failed" and pod_rank(pod) is not None]
        return _Observation(job=job, pods=pods, by_rank=by_rank, failed=failed)

    @staticmethod
    def _newer(pod: Any, other: Any) -> bool:
        """Prefer a pod that is not being deleted, then the most recently created one."""
        def key(p: Any) -> tuple[bool, float]:
            return (p.metadata.deletion_timestamp is None, _timestamp(p.metadata.creation_timestamp))
        return key(pod) > key(other)

    def _owned(self, pod: Any) -> bool:
        """Is this pod one of our Job's (and not a terminating pod of a previous try's Job)?"""
        if self.uid is None:
            return True
        references = pod.metadata.owner_references or []
        if references:
            return any(reference.uid == self.uid for reference in references)
        labels = pod.metadata.labels or {}
        uid = next((labels[key] for key in CONTROLLER_UID_KEYS if key in labels), None)
        return uid is None or uid == self.uid

    def _follow_rank0(self, seen: _Observation) -> None:
        pod = seen.by_rank.get(0)
        if self.follower is None and pod is not None and _phase(pod) in _STARTED:  # a failed one: log tail
            self.follower = _LogFollower(self.core, self.ns, pod.metadata.name, self.container,
                                         self.log, prefix="[rank 0] ")
            self.follower.start()

    # ------------------------------------------------------------------ verdicts
    def _finished(self, seen: _Observation) -> KubernetesJobOutcome | None:
        status = seen.job.status
        conditions = (status.conditions if status is not None else None) or []
        failed_condition = next((c for c in conditions if c.type in ("Failed", "FailureTarget")
                                 and c.status == "True"), None)
        failed_count = (status.failed if status is not None else None) or 0
        if failed_condition is not None or failed_count > 0 or seen.failed:
            return self._failure(seen, failed_condition)
        succeeded = (status.succeeded if status is not None else None) or 0
        complete = any(c.type == "Complete" and c.status == "True" for c in conditions)
        if succeeded >= self.world_size or complete:
            if self.follower is not None:
                self.follower.finish(DRAIN_LOG_S)  # rank 0's last lines before our verdict
            message = f"job {self.name}: all {self.world_size} ranks succeeded"
            self.log(message)
            return KubernetesJobOutcome(0, message)
        return None

    def _failure(self, seen: _Observation, condition: Any) -> KubernetesJobOutcome:
        """Name the failed ranks (the first to fail first: the others usually fail because of it),
        log each one's log tail, and build the one-line message."""
        details = {}  # rank -> (finished_at, pod, description, exit code, termination message)
        for pod in seen.failed:
            description, exit_code, finished_at, termination = self._termination(pod)
            rank = pod_rank(pod)
            if rank not in details or (finished_at or float("inf")) < (details[rank][0] or float("inf")):
                details[rank] = (finished_at, pod, description, exit_code, termination)
        order = sorted(details, key=lambda r: (details[r][0] if details[r][0] is not None else float("inf"), r))
        parts = []
        for index, rank in enumerate(order):
            _, pod, description, _, termination = details[rank]
            self.log(f"job {self.name}: rank {rank} failed ({description}); last {LOG_TAIL_LINES} lines of its log:")
            lines, readable = self._log_tail(pod)
            for line in lines:
                self.log(f"[rank {rank}] {line}")
            part = f"rank {rank} failed ({description})"
            if index == 0:  # the root cause: its termination message or last log line
                last = next((line for line in reversed(lines) if line.strip()), None) if readable else None
                if termination or last:
                    part += f": {_one_line(termination or last, 200)}"
            parts.append(part)
        failed_ranks = sorted(details)
        exit_codes = {rank: details[rank][3] for rank in failed_ranks}
        if condition is not None and condition.reason == "DeadlineExceeded":
            deadline = self.job["spec"].get("activeDeadlineSeconds")
            message = f"job {self.name}: hit its activeDeadlineSeconds ({deadline}s) and was stopped by Kubernetes"
            if parts:
                message += "; " + "; ".join(parts)
            self.log(message)
            return KubernetesJobOutcome(124, message, failed_ranks, timed_out=True, exit_codes=exit_codes)
        if parts:
            message = f"job {self.name}: " + "; ".join(parts)
        else:
            why = _reason(condition.reason, condition.message) if condition is not None else None
            message = f"job {self.name} failed ({why or f'{seen.job.status.failed} pod(s) failed'})"
        self.log(message)
        return KubernetesJobOutcome(1, message, failed_ranks, exit_codes=exit_codes)

    def _termination(self, pod: Any) -> tuple[str, int | None, float | None, str | None]:
        """(`exit code 2, Error` or the pod's reason, exit code, finish time, termination message)."""
        statuses = list(pod.status.container_statuses or []) if pod.status else []
        statuses.sort(key=lambda s: s.name != self.container)  # our container first
        for status in statuses:
            terminated = status.state.terminated if status.state else None
            if terminated is not None and terminated.exit_code != 0:
                description = f"exit code {terminated.exit_code}"
                if terminated.reason:
                    description += f", {terminated.reason}"
                finished = _timestamp(terminated.finished_at) if terminated.finished_at else None
                message = _one_line(terminated.message, 200) if terminated.message else None
                return description, terminated.exit_code, finished, message
        why = _reason(pod.status.reason, pod.status.message) if pod.status else None
        return why or "phase Failed", None, None, None

    def _log_tail(self, pod: Any) -> tuple[list[str], bool]:
        """The last lines of a pod's log, and whether it could be read."""
        try:
            text = self.core.read_namespaced_pod_log(name=pod.metadata.name, namespace=self.ns,
                                                     container=self.container, tail_lines=LOG_TAIL_LINES)
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            return [f"(could not read the log: {_describe_error(exc)})"], False
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return str(text or "").splitlines()[-LOG_TAIL_LINES:], True

    # ------------------------------------------------------------------ startup diagnostics
    def _pending(self, seen: _Observation) -> dict[int, str]:
        pending = {}
        for rank in range(self.world_size):
            pod = seen.by_rank.get(rank)
            if pod is None:
                pending[rank] = "not created yet"
            elif _phase(pod) not in _STARTED:
                pending[rank] = self._why_not_running(pod)
        return pending

    def _why_not_running(self, pod: Any) -> str:
        phase = _phase(pod)
        detail, generic = _status_detail(pod)
        if detail is None or generic:
            detail = self._newest_event(pod.metadata.name) or detail
        return f"{phase} ({detail})" if detail else phase

    def _newest_event(self, pod_name: str) -> str | None:
        try:
            events = self.core.list_namespaced_event(namespace=self.ns,
                                                     field_selector=f"involvedObject.name={pod_name}").items or []
        except Exception:  # noqa: BLE001 - events are a best-effort explanation (RBAC may forbid them)
            return None
        if not events:
            return None

        def when(event: Any) -> float:
            stamps = (event.last_timestamp, event.event_time, event.first_timestamp,
                      event.metadata.creation_timestamp if event.metadata else None)
            return max((_timestamp(s) for s in stamps if s is not None), default=0.0)

        newest = max(events, key=when)
        return _reason(newest.reason, newest.message)

    def _progress(self, seen: _Observation) -> None:
        if seen.suspended:
            self.log(f"job {self.name}: waiting for Kueue admission (the job is suspended); "
                     f"{seen.running}/{self.world_size} ranks running")
            return
        pending = self._pending(seen)
        self.log(f"job {self.name}: {seen.running}/{self.world_size} ranks running, {len(pending)} pending: "
                 + "; ".join(f"rank {rank} {why}" for rank, why in pending.items()))

    def _startup_timeout(self, seen: _Observation, waited_s: float) -> KubernetesJobOutcome:
        pending = self._pending(seen)
        head = f"job {self.name}: {len(pending)} of {self.world_size} ranks not running after {waited_s:.0f}s"
        if seen.suspended:
            head += " (the job is still suspended: waiting for Kueue admission)"
        message = head + ": " + "; ".join(f"rank {rank} {why}" for rank, why in pending.items())
        self.log(message)
        return KubernetesJobOutcome(124, message, pending=pending, timed_out=True)


def _status_detail(pod: Any) -> tuple[str | None, bool]:
    """Why a pod is not running, from its status: (text, whether it is a generic placeholder)."""
    status = pod.status
    if status is None:
        return None, False
    for condition in status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False":
            return _reason(condition.reason or "Unschedulable", condition.message), False
    for container in list(status.init_container_statuses or []) + list(status.container_statuses or []):
        waiting = container.state.waiting if container.state else None
        if waiting is not None and waiting.reason:
            generic = waiting.reason in GENERIC_WAITING and not waiting.message
            return _reason(waiting.reason, waiting.message), generic
    detail = _reason(status.reason, status.message)
    return detail, False


# ---------------------------------------------------------------------------------- run cleanup
def cleanup_run(core_v1: Any, batch_v1: Any, *, namespace: str, label_selector: str,
                log: Callable[[str], None] = print) -> int:
    """Delete leftovers of a DAG run by label (jobs, services, pods); returns how many objects were deleted.

    Jobs go first (so no controller recreates pods), then pods, then services. Objects already being
    deleted and objects gone in the meantime (404) are not counted. Every object is tried; the first
    error is raised at the end."""
    if not label_selector or not label_selector.strip():
        raise ValueError("refusing to clean up without a label selector: it would select the whole namespace")
    kinds = (
        ("job", batch_v1.list_namespaced_job, batch_v1.delete_namespaced_job, {"propagation_policy": "Background"}),
        ("pod", core_v1.list_namespaced_pod, core_v1.delete_namespaced_pod, {}),
        ("service", core_v1.list_namespaced_service, core_v1.delete_namespaced_service, {}),
    )
    deleted = 0
    errors: list[Exception] = []
    for kind, list_objects, delete_object, extra in kinds:
        for item in list_objects(namespace=namespace, label_selector=label_selector).items or []:
            if item.metadata.deletion_timestamp is not None:
                continue
            name = item.metadata.name
            try:
                delete_object(name=name, namespace=namespace, **extra)
            except ApiException as exc:
                if exc.status != 404:
                    log(f"cleanup: could not delete {kind} {name}: {_describe_error(exc)}")
                    errors.append(exc)
                continue
            deleted += 1
            log(f"cleanup: deleted {kind} {name}")
    if errors:
        raise errors[0]
    return deleted


def clients_from_hook(conn_id: str = "kubernetes_default") -> tuple[Any, Any]:
    """(CoreV1Api, BatchV1Api) from the provider's KubernetesHook: credentials come from the Airflow
    connection (in-cluster, kubeconfig or a secret), never from this repository."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    hook = KubernetesHook(conn_id=conn_id)
    return hook.core_v1_client, hook.batch_v1_client
