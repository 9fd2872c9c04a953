"""A fake of the two Kubernetes APIs the Job launcher calls (CoreV1Api, BatchV1Api), shared by the
launcher's tests and the deferred path's.

The fake keeps services, jobs and pods in dicts and returns real `kubernetes.client` models; the
pods of a job follow a scripted timeline (one step per poll) and time is a fake clock advanced by
the launcher's `sleep`, so every case runs instantly.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest

pytest.importorskip("kubernetes")
from kubernetes import client as k8s  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

from operators.kubernetes.indexed_job import KubernetesJobLauncher  # noqa: E402
from operators.kubernetes.pools import get_pool  # noqa: E402
from operators.planning import Configuration  # noqa: E402
from operators.kubernetes.spec import LaunchTarget, build_manifests  # noqa: E402

NS = "mlbench"
DAG_ID = "mlbench_benchmark"
RUN_ID = "manual__2025-01-01T00:00:00+00:00"
RANK_KEY = "batch.kubernetes.io/job-completion-index"
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
GPU_FULL = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."


def configuration(world_size: int = 2) -> Configuration:
    config_id = f"cifar10-resnet20__allreduce__w{world_size}__r0"
    return Configuration(
        config_id=config_id, run_id=RUN_ID, task="cifar10-resnet20", preset="full", algorithm="allreduce",
        world_size=world_size, repeat=0, backend="nccl", device="cuda", launcher="kubernetes",
        accelerator="gpu", pool="gke-t4", overrides={}, output=f"/runs/{RUN_ID}/{config_id}", data_root="/datasets",
    )


def manifests(world_size: int = 2, pool: str = "gke-t4", run_id: str = RUN_ID) -> list[dict[str, Any]]:
    return build_manifests(configuration(world_size), LaunchTarget(
        get_pool(pool), image="mlbench/train:test", dag_id=DAG_ID, dag_run_id=run_id, namespace=NS))


def job_name(ms: list[dict[str, Any]]) -> str:
    return ms[1]["metadata"]["name"]


# --------------------------------------------------------------------------- scripted pod states
@dataclass(frozen=True)
class PodState:
    phase: str
    unschedulable: str | None = None  # PodScheduled=False message
    waiting: tuple[str, str | None] | None = None  # container waiting (reason, message)
    exit_code: int | None = None
    reason: str | None = None  # terminated reason
    finished_s: int = 60  # terminated at T0 + this
    events: tuple[tuple[str, str, str, int], ...] = ()  # (type, reason, message, seconds after T0)


PENDING = PodState("Pending")
RUNNING = PodState("Running")
SUCCEEDED = PodState("Succeeded", exit_code=0, reason="Completed")


def unschedulable(message: str = GPU_FULL) -> PodState:
    return PodState("Pending", unschedulable=message)


def failed(exit_code: int, reason: str = "Error") -> PodState:
    return PodState("Failed", exit_code=exit_code, reason=reason)


def pod_status(state: PodState) -> k8s.V1PodStatus:
    conditions = []
    if state.unschedulable:
        conditions.append(k8s.V1PodCondition(type="PodScheduled", status="False", reason="Unschedulable",
                                             message=state.unschedulable))
    elif state.phase != "Pending" or state.waiting:
        conditions.append(k8s.V1PodCondition(type="PodScheduled", status="True"))
    container_state = None
    if state.waiting:
        container_state = k8s.V1ContainerState(
            waiting=k8s.V1ContainerStateWaiting(reason=state.waiting[0], message=state.waiting[1]))
    elif state.phase == "Running":
        container_state = k8s.V1ContainerState(running=k8s.V1ContainerStateRunning(started_at=T0))
    elif state.phase in ("Succeeded", "Failed"):
        container_state = k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(
            exit_code=state.exit_code, reason=state.reason, finished_at=T0 + timedelta(seconds=state.finished_s)))
    statuses = None
    if container_state is not None:
        statuses = [k8s.V1ContainerStatus(name="worker", image="mlbench/train:test", image_id="",
                                          ready=state.phase == "Running", restart_count=0, state=container_state)]
    return k8s.V1PodStatus(phase=state.phase, conditions=conditions or None, container_statuses=statuses)


def not_found(kind: str, name: str) -> ApiException:
    return ApiException(status=404, reason=f"Not Found: {kind} {name}")


def conflict(kind: str, name: str) -> ApiException:
    return ApiException(status=409, reason=f"AlreadyExists: {kind} {name}")


def matches(labels: dict[str, str] | None, selector: str | None) -> bool:
    if not selector:
        return True
    wanted = dict(term.split("=", 1) for term in selector.split(","))
    return all((labels or {}).get(key) == value for key, value in wanted.items())


class FakeStream:
    """What `read_namespaced_pod_log(follow=True, _preload_content=False)` returns: an urllib3-like
    response whose chunks split lines; with `hold` it blocks (a running pod) until closed."""

    def __init__(self, lines: list[str], hold: bool) -> None:
        self.data = "".join(line + "\n" for line in lines).encode()
        self.hold = hold
        self.closed = threading.Event()

    def stream(self, amt=None, decode_content=None):
        for start in range(0, len(self.data), 7):
            yield self.data[start:start + 7]
        if self.hold:
            self.closed.wait(5)
            import urllib3

            raise urllib3.exceptions.ProtocolError("connection closed")

    def close(self) -> None:
        self.closed.set()

    def release_conn(self) -> None:
        pass


@dataclass
class Failure:
    method: str
    make: Callable[[], Exception]
    from_tick: int
    times: int | None


class FakeCluster:
    """Services, jobs and pods of one namespace; the timeline drives the pods of every live job.

    A step is {rank: PodState, "job": {...extras}}; step i applies i polls after the job was created.
    Job extras: suspend (bool), condition ((type, reason, message)), lag (status not yet updated).
    """

    def __init__(self, timeline: list[dict], *, logs: dict[int, list[str]] | None = None,
                 hold_logs: bool = False, grace_ticks: int = 1) -> None:
        self.timeline = timeline
        self.logs = logs or {}
        self.hold_logs = hold_logs
        self.grace_ticks = grace_ticks
        self.tick = 0
        self.now = 0.0
        self.services: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.pods: dict[str, k8s.V1Pod] = {}
        self.pod_events: dict[str, list] = {}
        self.gone_at: dict[str, int] = {}
        self.calls: list[tuple[str, dict]] = []
        self.deleted: list[tuple[str, str, str | None]] = []
        self.failures: list[Failure] = []
        self.hooks: dict[int, Callable[[], None]] = {}
        self.streams: list[FakeStream] = []
        self.collect: list[str] = []  # uids of background-deleted jobs whose pods the GC deletes next
        self.pods_at_job_create: list[list[str]] = []
        self._ids = itertools.count(1)
        self.core = FakeCoreV1(self)
        self.batch = FakeBatchV1(self)

    # -- time
    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.tick += 1
        self.settle()
        self._apply()
        if self.tick in self.hooks:
            self.hooks[self.tick]()

    def settle(self) -> None:
        """Finish deletions that are due: the garbage collector marks the pods of background-deleted
        jobs one tick later; pods go after their grace period; foreground-deleted jobs after their pods."""
        for uid in self.collect:
            for pod in self._pods_of(uid):
                self.delete_pod(pod.metadata.name)
        self.collect = []
        for name in [n for n, tick in self.gone_at.items() if tick <= self.tick]:
            self.pods.pop(name, None)
            del self.gone_at[name]
        for name in [n for n, e in self.jobs.items() if e["deleting"] and not self._pods_of(e["uid"])]:
            del self.jobs[name]

    # -- scripting
    def fail(self, method: str, make: Callable[[], Exception], *, from_tick: int = 0,
             times: int | None = None) -> None:
        self.failures.append(Failure(method, make, from_tick, times))

    def call(self, method: str, **kwargs: Any) -> None:
        self.calls.append((method, kwargs))
        for failure in self.failures:
            if failure.method == method and self.tick >= failure.from_tick and failure.times != 0:
                if failure.times is not None:
                    failure.times -= 1
                raise failure.make()

    def called(self, method: str) -> list[dict]:
        return [kwargs for name, kwargs in self.calls if name == method]

    def add_job(self, body: dict, *, static: bool = False) -> dict:
        name = body["metadata"]["name"]
        entry = {"body": body, "uid": f"uid-{next(self._ids)}", "created": self.tick, "deleting": False,
                 "static": static, "extras": {}, "suspend": bool(body["spec"].get("suspend"))}
        self.jobs[name] = entry
        return entry

    def add_pod(self, entry: dict, rank: int, state: PodState, *, name: str | None = None) -> k8s.V1Pod:
        body = entry["body"]
        template = body["spec"]["template"]["metadata"]
        name = name or f"{body['metadata']['name']}-{rank}-{entry['uid'][-3:]}x{next(self._ids)}"
        pod = k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(
                name=name, namespace=NS, creation_timestamp=T0 + timedelta(seconds=self.now),
                labels={**template["labels"], RANK_KEY: str(rank), "job-name": body["metadata"]["name"],
                        "batch.kubernetes.io/controller-uid": entry["uid"]},
                annotations={**template["annotations"], RANK_KEY: str(rank)},
                owner_references=[k8s.V1OwnerReference(api_version="batch/v1", kind="Job", controller=True,
                                                       name=body["metadata"]["name"], uid=entry["uid"])],
            ),
            status=pod_status(state),
        )
        self.pods[name] = pod
        self.pod_events[name] = [
            k8s.CoreV1Event(metadata=k8s.V1ObjectMeta(name=f"{name}.{i}", namespace=NS),
                            involved_object=k8s.V1ObjectReference(kind="Pod", name=name, namespace=NS),
                            type=kind, reason=reason, message=message,
                            last_timestamp=T0 + timedelta(seconds=at))
            for i, (kind, reason, message, at) in enumerate(state.events)
        ]
        return pod

    def _pods_of(self, uid: str) -> list[k8s.V1Pod]:
        return [p for p in self.pods.values() if p.metadata.owner_references[0].uid == uid]

    def _apply(self) -> None:
        for entry in self.jobs.values():
            if entry["deleting"] or entry["static"]:
                continue
            step = self.timeline[min(self.tick - entry["created"], len(self.timeline) - 1)]
            entry["extras"] = step.get("job", {})
            if "suspend" in entry["extras"]:
                entry["suspend"] = entry["extras"]["suspend"]
            for rank, state in step.items():
                if rank == "job" or entry["suspend"] or rank >= entry["body"]["spec"]["completions"]:
                    continue
                existing = next((p for p in self._pods_of(entry["uid"])
                                 if p.metadata.labels[RANK_KEY] == str(rank)), None)
                if existing is None:
                    self.add_pod(entry, rank, state)
                elif existing.metadata.deletion_timestamp is None:
                    existing.status = pod_status(state)

    def job_object(self, name: str) -> k8s.V1Job:
        entry = self.jobs[name]
        body, extras = entry["body"], entry["extras"]
        pods = self._pods_of(entry["uid"])
        succeeded = sum(p.status.phase == "Succeeded" for p in pods)
        failures = sum(p.status.phase == "Failed" for p in pods)
        conditions = []
        if "condition" in extras:
            kind, reason, message = extras["condition"]
            conditions.append(k8s.V1JobCondition(type=kind, status="True", reason=reason, message=message))
        elif failures:
            conditions.append(k8s.V1JobCondition(type="Failed", status="True", reason="BackoffLimitExceeded",
                                                 message="Job has reached the specified backoff limit"))
        elif succeeded >= body["spec"]["completions"]:
            conditions.append(k8s.V1JobCondition(type="Complete", status="True"))
        if extras.get("lag"):
            succeeded = failures = 0
            conditions = []
        return k8s.V1Job(
            metadata=k8s.V1ObjectMeta(name=name, namespace=NS, uid=entry["uid"], labels=body["metadata"]["labels"],
                                      deletion_timestamp=T0 if entry["deleting"] else None),
            spec=k8s.V1JobSpec(template=k8s.V1PodTemplateSpec(), completions=body["spec"]["completions"],
                               parallelism=body["spec"]["parallelism"], suspend=entry["suspend"],
                               active_deadline_seconds=body["spec"].get("activeDeadlineSeconds")),
            status=k8s.V1JobStatus(succeeded=succeeded or None, failed=failures or None,
                                   active=(len(pods) - succeeded - failures) or None,
                                   conditions=conditions or None),
        )

    def delete_pod(self, name: str) -> None:
        pod = self.pods[name]
        if pod.metadata.deletion_timestamp is None:
            pod.metadata.deletion_timestamp = T0 + timedelta(seconds=self.now)
            self.gone_at[name] = self.tick + self.grace_ticks


class FakeBatchV1:
    def __init__(self, cluster: FakeCluster) -> None:
        self.c = cluster

    def create_namespaced_job(self, namespace: str, body: dict) -> k8s.V1Job:
        self.c.call("create_namespaced_job", namespace=namespace, body=body)
        name = body["metadata"]["name"]
        if name in self.c.jobs:
            raise conflict("job", name)
        self.c.pods_at_job_create.append(sorted(self.c.pods))
        self.c.add_job(body)
        self.c._apply()
        return self.c.job_object(name)

    def read_namespaced_job(self, name: str, namespace: str) -> k8s.V1Job:
        self.c.call("read_namespaced_job", name=name, namespace=namespace)
        if name not in self.c.jobs:
            raise not_found("job", name)
        return self.c.job_object(name)

    def list_namespaced_job(self, namespace: str, label_selector: str | None = None) -> k8s.V1JobList:
        self.c.call("list_namespaced_job", namespace=namespace, label_selector=label_selector)
        return k8s.V1JobList(items=[self.c.job_object(n) for n, e in self.c.jobs.items()
                                    if matches(e["body"]["metadata"]["labels"], label_selector)])

    def delete_namespaced_job(self, name: str, namespace: str, propagation_policy: str | None = None) -> k8s.V1Status:
        self.c.call("delete_namespaced_job", name=name, namespace=namespace, propagation_policy=propagation_policy)
        if name not in self.c.jobs or self.c.jobs[name]["deleting"]:
            raise not_found("job", name)
        entry = self.c.jobs[name]
        self.c.deleted.append(("job", name, propagation_policy))
        if propagation_policy == "Background":
            self.c.collect.append(entry["uid"])
        if propagation_policy == "Foreground":
            for pod in self.c._pods_of(entry["uid"]):
                self.c.delete_pod(pod.metadata.name)
            entry["deleting"] = True
        else:  # Background, or orphan (the API's default for jobs: the pods stay)
            del self.c.jobs[name]
        return k8s.V1Status(status="Success")


class FakeCoreV1:
    def __init__(self, cluster: FakeCluster) -> None:
        self.c = cluster

    def create_namespaced_service(self, namespace: str, body: dict) -> k8s.V1Service:
        self.c.call("create_namespaced_service", namespace=namespace, body=body)
        name = body["metadata"]["name"]
        if name in self.c.services:
            raise conflict("service", name)
        self.c.services[name] = body
        return k8s.V1Service(metadata=k8s.V1ObjectMeta(name=name, namespace=namespace))

    def read_namespaced_service(self, name: str, namespace: str) -> k8s.V1Service:
        self.c.call("read_namespaced_service", name=name, namespace=namespace)
        if name not in self.c.services:
            raise not_found("service", name)
        return k8s.V1Service(metadata=k8s.V1ObjectMeta(name=name, namespace=namespace))

    def list_namespaced_service(self, namespace: str, label_selector: str | None = None) -> k8s.V1ServiceList:
        self.c.call("list_namespaced_service", namespace=namespace, label_selector=label_selector)
        return k8s.V1ServiceList(items=[
            k8s.V1Service(metadata=k8s.V1ObjectMeta(name=n, namespace=namespace, labels=b["metadata"]["labels"]))
            for n, b in self.c.services.items() if matches(b["metadata"]["labels"], label_selector)])

    def delete_namespaced_service(self, name: str, namespace: str) -> k8s.V1Status:
        self.c.call("delete_namespaced_service", name=name, namespace=namespace)
        if name not in self.c.services:
            raise not_found("service", name)
        del self.c.services[name]
        self.c.deleted.append(("service", name, None))
        return k8s.V1Status(status="Success")

    def list_namespaced_pod(self, namespace: str, label_selector: str | None = None) -> k8s.V1PodList:
        self.c.call("list_namespaced_pod", namespace=namespace, label_selector=label_selector)
        return k8s.V1PodList(items=[p for p in self.c.pods.values() if matches(p.metadata.labels, label_selector)])

    def delete_namespaced_pod(self, name: str, namespace: str) -> k8s.V1Pod:
        self.c.call("delete_namespaced_pod", name=name, namespace=namespace)
        if name not in self.c.pods:
            raise not_found("pod", name)
        self.c.delete_pod(name)
        self.c.deleted.append(("pod", name, None))
        return self.c.pods[name]

    def list_namespaced_event(self, namespace: str, field_selector: str | None = None) -> k8s.CoreV1EventList:
        self.c.call("list_namespaced_event", namespace=namespace, field_selector=field_selector)
        key, _, name = (field_selector or "").partition("=")
        assert key == "involvedObject.name"
        return k8s.CoreV1EventList(items=list(self.c.pod_events.get(name, [])))

    def read_namespaced_pod_log(self, name: str, namespace: str, container: str | None = None,
                                follow: bool | None = None, tail_lines: int | None = None,
                                _preload_content: bool = True) -> Any:
        self.c.call("read_namespaced_pod_log", name=name, namespace=namespace, container=container,
                    follow=follow, tail_lines=tail_lines, _preload_content=_preload_content)
        if name not in self.c.pods:
            raise not_found("pod", name)
        lines = self.c.logs.get(int(self.c.pods[name].metadata.labels[RANK_KEY]), [])
        if follow:
            assert _preload_content is False, "a followed log must be streamed, not preloaded"
            stream = FakeStream(lines, self.c.hold_logs)
            self.c.streams.append(stream)
            return stream
        if tail_lines is not None:
            lines = lines[-tail_lines:]
        return "".join(line + "\n" for line in lines)


# ------------------------------------------------------------------------------------ helpers
def launcher_for(cluster: FakeCluster, *, startup: float = 600, run: float = 3600, **kwargs: Any):
    lines: list[str] = []
    launcher = KubernetesJobLauncher(cluster.core, cluster.batch, namespace=NS, startup_timeout_s=startup,
                                     run_timeout_s=run, poll_interval_s=5, log=lines.append,
                                     clock=cluster.clock, sleep=cluster.sleep, **kwargs)
    return launcher, lines


def assert_all_deleted(cluster: FakeCluster, name: str) -> None:
    assert ("job", name, "Background") in cluster.deleted or ("job", name, "Foreground") in cluster.deleted
    assert ("service", name, None) in cluster.deleted
    assert name not in cluster.services
    for _ in range(cluster.grace_ticks + 2):  # let the garbage collector do what the propagation asked for
        cluster.tick += 1
        cluster.settle()
    assert name not in cluster.jobs
    assert not [p for p in cluster.pods.values() if p.metadata.labels.get("mlbench.io/job") == name]


def assert_log_followers_ended() -> None:
    alive = [t.name for t in threading.enumerate() if t.name.startswith("mlbench-log-") and t.is_alive()]
    assert not alive


def all_ranks(world_size: int, state: PodState) -> dict[int, PodState]:
    return {rank: state for rank in range(world_size)}


