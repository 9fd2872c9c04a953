"""Why a job's ranks are not running, and why they failed: one-line explanations from the pods'
status, their events and the failed ranks' log tails (the launcher's messages are made of these)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from operators.kubernetes.api import one_line
from operators.kubernetes.job_logs import LOG_TAIL_LINES, log_tail
from operators.kubernetes.job_pods import STARTED, Observation, phase, pod_rank, timestamp

GENERIC_WAITING = frozenset({"ContainerCreating", "PodInitializing"})
NEVER = float("inf")


def reason_text(reason: str | None, message: str | None) -> str | None:
    """`Reason: message` without a trailing period, or whichever of the two exists."""
    message = one_line(message).rstrip(".") if message else ""
    if reason and message:
        return f"{reason}: {message}"
    return reason or message or None


# ------------------------------------------------------------------ ranks that do not run (yet)
def pending_ranks(core: Any, namespace: str, seen: Observation, world_size: int) -> dict[int, str]:
    """rank -> why it is not running, for every rank that is not."""
    pending = {}
    for rank in range(world_size):
        pod = seen.by_rank.get(rank)
        if pod is None:
            pending[rank] = "not created yet"
        elif phase(pod) not in STARTED:
            pending[rank] = why_not_running(core, namespace, pod)
    return pending


def describe_pending(pending: dict[int, str]) -> str:
    return "; ".join(f"rank {rank} {why}" for rank, why in pending.items())


def why_not_running(core: Any, namespace: str, pod: Any) -> str:
    """`Pending (Unschedulable: 0/3 nodes ...)`: the phase and the most specific reason known."""
    detail, generic = status_detail(pod)
    if detail is None or generic:
        detail = newest_event(core, namespace, pod.metadata.name) or detail
    return f"{phase(pod)} ({detail})" if detail else phase(pod)


def status_detail(pod: Any) -> tuple[str | None, bool]:
    """Why a pod is not running, from its status: (text, whether it is a generic placeholder)."""
    status = pod.status
    if status is None:
        return None, False
    for condition in status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False":
            return reason_text(condition.reason or "Unschedulable", condition.message), False
    for container in list(status.init_container_statuses or []) + list(status.container_statuses or []):
        waiting = container.state.waiting if container.state else None
        if waiting is not None and waiting.reason:
            generic = waiting.reason in GENERIC_WAITING and not waiting.message
            return reason_text(waiting.reason, waiting.message), generic
    return reason_text(status.reason, status.message), False


def newest_event(core: Any, namespace: str, pod_name: str) -> str | None:
    """`Reason: message` of the pod's newest event, if it has any that can be read."""
    try:
        events = core.list_namespaced_event(namespace=namespace,
                                            field_selector=f"involvedObject.name={pod_name}").items or []
    except Exception:  # noqa: BLE001 - events are a best-effort explanation (RBAC may forbid them)
        return None
    if not events:
        return None

    def when(event: Any) -> float:
        stamps = (event.last_timestamp, event.event_time, event.first_timestamp,
                  event.metadata.creation_timestamp if event.metadata else None)
        return max((timestamp(s) for s in stamps if s is not None), default=0.0)

    newest = max(events, key=when)
    return reason_text(newest.reason, newest.message)


# ------------------------------------------------------------------ ranks that failed
@dataclass(frozen=True)
class FailedRank:
    rank: int
    pod: Any
    description: str  # `exit code 2, Error`, or the pod's reason
    exit_code: int | None
    finished_at: float | None
    termination: str | None  # the container's termination message


def failed_ranks(failed_pods: list[Any], container: str | None) -> list[FailedRank]:
    """One entry per failed rank (its first failure), the first rank to fail first: the others
    usually fail because of it."""
    first: dict[int, FailedRank] = {}
    for pod in failed_pods:
        description, exit_code, finished_at, termination = termination_of(pod, container)
        rank = pod_rank(pod)
        if rank not in first or (finished_at or NEVER) < (first[rank].finished_at or NEVER):
            first[rank] = FailedRank(rank, pod, description, exit_code, finished_at, termination)
    return sorted(first.values(), key=lambda f: (f.finished_at if f.finished_at is not None else NEVER, f.rank))


def termination_of(pod: Any, container: str | None) -> tuple[str, int | None, float | None, str | None]:
    """(`exit code 2, Error` or the pod's reason, exit code, finish time, termination message)."""
    statuses = list(pod.status.container_statuses or []) if pod.status else []
    statuses.sort(key=lambda s: s.name != container)  # our container first
    for status in statuses:
        terminated = status.state.terminated if status.state else None
        if terminated is not None and terminated.exit_code != 0:
            description = f"exit code {terminated.exit_code}"
            if terminated.reason:
                description += f", {terminated.reason}"
            finished = timestamp(terminated.finished_at) if terminated.finished_at else None
            message = one_line(terminated.message, 200) if terminated.message else None
            return description, terminated.exit_code, finished, message
    why = reason_text(pod.status.reason, pod.status.message) if pod.status else None
    return why or "phase Failed", None, None, None


def explain_failures(core: Any, namespace: str, job_name: str, container: str | None,
                     failed: list[FailedRank], log: Callable[[str], None]) -> list[str]:
    """Log each failed rank's log tail; returns `rank N failed (...)` per rank, the first (the root
    cause) with its termination message or last log line."""
    parts = []
    for index, failure in enumerate(failed):
        rank = failure.rank
        log(f"job {job_name}: rank {rank} failed ({failure.description}); last {LOG_TAIL_LINES} lines of its log:")
        lines, readable = log_tail(core, namespace, failure.pod, container)
        for line in lines:
            log(f"[rank {rank}] {line}")
        part = f"rank {rank} failed ({failure.description})"
        if index == 0:
            last = next((line for line in reversed(lines) if line.strip()), None) if readable else None
            if failure.termination or last:
                part += f": {one_line(failure.termination or last, 200)}"
        parts.append(part)
    return parts
