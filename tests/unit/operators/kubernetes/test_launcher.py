"""The Kubernetes job lifecycle against a fake of the two APIs it calls (CoreV1Api, BatchV1Api).

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

from operators.kubernetes.api import clients_from_hook  # noqa: E402
from operators.kubernetes.indexed_job import KubernetesJobLauncher  # noqa: E402
from operators.kubernetes.run_cleanup import cleanup_run, label_selector  # noqa: E402
from operators.kubernetes.pools import get_pool  # noqa: E402
from operators.planning import Configuration  # noqa: E402
from operators.kubernetes.spec import build_manifests, run_labels  # noqa: E402
from tasks.errors import ExitCode  # noqa: E402

pytestmark = pytest.mark.unit

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
    return build_manifests(configuration(world_size), get_pool(pool), image="mlbench/train:test",
                           dag_id=DAG_ID, dag_run_id=run_id, namespace=NS)


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


# -------------------------------------------------------------------------------------- cases
def test_success_follows_rank0_and_deletes_everything():
    ms = manifests(2)
    name = job_name(ms)
    cluster = FakeCluster(
        [{}, all_ranks(2, PENDING), all_ranks(2, RUNNING), all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)],
        logs={0: ["epoch 1 loss 2.30", "epoch 2 loss 1.87", "goal reached"], 1: ["rank 1 says hi"]},
    )
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0, outcome
    assert outcome.message == f"job {name}: all 2 ranks succeeded"
    assert (outcome.failed_ranks, outcome.pending, outcome.timed_out) == ([], {}, False)
    streamed = [line for line in lines if line.startswith("[rank 0] ")]
    assert streamed == ["[rank 0] epoch 1 loss 2.30", "[rank 0] epoch 2 loss 1.87", "[rank 0] goal reached"]
    assert not any("rank 1 says hi" in line for line in lines)  # only rank 0 is followed
    assert lines.index("[rank 0] goal reached") < lines.index(outcome.message)  # drained before the verdict
    creates = [m for m, _ in cluster.calls if m.startswith("create_")]
    assert creates == ["create_namespaced_service", "create_namespaced_job"]
    assert cluster.called("create_namespaced_job")[0]["body"] is ms[1]
    assert {c["label_selector"] for c in cluster.called("list_namespaced_pod")} == {f"mlbench.io/job={name}"}
    assert any("all 2 ranks running" in line for line in lines)
    assert_all_deleted(cluster, name)
    assert_log_followers_ended()


def test_rank0_log_is_shown_even_if_the_job_finished_between_polls():
    ms = manifests(2)
    cluster = FakeCluster([{}, all_ranks(2, SUCCEEDED)], logs={0: ["fast run", "goal reached"]})
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0
    assert lines.index("[rank 0] goal reached") < lines.index(outcome.message)
    assert_all_deleted(cluster, job_name(ms))


def test_waits_for_every_rank_to_exist_before_judging():
    """Pods appear one at a time (the provider's listing race): never judged on a partial listing."""
    ms = manifests(4)
    cluster = FakeCluster([{}, {0: RUNNING}, {0: RUNNING, 1: RUNNING}, {0: RUNNING, 1: RUNNING, 2: RUNNING},
                           all_ranks(4, RUNNING), all_ranks(4, RUNNING), all_ranks(4, SUCCEEDED)])
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0, outcome
    running_at = next(i for i, line in enumerate(lines) if "all 4 ranks running" in line)
    assert "after 20s" in lines[running_at]
    assert_all_deleted(cluster, job_name(ms))


def test_startup_timeout_names_each_rank_and_why():
    ms = manifests(4)
    name = job_name(ms)
    cluster = FakeCluster([{0: RUNNING, 1: RUNNING, 2: unschedulable()}])
    launcher, lines = launcher_for(cluster, startup=600)

    outcome = launcher.run(ms)

    assert outcome.returncode == 124 and outcome.timed_out
    assert outcome.message == (
        f"job {name}: 2 of 4 ranks not running after 600s: rank 2 Pending (Unschedulable: 0/3 nodes are "
        "available: 3 Insufficient nvidia.com/gpu); rank 3 not created yet"
    )
    assert outcome.pending == {2: "Pending (Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu)",
                               3: "not created yet"}
    progress = [line for line in lines if "2/4 ranks running, 2 pending" in line]
    assert 15 <= len(progress) <= 20  # about every 30 s over 600 s, not every poll
    assert "rank 2 Pending (Unschedulable" in progress[0]
    assert_all_deleted(cluster, name)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(
            PodState("Pending", events=(
                ("Normal", "Scheduled", "Successfully assigned elsewhere", 1),
                ("Warning", "FailedScheduling",
                 "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.", 50),
                ("Normal", "TriggeredScaleUp", "pod triggered scale-up", 20),
            )),
            "rank 1 Pending (FailedScheduling: 0/3 nodes are available: 3 node(s) didn't match Pod's node "
            "affinity/selector)",
            id="reason-only-in-an-event",
        ),
        pytest.param(
            PodState("Pending", waiting=("ImagePullBackOff", 'Back-off pulling image "mlbench/train:test"')),
            'rank 1 Pending (ImagePullBackOff: Back-off pulling image "mlbench/train:test")',
            id="image-pull-backoff",
        ),
        pytest.param(
            PodState("Pending", waiting=("ErrImagePull", "rpc error: code = NotFound\n desc = not found")),
            "rank 1 Pending (ErrImagePull: rpc error: code = NotFound desc = not found)",
            id="multi-line-message-becomes-one-line",
        ),
        pytest.param(
            PodState("Pending", waiting=("ContainerCreating", None), events=(
                ("Warning", "FailedMount", 'MountVolume.SetUp failed for volume "results": not found', 30),)),
            'rank 1 Pending (FailedMount: MountVolume.SetUp failed for volume "results": not found)',
            id="generic-waiting-reason-explained-by-event",
        ),
        pytest.param(PENDING, "rank 1 Pending", id="nothing-known"),
    ],
)
def test_startup_timeout_reasons(state, expected):
    ms = manifests(2)
    cluster = FakeCluster([{0: RUNNING, 1: state}])
    launcher, _ = launcher_for(cluster, startup=60)

    outcome = launcher.run(ms)

    assert outcome.returncode == 124
    assert outcome.message.endswith(f"1 of 2 ranks not running after 60s: {expected}")
    assert "\n" not in outcome.message
    assert list(outcome.pending) == [1]
    assert_all_deleted(cluster, job_name(ms))


