"""Pure builders of the Kubernetes objects that run one configuration: plain dicts, no client.

Where a configuration goes is its pool's `placement`:
- **single node** (world size <= the pool's GPUs per node): one pod requesting one GPU per rank
  (`build_single_node_pod`), launched by the provider's KubernetesPodOperator
  (operators/kubernetes/pod_operator.py). It runs `mlbench node`, which starts the ranks as local
  processes, rank i on GPU i, so NCCL uses NVLink / PCIe peer access and shared memory.
- **multi-node**: an Indexed Job (`build_manifests`; completions = parallelism = pods; node rank =
  completion index) plus a headless Service that gives the pods stable DNS names, so the pod of
  rank 0 is reachable at `<job>-0.<service>` before any pod is ready. A pod of one rank runs
  `mlbench worker` (rank = completion index); a pod of a whole node's GPUs runs `mlbench node`
  (global rank = node rank x ranks per pod + local rank).
Names are fixed (derived from the DAG run and the configuration), so the launcher never has to
discover what it created. Every rank runs the command a local rank runs, reading
`/results/<run>/<config>/config.json`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from operators.kubernetes.pools import Placement, PoolProfile, placement
from operators.planning import Configuration, safe_name
from tasks.runtime.bundle import CONFIG_FILE
from tasks.runtime.local_job import node_args, rank_environment, worker_args
from tasks.settings import Settings

NAMESPACE = "mlbench"
WORKER_SERVICE_ACCOUNT = "mlbench-worker"
DATASETS_CLAIM = "mlbench-datasets"
RESULTS_CLAIM = "mlbench-results"
DATASETS_MOUNT = "/datasets"
RESULTS_MOUNT = "/results"
RENDEZVOUS_PORT = 29500
RUN_AS_USER = 10001
FINISHED_TTL_S = 3600  # a safety net: the launcher deletes everything itself
LABEL_PREFIX = "mlbench.io"


@dataclass(frozen=True)
class LaunchTarget:
    """Where one configuration's objects go and what they run, for both paths."""

    pool: PoolProfile
    image: str
    dag_id: str
    dag_run_id: str
    namespace: str = NAMESPACE
    run_timeout_s: int = 6 * 3600
    rendezvous_timeout_s: int = 900


@dataclass(frozen=True)
class JobNames:
    job: str
    service: str

    @property
    def master_addr(self) -> str:
        return f"{self.job}-0.{self.service}"


def _label_value(text: str) -> str:
    """A valid label value (<= 63 chars) spelled like the run directory (`safe_name`)."""
    cleaned = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", safe_name(text))
    if len(cleaned) <= 63:
        return cleaned or "none"
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return f"{cleaned[:54].rstrip('-_.')}-{digest}"


def job_names(dag_id: str, dag_run_id: str, config_id: str, world_size: int) -> JobNames:
    """Short, deterministic DNS names (pod hostnames `<job>-<index>` must stay under 63 chars);
    the DAG id is part of the hash, so equal run ids of two DAGs never share a Job."""
    digest = hashlib.sha1(f"{dag_id}/{dag_run_id}/{config_id}".encode()).hexdigest()[:10]
    name = f"mlb-{digest}-w{world_size}"
    return JobNames(job=name, service=name)


def run_labels(dag_id: str, dag_run_id: str) -> dict[str, str]:
    """Labels shared by everything of one DAG run (the cleanup step selects on these)."""
    return {
        "app.kubernetes.io/name": "mlbench",
        "app.kubernetes.io/managed-by": "mlbench-airflow",
        f"{LABEL_PREFIX}/dag-id": _label_value(dag_id),
        f"{LABEL_PREFIX}/dag-run": _label_value(dag_run_id),
    }


