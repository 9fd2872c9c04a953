"""Where a configuration goes on a pool, the single-node pod (as built and as the
KubernetesPodOperator builds it), the whole-node Job pods, and the operator's deferral and result
handling, all without a cluster."""

import json
from types import SimpleNamespace
from unittest import mock

import kubernetes_validate
import pytest

from operators.kubernetes.pools import get_pool, load_pools, placement
from operators.kubernetes.spec import LaunchTarget, build_manifests, build_single_node_pod, default_image
from operators.planning import plan_configurations
from operators.request import InvalidRequest, validate_request
from tasks.registry import TASKS
from tasks.settings import Settings

pytestmark = pytest.mark.unit
K8S_VERSION = kubernetes_validate.latest_version()
DAG_RUN = "scheduled__2026-11-28T02:00:00+00:00"
GPU_POOLS = [name for name, pool in load_pools().items() if pool.gpus_per_node]


def configuration_for(task, world_size, pool_name, runs_root="/results", data_root="/datasets", preset="full"):
    pool = get_pool(pool_name)
    request = validate_request({"tasks": [task], "preset": preset, "world_sizes": [world_size],
                                "launcher": "kubernetes", "pool": pool_name, "backend": pool.backend,
                                "accelerator": pool.accelerator})
    return plan_configurations(request, run_id=DAG_RUN, runs_root=runs_root, data_root=data_root)[0], pool


def single_node_pod(task, world_size, pool_name):
    configuration, pool = configuration_for(task, world_size, pool_name)
    return build_single_node_pod(configuration, LaunchTarget(
        pool, image=default_image(pool, Settings.from_env()), dag_id="mlbench_nightly", dag_run_id=DAG_RUN))


SINGLE_NODE = [(task, size, pool) for task in TASKS for pool in GPU_POOLS for size in (1, 2, 4, 8)
               if size <= get_pool(pool).gpus_per_node]


@pytest.mark.parametrize("task, world_size, pool_name", SINGLE_NODE)
def test_every_single_node_pod_is_schema_valid_with_a_gpu_per_rank(task, world_size, pool_name):
    pod = single_node_pod(task, world_size, pool_name)
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(world_size)
    assert "nvidia.com/gpu" not in container["resources"]["requests"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"], env["NODE_RANK"]) == (str(world_size),) * 2 + ("0",)
    assert env["MASTER_ADDR"] == "127.0.0.1" and "RANK" not in env and "LOCAL_RANK" not in env
    assert container["command"] == ["mlbench"] and container["args"][0] == "node"


def test_the_single_node_pod_keeps_every_security_rule_and_the_run_labels():
    pod = single_node_pod("cifar10-resnet20", 8, "eks-p5-h100")
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["seccompProfile"] == {
        "type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    context = spec["containers"][0]["securityContext"]
    assert context == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                       "privileged": False, "capabilities": {"drop": ["ALL"]}}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["datasets"]["persistentVolumeClaim"]["readOnly"] is True
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "256Gi"}  # a whole node's share
    assert "subdomain" not in spec and spec["activeDeadlineSeconds"] > 0
    assert pod["metadata"]["labels"]["mlbench.io/dag-run"] == "scheduled__2026-11-28T02_00_00_00_00"
    limits = spec["containers"][0]["resources"]["limits"]
    assert limits["vpc.amazonaws.com/efa"] == "32"  # the pool's fast network
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert env["FI_PROVIDER"] == "efa"