def test_startup_timeout_survives_forbidden_events():
    ms = manifests(2)
    cluster = FakeCluster([{0: RUNNING, 1: PENDING}])
    cluster.fail("list_namespaced_event", lambda: ApiException(status=403, reason="Forbidden"))
    launcher, _ = launcher_for(cluster, startup=60)

    outcome = launcher.run(ms)

    assert outcome.returncode == 124 and outcome.pending == {1: "Pending"}
    assert_all_deleted(cluster, job_name(ms))


def test_kueue_suspended_job_waits_for_admission():
    ms = manifests(2, pool="kueue-h100")
    assert ms[1]["spec"]["suspend"] is True
    suspended = {"job": {"suspend": True}, **all_ranks(2, RUNNING)}
    cluster = FakeCluster([suspended] * 8 + [{"job": {"suspend": False}, **all_ranks(2, RUNNING)},
                                             all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)])
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0, outcome
    assert any("waiting for Kueue admission" in line for line in lines)
    assert_all_deleted(cluster, job_name(ms))


def test_kueue_never_admitting_times_out_with_that_reason():
    ms = manifests(2, pool="kueue-h100")
    cluster = FakeCluster([{"job": {"suspend": True}}])
    launcher, _ = launcher_for(cluster, startup=120)

    outcome = launcher.run(ms)

    assert outcome.returncode == 124
    assert "still suspended: waiting for Kueue admission" in outcome.message
    assert outcome.pending == {0: "not created yet", 1: "not created yet"}
    assert_all_deleted(cluster, job_name(ms))