def build_manifests(configuration: Configuration, target: LaunchTarget) -> list[dict[str, Any]]:
    """[headless Service, Indexed Job] for one planned configuration (see operators.planning) that
    spans nodes; a single-node configuration gets them too (`mlbench render --path job`), but the
    pipeline launches it as one pod (`build_single_node_pod`)."""
    c, t, pool = configuration, target, target.pool
    place = placement(c.world_size, pool)
    if place.single_node:  # on the Job path: pods of the pool's size, or one pod of all its ranks
        per_pod = pool.ranks_per_job_pod if c.world_size % pool.ranks_per_job_pod == 0 else c.world_size
        place = Placement(single_node=False, pods=c.world_size // per_pod, ranks_per_pod=per_pod)
    names = job_names(t.dag_id, t.dag_run_id, c.config_id, c.world_size)
    labels, annotations = _identity(c, t.dag_id, t.dag_run_id, names)
    config_path, output = _bundle_paths(c)
    if place.ranks_per_pod == 1:
        args = worker_args(config_path, output, DATASETS_MOUNT)
    else:
        args = node_args(config_path, output, DATASETS_MOUNT)
    environment = _pod_environment(names.master_addr, c.world_size, place.ranks_per_pod, pool, t.image,
                                   t.rendezvous_timeout_s)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": names.service, "namespace": t.namespace, "labels": dict(labels),
                     "annotations": dict(annotations)},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,  # rank 0 must resolve before any pod is ready
            "selector": {f"{LABEL_PREFIX}/job": names.job},
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT}],
        },
    }
    spec = _pod_spec(pool, t.image, args, environment, gpus=place.gpus_per_pod if pool.gpus_per_pod else 0,
                     share=place.ranks_per_pod / pool.ranks_per_job_pod)
    spec["subdomain"] = names.service
    pod_template = {"metadata": {"labels": dict(labels), "annotations": dict(annotations)}, "spec": spec}
    return [service, _indexed_job(names, t.namespace, labels, annotations, pool, place.pods, t.run_timeout_s,
                                  pod_template)]


def build_single_node_pod(configuration: Configuration, target: LaunchTarget) -> dict[str, Any]:
    """The one pod of a configuration that fits on one node of its pool: a GPU per rank, the ranks
    as local processes (`mlbench node`), cpu, memory and /dev/shm scaled to its share of the pool's
    pod size. The KubernetesPodOperator adds its own labels and a random name suffix."""
    c, t, pool = configuration, target, target.pool
    place = placement(c.world_size, pool)
    if not place.single_node:
        raise ValueError(f"{c.config_id}: world size {c.world_size} spans nodes of pool {pool.name}: "
                         "it runs as an Indexed Job (build_manifests)")
    names = job_names(t.dag_id, t.dag_run_id, c.config_id, c.world_size)
    labels, annotations = _identity(c, t.dag_id, t.dag_run_id, names)
    config_path, output = _bundle_paths(c)
    environment = _pod_environment("127.0.0.1", c.world_size, c.world_size, pool, t.image, t.rendezvous_timeout_s)
    environment["NODE_RANK"] = "0"
    spec = _pod_spec(pool, t.image, node_args(config_path, output, DATASETS_MOUNT), environment,
                     gpus=c.world_size, share=c.world_size / pool.ranks_per_job_pod)
    spec["activeDeadlineSeconds"] = int(t.run_timeout_s)
    if pool.kueue_queue:  # Kueue's pod integration admits a plain pod by this label
        labels["kueue.x-k8s.io/queue-name"] = pool.kueue_queue
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": names.job, "namespace": t.namespace, "labels": labels, "annotations": annotations},
            "spec": spec}


def _identity(c: Configuration, dag_id: str, dag_run_id: str, names: JobNames
              ) -> tuple[dict[str, str], dict[str, str]]:
    """Labels (the cleanup step selects on the run's) and annotations of every object of `c`."""
    labels = {
        **run_labels(dag_id, dag_run_id),
        "app.kubernetes.io/component": "worker",
        f"{LABEL_PREFIX}/config-id": _label_value(c.config_id),
        f"{LABEL_PREFIX}/job": names.job,
    }
    return labels, {f"{LABEL_PREFIX}/dag-run-id": dag_run_id, f"{LABEL_PREFIX}/config-id": c.config_id}


def _bundle_paths(c: Configuration) -> tuple[str, str]:
    """config.json and the bundle directory as the pods see them: the same relative path under the
    shared results volume as on the Airflow side (the launch step writes config.json there)."""
    output = PurePosixPath(RESULTS_MOUNT) / PurePosixPath(c.output).parent.name / PurePosixPath(c.output).name
    return str(output / CONFIG_FILE), str(output)


