"""Every manifest the kubernetes launcher can create: schema-valid (strict) and secure."""

import itertools

import kubernetes_validate
import pytest
import yaml

from operators.kubernetes.pools import get_pool, load_pools
from operators.kubernetes.spec import LaunchTarget, build_manifests, default_image, job_names, to_yaml
from operators.planning import plan_configurations
from tasks.settings import Settings
from operators.request import validate_request
from tasks.registry import TASKS
from tasks.runtime.local_job import worker_args

pytestmark = pytest.mark.unit
K8S_VERSION = kubernetes_validate.latest_version()
WORLD_SIZES = (1, 2, 4, 8, 16)
DAG_RUN = "scheduled__2026-11-28T02:00:00+00:00"


def manifests_for(task, world_size, pool_name, algorithm=None):
    pool = get_pool(pool_name)
    request = validate_request({"tasks": [task], "preset": "full", "world_sizes": [world_size],
                                "launcher": "kubernetes",
                                "pool": pool_name, "backend": pool.backend, "accelerator": pool.accelerator,
                                "algorithm": algorithm})
    configuration = plan_configurations(request, run_id=DAG_RUN, runs_root="/results", data_root="/datasets")[0]
    return configuration, pool, build_manifests(configuration, LaunchTarget(
        pool, image=default_image(pool, Settings.from_env()), dag_id="mlbench_nightly", dag_run_id=DAG_RUN))


MATRIX = [
    (task, algorithm.name, world_size, pool)
    for task, spec in TASKS.items()
    for algorithm in spec.algorithms
    for world_size, pool in itertools.product(WORLD_SIZES, load_pools())
]


@pytest.mark.parametrize("task, algorithm, world_size, pool_name", MATRIX)
def test_every_manifest_is_valid_against_the_kubernetes_schema(task, algorithm, world_size, pool_name):
    _, _, manifests = manifests_for(task, world_size, pool_name, algorithm)
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    # and what `mlbench render` prints is the same objects
    assert list(yaml.safe_load_all(to_yaml(manifests))) == manifests


@pytest.mark.parametrize("pool_name", list(load_pools()))
def test_pod_is_placed_and_sized_by_its_pool(pool_name):
    configuration, pool, (service, job) = manifests_for("cifar10-resnet20", 16, pool_name)  # spans nodes
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["nodeSelector"] == pool.node_selector
    assert pod["tolerations"] == list(pool.tolerations)
    resources = container["resources"]
    if pool.gpus_per_pod:
        assert resources["limits"]["nvidia.com/gpu"] == str(pool.gpus_per_pod)
        assert container["image"].endswith("-cuda")
    else:
        assert "nvidia.com/gpu" not in resources["limits"] and container["image"].endswith("-cpu")
    assert "nvidia.com/gpu" not in resources["requests"]  # GPUs only in limits
    assert resources["requests"]["cpu"] == pool.cpu and resources["limits"]["memory"] == pool.memory
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": pool.shm_size}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    if pool.kueue_queue:
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == pool.kueue_queue
        assert job["spec"]["suspend"] is True and pod["priorityClassName"] == pool.priority_class
    else:
        assert job["spec"]["suspend"] is False and "priorityClassName" not in pod


def test_one_indexed_job_of_world_size_pods_with_a_stable_rank0_address():
    configuration, _, (service, job) = manifests_for("cifar10-resnet20", 16, "gke-h100")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 16
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] > 0
    names = job_names("mlbench_nightly", DAG_RUN, configuration.config_id, 16)
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert spec["template"]["spec"]["subdomain"] == service["metadata"]["name"] == names.service
    assert service["spec"]["selector"] == {"mlbench.io/job": names.job}
    assert spec["template"]["metadata"]["labels"]["mlbench.io/job"] == names.job
    env = {e["name"]: e["value"] for e in spec["template"]["spec"]["containers"][0]["env"]}
    assert env["MASTER_ADDR"] == f"{names.job}-0.{names.service}" and env["MASTER_PORT"] == "29500"
    assert env["WORLD_SIZE"] == "16" and "RANK" not in env  # rank = JOB_COMPLETION_INDEX, set by Kubernetes
    assert len(f"{names.job}-15") <= 63  # pod hostnames are DNS labels