def test_failed_rank_reports_exit_code_and_log_tail():
    ms = manifests(2)
    name = job_name(ms)
    rank1_log = [f"step {i}" for i in range(80)] + ["ValueError: learning rate must be positive"]
    cluster = FakeCluster([all_ranks(2, RUNNING), all_ranks(2, RUNNING), {0: RUNNING, 1: failed(2)}],
                          logs={0: ["rank 0 training"], 1: rank1_log}, hold_logs=True)
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == ExitCode.RUN_FAILED
    assert outcome.failed_ranks == [1] and outcome.exit_codes == {1: 2}
    assert outcome.message == (f"job {name}: rank 1 failed (exit code 2, Error): "
                               "ValueError: learning rate must be positive")
    tails = [kw for kw in cluster.called("read_namespaced_pod_log") if not kw["follow"]]
    assert [t["tail_lines"] for t in tails] == [50]
    assert tails[0]["name"].startswith(f"{name}-1-") and tails[0]["container"] == "worker"
    assert "[rank 1] ValueError: learning rate must be positive" in lines
    assert "[rank 1] step 31" in lines and "[rank 1] step 30" not in lines  # exactly the last 50 lines
    assert_all_deleted(cluster, name)
    assert all(stream.closed.is_set() for stream in cluster.streams)
    assert_log_followers_ended()


def test_the_first_rank_to_fail_is_named_first():
    """Rank 2 is OOM-killed; rank 0 then fails on the broken collective: rank 2 is the cause."""
    ms = manifests(4)
    name = job_name(ms)
    oom = failed(137, "OOMKilled")
    consequence = PodState("Failed", exit_code=1, reason="Error", finished_s=120)
    cluster = FakeCluster([all_ranks(4, RUNNING), {0: consequence, 1: RUNNING, 2: oom, 3: RUNNING}],
                          logs={2: ["allocating", "Killed"], 0: ["NCCL error: remote process exited"]})
    launcher, _ = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.failed_ranks == [0, 2] and outcome.exit_codes == {0: 1, 2: 137}
    assert outcome.message == (f"job {name}: rank 2 failed (exit code 137, OOMKilled): Killed; "
                               "rank 0 failed (exit code 1, Error)")
    assert_all_deleted(cluster, name)


@pytest.mark.parametrize("lag", [False, True], ids=["job-status-updated", "job-status-lagging"])
def test_rank_failing_during_startup_goes_straight_to_failure(lag):
    ms = manifests(4)
    cluster = FakeCluster([{0: PENDING, 1: PENDING},
                           {"job": {"lag": lag}, 0: PENDING, 1: failed(137, "OOMKilled")}])
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == ExitCode.RUN_FAILED, outcome
    assert outcome.failed_ranks == [1] and not outcome.timed_out
    assert "rank 1 failed (exit code 137, OOMKilled)" in outcome.message
    assert cluster.now == 5  # detected at the first poll that saw it, not at the startup timeout
    assert_all_deleted(cluster, job_name(ms))


def test_active_deadline_exceeded_is_a_timeout():
    ms = manifests(2)
    cluster = FakeCluster([all_ranks(2, RUNNING), all_ranks(2, RUNNING),
                           {"job": {"condition": ("Failed", "DeadlineExceeded",
                                                  "Job was active longer than specified deadline")}}])
    launcher, _ = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 124 and outcome.timed_out
    assert f"hit its activeDeadlineSeconds ({ms[1]['spec']['activeDeadlineSeconds']}s)" in outcome.message
    assert_all_deleted(cluster, job_name(ms))


def test_stop_request_stops_and_deletes():
    ms = manifests(2)
    stop = threading.Event()
    cluster = FakeCluster([all_ranks(2, RUNNING)], logs={0: ["training"]}, hold_logs=True)
    cluster.hooks[4] = stop.set
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms, stop=stop)

    assert outcome.returncode == 143
    assert outcome.message == f"job {job_name(ms)}: stopped on request"
    assert cluster.now == 20
    assert_all_deleted(cluster, job_name(ms))
    assert cluster.streams and all(stream.closed.is_set() for stream in cluster.streams)
    assert_log_followers_ended()
    assert not any("log stream ended" in line for line in lines)  # closing it ourselves is not an error


def test_run_timeout():
    ms = manifests(2)
    cluster = FakeCluster([{}, all_ranks(2, RUNNING)], logs={0: ["still training"]}, hold_logs=True)
    launcher, _ = launcher_for(cluster, run=100)

    outcome = launcher.run(ms)

    assert outcome.returncode == 124 and outcome.timed_out
    assert outcome.message == f"job {job_name(ms)}: timed out after 100s (2/2 ranks still running)"
    assert cluster.now == 100
    assert_all_deleted(cluster, job_name(ms))
    assert_log_followers_ended()