def _pod_environment(master_addr: str, world_size: int, ranks_per_pod: int, pool: PoolProfile, image: str,
                     rendezvous_timeout_s: int) -> dict[str, str]:
    environment = rank_environment(0, world_size, master_addr, RENDEZVOUS_PORT,
                                   local_world_size=ranks_per_pod,
                                   threads=max(1, _millicores(pool.cpu) // 1000 // pool.ranks_per_job_pod))
    # each pod's ranks come from its completion index (`worker`) or node rank (`node`)
    for per_rank in ("RANK", "LOCAL_RANK"):
        del environment[per_rank]
    environment.update({
        **pool.nccl_env,
        "MLBENCH_RENDEZVOUS_TIMEOUT_S": str(rendezvous_timeout_s),
        "MLBENCH_IMAGE": image,
        "MLBENCH_NODE_TYPE": pool.name,
        "HOME": "/tmp",  # read-only root filesystem: caches go to the writable /tmp
    })
    return environment


def _indexed_job(names: JobNames, namespace: str, labels: dict[str, str], annotations: dict[str, str],
                 pool: PoolProfile, pods: int, run_timeout_s: int, pod_template: dict[str, Any]
                 ) -> dict[str, Any]:
    metadata = {"name": names.job, "namespace": namespace, "labels": dict(labels), "annotations": dict(annotations)}
    if pool.kueue_queue:
        metadata["labels"]["kueue.x-k8s.io/queue-name"] = pool.kueue_queue
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "completionMode": "Indexed",
            "completions": pods,
            "parallelism": pods,
            "backoffLimit": 0,  # one failed rank fails the job; Airflow retries the configuration
            "activeDeadlineSeconds": int(run_timeout_s),
            "ttlSecondsAfterFinished": FINISHED_TTL_S,
            "suspend": bool(pool.kueue_queue),  # Kueue admits the whole gang by unsuspending
            "template": pod_template,
        },
    }


def _millicores(cpu: str) -> int:
    return int(cpu[:-1]) if cpu.endswith("m") else int(float(cpu) * 1000)


_MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def _scaled_cpu(cpu: str, share: float) -> str:
    return cpu if share == 1 else f"{max(100, int(_millicores(cpu) * share))}m"


def _scaled_memory(quantity: str, share: float) -> str:
    """`quantity` x `share`, in whole MiB (at least 64Mi)."""
    if share == 1:
        return quantity
    unit = next((u for u in sorted(_MEMORY_UNITS, key=len, reverse=True) if quantity.endswith(u)), "")
    number = float(quantity[: len(quantity) - len(unit)] if unit else quantity)
    return f"{max(64, int(number * _MEMORY_UNITS.get(unit, 1) * share / 2**20))}Mi"


def _pod_spec(pool: PoolProfile, image: str, args: list[str], environment: dict[str, str], *, gpus: int,
              share: float = 1.0) -> dict[str, Any]:
    """The pod spec of any mlbench pod: `gpus` GPUs (0 on CPU pools), and `share` of the pool's pod
    size in cpu, memory and /dev/shm."""
    memory = _scaled_memory(pool.memory, share)
    limits: dict[str, str] = {"memory": memory, **pool.extra_limits}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)  # GPUs only in limits
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": WORKER_SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": dict(pool.node_selector),
        "tolerations": [dict(t) for t in pool.tolerations],
        "containers": [
            {
                "name": "worker",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                # A failed rank's last log lines land in its status even when the log is gone.
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "command": ["mlbench"],
                "args": args,
                "env": [{"name": k, "value": v} for k, v in sorted(environment.items())],
                "ports": [{"name": "rendezvous", "containerPort": RENDEZVOUS_PORT}],
                "resources": {"requests": {"cpu": _scaled_cpu(pool.cpu, share), "memory": memory}, "limits": limits},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "privileged": False,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [
                    {"name": "datasets", "mountPath": DATASETS_MOUNT, "readOnly": True},
                    {"name": "results", "mountPath": RESULTS_MOUNT},
                    {"name": "dshm", "mountPath": "/dev/shm"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ],
        "volumes": [
            {"name": "datasets", "persistentVolumeClaim": {"claimName": DATASETS_CLAIM, "readOnly": True}},
            {"name": "results", "persistentVolumeClaim": {"claimName": RESULTS_CLAIM}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": _scaled_memory(pool.shm_size, share)}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if pool.priority_class:
        spec["priorityClassName"] = pool.priority_class
    return spec


def default_image(pool: PoolProfile, settings: Settings) -> str:
    """The settings' image (MLBENCH_IMAGE; may contain `{variant}`: cuda or cpu) for the pool."""
    return settings.image_template.format(variant=pool.image_variant)


def to_yaml(manifests: list[dict[str, Any]]) -> str:
    """Multi-document YAML, written out in full (no anchors/aliases: people read and apply it)."""
    import yaml

    class PlainDumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump_all(manifests, Dumper=PlainDumper, sort_keys=False, default_flow_style=False)