def test_pods_run_the_same_worker_command_as_local_ranks():
    configuration, _, (_, job) = manifests_for("cifar10-resnet20", 2, "gke-t4")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["mlbench"]
    output = "/results/scheduled__2026-11-28T02_00_00_00_00/" + configuration.config_id
    # the resolved config the launch step writes into the bundle directory, on the shared volume
    assert container["args"] == worker_args(f"{output}/config.json", output, "/datasets")
    assert container["args"] == ["worker", "--config", f"{output}/config.json", "--output", output,
                                 "--data-root", "/datasets"]
    assert configuration.backend == "nccl"  # what that config.json is resolved with


def test_security_rules():
    for pool_name in load_pools():
        _, _, manifests = manifests_for("cifar10-resnet20", 2, pool_name)
        pod = manifests[1]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "mlbench-worker"
        assert "hostNetwork" not in pod and "hostPID" not in pod and "hostIPC" not in pod
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["privileged"] is False
            assert context["readOnlyRootFilesystem"] is True and context["capabilities"] == {"drop": ["ALL"]}
            assert all("hostPort" not in port for port in container["ports"])
            assert not any("secret" in str(e).lower() or "key" in e["name"].lower() for e in container["env"])
        assert not any("hostPath" in volume or "secret" in volume for volume in pod["volumes"])
        datasets = next(v for v in pod["volumes"] if v["name"] == "datasets")
        assert datasets["persistentVolumeClaim"]["readOnly"] is True


def test_labels_identify_the_dag_run_and_the_configuration():
    configuration, _, manifests = manifests_for("cifar10-resnet20", 2, "cpu")
    for manifest in manifests:
        labels = manifest["metadata"]["labels"]
        assert labels["mlbench.io/dag-id"] == "mlbench_nightly"
        assert labels["mlbench.io/dag-run"] == "scheduled__2026-11-28T02_00_00_00_00"
        assert labels["mlbench.io/config-id"] == configuration.config_id
        assert manifest["metadata"]["annotations"]["mlbench.io/dag-run-id"] == DAG_RUN  # the exact id
        assert all(len(v) <= 63 for v in labels.values())


def test_long_ids_still_give_valid_labels():
    from operators.kubernetes.spec import run_labels

    labels = run_labels("d" * 200, "manual__" + "x" * 200)
    assert all(len(v) <= 63 for v in labels.values())
    assert labels != run_labels("d" * 200, "manual__" + "x" * 199)  # still distinct


def test_unknown_pool_is_one_clear_error():
    from tasks.errors import UserError

    with pytest.raises(UserError, match="unknown pool 'tpu'; valid pools: cpu, gke-t4"):
        get_pool("tpu")


@pytest.mark.parametrize("pool_name", ["cpu", "gke-h100"])
def test_task_0_pods_run_the_worker_sweep_on_their_pools_backend(pool_name):
    configuration, pool, (_, job) = manifests_for("allreduce", 4, pool_name)
    assert ("allreduce", 4) in {(task, size) for task, _, size, _ in MATRIX}  # and the schema check covers it
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    output = "/results/scheduled__2026-11-28T02_00_00_00_00/" + configuration.config_id
    assert args == ["worker", "--config", f"{output}/config.json", "--output", output, "--data-root", "/datasets"]
    # the config.json the pods read is resolved from these (operators.launch)
    assert configuration.task == "allreduce" and configuration.preset == "full"
    assert configuration.backend == pool.backend
    assert configuration.device == ("cuda" if pool.gpus_per_pod else "cpu")
    assert job["spec"]["completions"] == 4 and configuration.config_id == "allreduce__allreduce__w4__r0"