def test_leftover_job_and_service_are_replaced():
    """A previous Airflow try died: its Job and Service still exist (409); a retry starts clean."""
    ms = manifests(2)
    name = job_name(ms)
    cluster = FakeCluster([{}, all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)])
    cluster.add_job(ms[1], static=True)
    cluster.services[name] = ms[0]
    old_uid = cluster.jobs[name]["uid"]
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0, outcome
    sequence = [m for m, _ in cluster.calls if m.startswith(("create_", "delete_"))]
    assert sequence[:5] == ["create_namespaced_service", "delete_namespaced_job", "delete_namespaced_service",
                            "create_namespaced_service", "create_namespaced_job"]
    assert cluster.deleted[0] == ("job", name, "Background")
    assert any("previous try" in line for line in lines)
    assert old_uid not in {p.metadata.owner_references[0].uid for p in cluster.pods.values()}
    assert_all_deleted(cluster, name)


@pytest.mark.parametrize("orphaned", [False, True], ids=["with-their-job", "orphaned"])
def test_leftover_pods_are_gone_before_the_new_job_starts(orphaned):
    """Pods of a previous try (even orphaned ones) must not run beside the new ranks."""
    ms = manifests(2)
    name = job_name(ms)
    cluster = FakeCluster([{}, all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)], grace_ticks=3)
    old = cluster.add_job(ms[1], static=True)
    cluster.services[name] = ms[0]
    old_pods = {cluster.add_pod(old, rank, RUNNING).metadata.name for rank in range(2)}
    if orphaned:
        del cluster.jobs[name], cluster.services[name]
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0, outcome
    assert cluster.pods_at_job_create == [[]]  # created once, after the old pods were gone
    if orphaned:
        assert {kw["name"] for kw in cluster.called("delete_namespaced_pod")} == old_pods
    assert cluster.now >= 3 * 5  # it waited out their grace period
    assert any("2 pod(s) of a previous try still exist" in line for line in lines)
    assert_all_deleted(cluster, name)


def test_leftovers_that_never_go_away_time_out():
    ms = manifests(2)
    cluster = FakeCluster([all_ranks(2, RUNNING)], grace_ticks=10_000)
    old = cluster.add_job(ms[1], static=True)
    cluster.add_pod(old, 0, RUNNING)
    launcher, _ = launcher_for(cluster, leftover_timeout_s=60)

    outcome = launcher.run(ms)

    assert outcome.returncode == 124
    assert "leftovers of a previous try still exist after 60s: 1 pod(s)" in outcome.message
    assert not cluster.called("create_namespaced_job")


def test_pods_of_another_job_with_the_same_label_are_ignored():
    """A terminating, failed pod of an older Job with the same name must not fail the new run."""
    ms = manifests(2)
    cluster = FakeCluster([{}, all_ranks(2, RUNNING), all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)])

    def stale_pod_appears():
        ghost = {"body": ms[1], "uid": "uid-of-an-older-job"}
        cluster.add_pod(ghost, 1, failed(143))

    cluster.hooks[1] = stale_pod_appears
    launcher, _ = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0, outcome


def test_second_conflict_raises_and_still_cleans_up():
    ms = manifests(2)
    cluster = FakeCluster([all_ranks(2, RUNNING)])
    cluster.fail("create_namespaced_job", lambda: conflict("job", job_name(ms)))
    launcher, _ = launcher_for(cluster)

    with pytest.raises(ApiException) as raised:
        launcher.run(ms)

    assert raised.value.status == 409
    assert len(cluster.called("create_namespaced_job")) == 2
    assert job_name(ms) not in cluster.services


def test_api_error_mid_run_propagates_after_retries_and_deletes_everything():
    ms = manifests(2)
    cluster = FakeCluster([{}, all_ranks(2, RUNNING)], logs={0: ["x"]}, hold_logs=True)
    cluster.fail("list_namespaced_pod", lambda: ApiException(status=500, reason="Internal Server Error"),
                 from_tick=3)
    launcher, lines = launcher_for(cluster)

    with pytest.raises(ApiException) as raised:
        launcher.run(ms)

    assert raised.value.status == 500
    assert sum("API error while polling" in line for line in lines) == 3
    assert_all_deleted(cluster, job_name(ms))
    assert_log_followers_ended()


