"""The pods of one Indexed Job as its launcher sees them: each pod's rank and phase, whether it
belongs to this try's Job, and one observation of the Job with its current pod per rank."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from operators.kubernetes.spec import LABEL_PREFIX

JOB_LABEL = f"{LABEL_PREFIX}/job"
RANK_KEY = "batch.kubernetes.io/job-completion-index"  # label (k8s >= 1.28) and annotation
CONTROLLER_UID_KEYS = ("batch.kubernetes.io/controller-uid", "controller-uid")
STARTED = ("Running", "Succeeded")


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


def timestamp(value: Any) -> float:
    """Seconds since the epoch of an API datetime; 0 for none."""
    try:
        return value.timestamp()
    except AttributeError:
        return 0.0


def phase(pod: Any) -> str:
    return (pod.status.phase if pod.status else None) or "Pending"


def owned_by(pod: Any, job_uid: str | None) -> bool:
    """Is this pod one of the Job's with this uid (and not a terminating pod of a previous try's Job)?"""
    if job_uid is None:
        return True
    references = pod.metadata.owner_references or []
    if references:
        return any(reference.uid == job_uid for reference in references)
    labels = pod.metadata.labels or {}
    uid = next((labels[key] for key in CONTROLLER_UID_KEYS if key in labels), None)
    return uid is None or uid == job_uid


@dataclass
class Observation:
    job: Any  # V1Job, or None when it no longer exists
    pods: list[Any]
    by_rank: dict[int, Any]  # rank -> its current pod
    failed: list[Any]  # pods in phase Failed

    @property
    def running(self) -> int:
        return sum(1 for pod in self.by_rank.values() if phase(pod) in STARTED)

    @property
    def suspended(self) -> bool:
        return bool(self.job is not None and self.job.spec is not None and self.job.spec.suspend)


NOTHING_SEEN = Observation(job=None, pods=[], by_rank={}, failed=[])


def observe(job: Any, pods: list[Any], world_size: int) -> Observation:
    """The Job and its pods, with the current pod of each rank: one not being deleted, else the newest."""
    by_rank: dict[int, Any] = {}
    for pod in pods:
        rank = pod_rank(pod)
        if rank is None or not 0 <= rank < world_size:
            continue
        current = by_rank.get(rank)
        if current is None or _newer(pod, current):
            by_rank[rank] = pod
    failed = [pod for pod in pods if phase(pod) == "Failed" and pod_rank(pod) is not None]
    return Observation(job=job, pods=pods, by_rank=by_rank, failed=failed)


def _newer(pod: Any, other: Any) -> bool:
    """Prefer a pod that is not being deleted, then the most recently created one."""
    def key(p: Any) -> tuple[bool, float]:
        return (p.metadata.deletion_timestamp is None, timestamp(p.metadata.creation_timestamp))
    return key(pod) > key(other)


# ------------------------------------------------------------------------------------ verdicts
class Verdict(str, Enum):
    """How a watched Job ended; reached by the launcher's poll loop or by the deferrable trigger."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DISAPPEARED = "disappeared"
    STARTUP_TIMEOUT = "startup_timeout"
    RUN_TIMEOUT = "run_timeout"


def failed_condition(job: Any) -> Any:
    """The Job's Failed (or FailureTarget) condition that is true, if any."""
    conditions = (job.status.conditions if job.status is not None else None) or []
    return next((c for c in conditions if c.type in ("Failed", "FailureTarget") and c.status == "True"), None)


def job_verdict(seen: Observation, pods: int) -> Verdict | None:
    """Whether the Job has ended, from one observation; None while it runs."""
    if seen.job is None:
        return Verdict.DISAPPEARED
    status = seen.job.status
    failed_count = (status.failed if status is not None else None) or 0
    if failed_condition(seen.job) is not None or failed_count > 0 or seen.failed:
        return Verdict.FAILED
    succeeded = (status.succeeded if status is not None else None) or 0
    conditions = (status.conditions if status is not None else None) or []
    if succeeded >= pods or any(c.type == "Complete" and c.status == "True" for c in conditions):
        return Verdict.SUCCEEDED
    return None


@dataclass
class JobWatch:
    """The deadlines of one Job's wait: every pod must run by `startup_deadline` (capped by the run's),
    the run must end by `run_deadline`. Clock-agnostic (the trigger uses wall time, which survives a
    move to another triggerer; the launcher its monotonic clock)."""

    pods: int
    startup_deadline: float
    run_deadline: float
    all_running: bool = False

    def judge(self, seen: Observation | None, now: float) -> Verdict | None:
        """The verdict after one poll (`seen` None: the poll failed), or None to keep waiting."""
        if seen is not None:
            verdict = job_verdict(seen, self.pods)
            if verdict is not None:
                return verdict
            if seen.running == self.pods:
                self.all_running = True
        if not self.all_running and now >= min(self.startup_deadline, self.run_deadline):
            return Verdict.STARTUP_TIMEOUT
        if self.all_running and now >= self.run_deadline:
            return Verdict.RUN_TIMEOUT
        return None