def test_a_single_node_pod_of_fewer_gpus_gets_its_share_of_the_pools_pod_size():
    pool = get_pool("gke-h100")  # sized per 1-GPU pod: 20 CPU, 200Gi, 32Gi shm
    pod = single_node_pod("cifar10-resnet20", 4, "gke-h100")
    resources = pod["spec"]["containers"][0]["resources"]
    assert (pool.cpu, pool.memory, pool.shm_size) == ("20", "200Gi", "32Gi")
    assert resources["requests"] == {"cpu": "80000m", "memory": "819200Mi"} == {
        "cpu": "80000m", "memory": resources["limits"]["memory"]}
    shm = next(v for v in pod["spec"]["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["sizeLimit"] == "131072Mi"
    whole = single_node_pod("cifar10-resnet20", 2, "gke-a3-h100")  # sized per 8-GPU pod: 2/8 of it
    assert whole["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "50000m"


@pytest.mark.parametrize("pool_name, world_size, pods, per_pod, command", [
    ("eks-p5-h100", 16, 2, 8, "node"), ("gke-a3-ultra-h200", 32, 4, 8, "node"),
    ("gke-h100", 16, 16, 1, "worker"), ("cpu", 4, 4, 1, "worker"),
])
def test_the_job_path_puts_the_pools_pod_size_in_each_pod(pool_name, world_size, pods, per_pod, command):
    configuration, pool = configuration_for("cifar10-resnet20", world_size, pool_name)
    assert not placement(world_size, pool).single_node or pool_name == "cpu"
    service, job = build_manifests(configuration, LaunchTarget(pool, image="img", dag_id="d", dag_run_id=DAG_RUN))
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == pods
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["args"][0] == command and env["LOCAL_WORLD_SIZE"] == str(per_pod)
    assert env["WORLD_SIZE"] == str(world_size) and "RANK" not in env  # node rank = completion index
    if pool.gpus_per_pod:
        assert container["resources"]["limits"]["nvidia.com/gpu"] == str(per_pod)


def test_a_world_size_that_does_not_fit_the_pool_is_refused_naming_the_valid_sizes():
    with pytest.raises(InvalidRequest, match=r"invalid request field 'world_sizes': world size 12 does not fit pool "
                                             r"'eks-p5-h100' .* valid: 1 to 8 \(one node\), or a multiple of 8"):
        configuration_for("cifar10-resnet20", 12, "eks-p5-h100")
    assert placement(1, get_pool("gke-t4")).single_node and not placement(2, get_pool("gke-t4")).single_node
    assert not placement(1, get_pool("cpu")).single_node  # CPU pools: always the Job path


# ------------------------------------------------------------------------------------- operator
@pytest.fixture()
def planned(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBENCH_HOME", str(tmp_path))
    configuration, _ = configuration_for("cifar10-resnet20", 4, "gke-a3-h100", runs_root=tmp_path / "runs",
                                         data_root=tmp_path / "data", preset="smoke")
    return configuration


def operator_for(configuration):
    from operators.kubernetes.pod_operator import SingleNodeTrainingOperator

    return SingleNodeTrainingOperator(task_id="launch_pod", configuration=configuration.to_dict(), image="img")


def context():
    ti = SimpleNamespace(dag_id="mlbench_benchmark", task_id="launch_pod", run_id=DAG_RUN, map_index=0,
                         try_number=1, start_date=None, xcom_push=mock.Mock())
    return {"dag": SimpleNamespace(dag_id="mlbench_benchmark"), "ti": ti, "run_id": DAG_RUN}


def test_the_operator_writes_the_config_and_defers_to_the_pod_trigger(planned):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger
    from airflow.sdk.exceptions import TaskDeferred

    operator = operator_for(planned)
    assert operator.deferrable and operator.do_xcom_push is False and operator.base_container_name == "worker"
    created = {}

    def create(self, pod_request_obj, context):
        created["pod"] = pod_request_obj
        pod_request_obj.status = SimpleNamespace(phase="Pending", container_statuses=None)
        return pod_request_obj

    with mock.patch.object(KubernetesPodOperator, "get_or_create_pod", create), \
            mock.patch("airflow.providers.cncf.kubernetes.hooks.kubernetes.KubernetesHook.is_in_cluster",
                       new_callable=mock.PropertyMock, return_value=False), \
            pytest.raises(TaskDeferred) as deferred:
        operator.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, KubernetesPodTrigger) and deferred.value.method_name == "trigger_reentry"
    pod = created["pod"]
    assert trigger.pod_name == pod.metadata.name and pod.metadata.name.startswith("mlb-")
    assert trigger.startup_timeout == int(Settings.from_env().k8s_startup_timeout_s)
    container = pod.spec.containers[0]
    assert container.name == "worker" and container.args[0] == "node"
    assert container.resources.limits["nvidia.com/gpu"] == "4"
    assert pod.metadata.labels["mlbench.io/config-id"] == planned.config_id
    assert pod.metadata.labels["dag_id"] == "mlbench_benchmark"  # the provider's labels too
    assert json.loads((planned.output_dir / "config.json").read_text())["world_size"] == 4


def pod_that_exited(code):
    terminated = SimpleNamespace(exit_code=code)
    return SimpleNamespace(status=SimpleNamespace(
        phase="Failed" if code else "Succeeded",
        container_statuses=[SimpleNamespace(name="worker", state=SimpleNamespace(terminated=terminated))]))


def reenter(configuration, event, *, pod, raises=None):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    operator = operator_for(configuration)

    def parent_reentry(self, context, event):
        self.pod = pod
        if raises:
            raise raises

    with mock.patch.object(KubernetesPodOperator, "trigger_reentry", parent_reentry):
        return operator.trigger_reentry(context(), event)


def test_a_failed_pod_is_recorded_and_retried_unless_its_ranks_rejected_their_input(planned):
    from airflow.sdk.exceptions import AirflowFailException

    event = {"status": "failed", "name": "mlb-x", "namespace": "mlbench", "message": "container exited 4"}
    with pytest.raises(RuntimeError, match="configuration .* failed: pod mlb-x failed: container exited 4"):
        reenter(planned, event, pod=pod_that_exited(4), raises=RuntimeError("pod failed"))
    result = json.loads((planned.output_dir / "result.json").read_text())
    assert result["status"] == "failed" and "container exited 4" in result["reason"]
    (planned.output_dir / "result.json").unlink()
    with pytest.raises(AirflowFailException):  # exit code 2: bad input, a retry would fail the same way
        reenter(planned, event, pod=pod_that_exited(2), raises=RuntimeError("pod failed"))


def test_a_success_event_without_a_result_is_not_believed(planned):
    # apache/airflow#73117: the provider returns quietly when the pod is gone after a success event
    event = {"status": "success", "name": "mlb-x", "namespace": "mlbench", "message": "done"}
    with pytest.raises(RuntimeError, match="the pod ended without a result.json"):
        reenter(planned, event, pod=None)


# ------------------------------------------------------------------------------ the trigger's wait
class FakeAsyncHook:
    """The async Kubernetes client the provider's trigger polls: each get_pod returns the next pod of
    `pods` (the last one forever); deletions are recorded."""

    def __init__(self, pods):
        self.pods, self.deleted = list(pods), []

    async def get_pod(self, name, namespace):
        return self.pods.pop(0) if len(self.pods) > 1 else self.pods[0]

    async def watch_pod_events(self, *args, timeout_seconds=None, **kwargs):
        import asyncio

        await asyncio.sleep(0.01)  # a watch that saw no events until its timeout; never a busy loop
        return
        yield

    async def delete_pod(self, name, namespace, grace_period_seconds=None):
        self.deleted.append((name, namespace, grace_period_seconds))


def k8s_pod(phase, *, scheduled=True, exit_code=None):
    from kubernetes.client import (V1ContainerState, V1ContainerStateRunning, V1ContainerStateTerminated,
                                   V1ContainerStatus, V1ObjectMeta, V1Pod, V1PodCondition, V1PodStatus)

    state = (V1ContainerState(terminated=V1ContainerStateTerminated(exit_code=exit_code)) if exit_code is not None
             else V1ContainerState(running=V1ContainerStateRunning()) if phase == "Running" else None)
    statuses = [V1ContainerStatus(name="worker", state=state, image="img", image_id="", ready=phase == "Running",
                                  restart_count=0)] if state else None
    condition = V1PodCondition(type="PodScheduled", status="True" if scheduled else "False",
                               reason=None if scheduled else "Unschedulable")
    return V1Pod(metadata=V1ObjectMeta(name="mlb-x", namespace="mlbench"),
                 status=V1PodStatus(phase=phase, conditions=[condition], container_statuses=statuses))


def deferred_trigger(planned):
    """The trigger the operator defers to (as in the test above), with short timeouts for the test."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger
    from airflow.sdk.exceptions import TaskDeferred

    def create(self, pod_request_obj, context):
        pod_request_obj.status = SimpleNamespace(phase="Pending", container_statuses=None)
        return pod_request_obj

    with mock.patch.object(KubernetesPodOperator, "get_or_create_pod", create), \
            mock.patch("airflow.providers.cncf.kubernetes.hooks.kubernetes.KubernetesHook.is_in_cluster",
                       new_callable=mock.PropertyMock, return_value=False), pytest.raises(TaskDeferred) as deferred:
        operator_for(planned).execute(context())
    _, kwargs = deferred.value.trigger.serialize()
    kwargs.update(startup_timeout=1, schedule_timeout=1, startup_check_interval=0.05, poll_interval=0.01)
    return KubernetesPodTrigger(**kwargs)


def first_event(trigger, hook):
    import asyncio

    trigger.__dict__["hook"] = hook  # the cached async hook, replaced before the first poll

    async def run():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(run())


@pytest.mark.parametrize("pods, status", [
    ([k8s_pod("Pending"), k8s_pod("Running"), k8s_pod("Running"), k8s_pod("Succeeded", exit_code=0)], "success"),
    ([k8s_pod("Pending"), k8s_pod("Running"), k8s_pod("Failed", exit_code=4)], "failed"),  # a rank failed
])
def test_the_trigger_waits_the_pod_out_and_reports_how_it_ended(planned, pods, status):
    trigger = deferred_trigger(planned)
    event = first_event(trigger, FakeAsyncHook(pods))
    assert event["status"] == status and event["name"] == trigger.pod_name



def test_a_pod_pending_forever_times_out_with_the_providers_reason(planned):
    trigger = deferred_trigger(planned)
    event = first_event(trigger, FakeAsyncHook([k8s_pod("Pending", scheduled=False)]))
    assert event["status"] == "timeout" and "took too long to be scheduled" in event["message"]


def test_killing_the_deferred_task_deletes_the_pod(planned):
    import asyncio

    trigger = deferred_trigger(planned)
    hook = FakeAsyncHook([k8s_pod("Running")])
    trigger.__dict__["hook"] = hook
    asyncio.run(trigger.on_kill())  # what the triggerer runs on mark-failed / clear (Airflow 3.3)
    assert hook.deleted == [(trigger.pod_name, "mlbench", 30)]  # with the ranks' grace period


# ------------------------------------------------------------------------- a worker restart
class FakeCoreV1:
    """The sync client the operator uses to find or create its pod: `existing` pods match any search."""

    def __init__(self, existing):
        from kubernetes.client import ApiClient

        self.existing, self.created, self.selectors = list(existing), [], []
        self.api_client = ApiClient()  # serializes the pod before it is sent

    def list_namespaced_pod(self, namespace, label_selector=None, **kwargs):
        self.selectors.append(label_selector)
        return SimpleNamespace(items=list(self.existing))

    def create_namespaced_pod(self, namespace, body, **kwargs):
        self.created.append(body)
        return body


def running_pod(name):
    from kubernetes.client import V1ObjectMeta, V1Pod, V1PodStatus

    return V1Pod(metadata=V1ObjectMeta(name=name, namespace="mlbench", labels={"try_number": "1"}),
                 status=V1PodStatus(phase="Running"))


def execute_with(configuration, client):
    from airflow.sdk.exceptions import TaskDeferred

    operator = operator_for(configuration)
    operator.__dict__["client"] = client  # the provider's cached CoreV1Api
    with mock.patch("airflow.providers.cncf.kubernetes.hooks.kubernetes.KubernetesHook.is_in_cluster",
                    new_callable=mock.PropertyMock, return_value=False), pytest.raises(TaskDeferred) as deferred:
        operator.execute(context())
    return deferred.value.trigger


def test_a_restarted_worker_reattaches_to_the_running_pod_instead_of_starting_a_second(planned):
    client = FakeCoreV1([running_pod("mlb-still-running")])
    trigger = execute_with(planned, client)
    assert trigger.pod_name == "mlb-still-running" and client.created == []
    selector = client.selectors[0]
    assert "already_checked!=True" in selector and "dag_id=mlbench_benchmark" in selector


def test_a_first_try_creates_its_one_pod(planned):
    client = FakeCoreV1([])
    trigger = execute_with(planned, client)
    assert len(client.created) == 1 and trigger.pod_name == client.created[0]["metadata"]["name"]