def test_non_transient_api_error_propagates_at_once():
    ms = manifests(2)
    cluster = FakeCluster([{}, all_ranks(2, RUNNING)])
    cluster.fail("read_namespaced_job", lambda: ApiException(status=403, reason="Forbidden"), from_tick=2)
    launcher, _ = launcher_for(cluster)

    with pytest.raises(ApiException):
        launcher.run(ms)

    assert cluster.now == 10
    assert_all_deleted(cluster, job_name(ms))


def test_a_transient_api_error_is_ridden_out():
    ms = manifests(2)
    cluster = FakeCluster([{}, all_ranks(2, RUNNING), all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)])
    cluster.fail("list_namespaced_pod", lambda: ApiException(status=503, reason="Service Unavailable"),
                 from_tick=1, times=2)
    launcher, _ = launcher_for(cluster)

    assert launcher.run(ms).returncode == 0


def test_error_while_creating_the_job_deletes_the_service():
    ms = manifests(2)
    cluster = FakeCluster([{}])
    cluster.fail("create_namespaced_job", lambda: ApiException(status=422, reason="Unprocessable Entity"))
    launcher, _ = launcher_for(cluster)

    with pytest.raises(ApiException):
        launcher.run(ms)

    assert ("service", job_name(ms), None) in cluster.deleted and not cluster.services


def test_failed_cleanup_keeps_the_outcome():
    ms = manifests(2)
    cluster = FakeCluster([all_ranks(2, SUCCEEDED)])
    cluster.fail("delete_namespaced_job", lambda: ApiException(status=503, reason="Service Unavailable"))
    launcher, lines = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == 0
    assert any("cleanup failed" in line for line in lines)
    assert ("service", job_name(ms), None) in cluster.deleted  # the other object was still deleted


def test_job_deleted_by_someone_else_is_a_failure():
    ms = manifests(2)
    cluster = FakeCluster([all_ranks(2, RUNNING)])
    cluster.hooks[2] = lambda: cluster.batch.delete_namespaced_job(job_name(ms), NS, propagation_policy="Background")
    launcher, _ = launcher_for(cluster)

    outcome = launcher.run(ms)

    assert outcome.returncode == ExitCode.RUN_FAILED and "disappeared" in outcome.message


def test_delete_is_idempotent_and_propagates_to_pods():
    ms = manifests(2)
    cluster = FakeCluster([all_ranks(2, RUNNING)])
    cluster.core.create_namespaced_service(NS, ms[0])
    cluster.batch.create_namespaced_job(NS, ms[1])
    launcher, lines = launcher_for(cluster)

    launcher.delete(ms)
    launcher.delete(ms)

    assert cluster.deleted == [("job", job_name(ms), "Background"), ("service", job_name(ms), None)]
    assert_all_deleted(cluster, job_name(ms))


def test_namespace_mismatch_is_refused_before_creating_anything():
    ms = manifests(2)
    cluster = FakeCluster([{}])
    launcher = KubernetesJobLauncher(cluster.core, cluster.batch, namespace="elsewhere", startup_timeout_s=1,
                                     run_timeout_s=1, clock=cluster.clock, sleep=cluster.sleep, log=lambda _: None)
    with pytest.raises(ValueError, match="namespace"):
        launcher.run(ms)
    assert not cluster.calls


def test_cleanup_run_deletes_everything_of_the_run_by_label():
    ours = [manifests(2), manifests(4)]
    theirs = manifests(2, run_id="manual__another-run")
    cluster = FakeCluster([all_ranks(4, RUNNING)])
    for ms in [*ours, theirs]:
        cluster.core.create_namespaced_service(NS, ms[0])
        cluster.batch.create_namespaced_job(NS, ms[1])
    total_ours = 2 + 2 + (2 + 4)  # jobs, services, pods
    selector = label_selector(run_labels(DAG_ID, RUN_ID))
    lines: list[str] = []

    deleted = cleanup_run(cluster.core, cluster.batch, namespace=NS, label_selector=selector, log=lines.append)

    assert deleted == total_ours == len(lines)
    assert {("job", job_name(ms), "Background") for ms in ours} <= set(cluster.deleted)
    for _ in range(3):
        cluster.tick += 1
        cluster.settle()
    assert set(cluster.jobs) == set(cluster.services) == {job_name(theirs)}
    assert all(p.metadata.labels["mlbench.io/job"] == job_name(theirs) for p in cluster.pods.values())
    assert cleanup_run(cluster.core, cluster.batch, namespace=NS, label_selector=selector, log=lines.append) == 0
    with pytest.raises(ValueError):
        cleanup_run(cluster.core, cluster.batch, namespace=NS, label_selector=" ")


def test_label_selector():
    assert label_selector({"app.kubernetes.io/name": "mlbench", "mlbench.io/dag-run": "r1"}) == \
        "app.kubernetes.io/name=mlbench,mlbench.io/dag-run=r1"
    with pytest.raises(ValueError):
        label_selector({})


def test_clients_from_hook_use_the_airflow_connection(monkeypatch):
    hooks = pytest.importorskip("airflow.providers.cncf.kubernetes.hooks.kubernetes")
    made = []

    def get_conn(self):
        made.append(self.conn_id)
        return k8s.ApiClient(k8s.Configuration())

    monkeypatch.setattr(hooks.KubernetesHook, "get_conn", get_conn)

    core, batch = clients_from_hook("my_cluster")

    assert isinstance(core, k8s.CoreV1Api) and isinstance(batch, k8s.BatchV1Api)
    assert core.api_client is batch.api_client
    assert made == ["my_cluster"]


# ------------------------------------------------------------------- conformance with the real client
def test_every_call_the_launcher_makes_is_accepted_by_the_real_client(monkeypatch):
    """Replays the calls of several scenarios through the real CoreV1Api/BatchV1Api (which reject
    unknown methods and keyword arguments), with the HTTP layer stubbed out: the fake cannot drift."""
    calls = []
    scenarios = [
        ([{}, all_ranks(2, RUNNING), all_ranks(2, SUCCEEDED)], {}),
        ([all_ranks(2, RUNNING), {0: RUNNING, 1: failed(1)}], {}),
        ([{0: RUNNING, 1: PodState("Pending", events=(("Warning", "FailedScheduling", "no", 1),))}], {"startup": 30}),
    ]
    for timeline, options in scenarios:
        cluster = FakeCluster(timeline, logs={0: ["a"], 1: ["b"]})
        ms = manifests(2)
        cluster.add_job(ms[1], static=True)
        cluster.services[job_name(ms)] = ms[0]
        launcher_for(cluster, **options)[0].run(ms)
        cleanup_run(cluster.core, cluster.batch, namespace=NS, label_selector="mlbench.io/job=x", log=lambda _: None)
        calls += cluster.calls
    api = k8s.ApiClient(k8s.Configuration())
    sent = []
    monkeypatch.setattr(api, "call_api", lambda path, method, *a, **kw: sent.append((method, path)))
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)

    for method, kwargs in calls:
        getattr(core if hasattr(core, method) else batch, method)(**kwargs)

    assert len(sent) == len(calls)
    assert {m for m, _ in calls} >= {
        "create_namespaced_service", "create_namespaced_job", "list_namespaced_pod",
        "read_namespaced_pod_log", "list_namespaced_event", "delete_namespaced_job", "delete_namespaced_service",
        "read_namespaced_job", "read_namespaced_service", "list_namespaced_job", "list_namespaced_service",
    }


def test_rank0_log_streams_over_real_http_and_stops_on_cleanup():
    """The real client against a local HTTP server: lines arrive while the pod runs (chunked), lines
    split across chunks are joined, and cleanup ends a stream that would otherwise never finish."""
    import http.server
    import socketserver

    from operators.kubernetes.job_logs import LogFollower

    release = threading.Event()
    paths = []

    class PodLog(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"epoch 1\nepo", b"ch 2\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            release.wait(5)  # a running pod: the stream stays open

        def log_message(self, *args):
            pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), PodLog)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        configuration = k8s.Configuration()
        configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
        core = k8s.CoreV1Api(k8s.ApiClient(configuration))
        got: list[str] = []
        both = threading.Event()

        def emit(line):
            got.append(line)
            if len(got) == 2:
                both.set()

        follower = LogFollower(core, NS, "pod-0", "worker", emit, prefix="[rank 0] ")
        follower.start()
        assert both.wait(5), got  # delivered while the stream is still open
        follower.finish(0)

        assert not follower.thread.is_alive()
        assert got == ["[rank 0] epoch 1", "[rank 0] epoch 2"]
        assert paths[0].startswith(f"/api/v1/namespaces/{NS}/pods/pod-0/log?")
        assert "follow=True" in paths[0] and "container=worker" in paths[0]
    finally:
        release.set()
        server.shutdown()
        server.server_close()
