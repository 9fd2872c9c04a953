"""Pure builders of the Kubernetes objects that run one configuration: plain dicts, no client.

One configuration = one Indexed Job (completions = parallelism = world size; rank = completion
index) plus a headless Service that gives the pods stable DNS names, so rank 0 is reachable at
`<job>-0.<service>` before any pod is ready. Names are fixed (derived from the DAG run and the
configuration), so the launcher never has to discover what it created. Every pod runs the command
a local rank runs: `mlbench worker --config /results/<run>/<config>/config.json ...`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from operators.kubernetes.pools import PoolProfile
from operators.planning import Configuration, safe_name
from tasks.runtime.bundle import CONFIG_FILE
from tasks.runtime.local_job import rank_environment, worker_args
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


def build_manifests(
    configuration: Configuration,
    pool: PoolProfile,
    *,
    image: str,
    dag_id: str,
    dag_run_id: str,
    namespace: str = NAMESPACE,
    run_timeout_s: int = 6 * 3600,
    rendezvous_timeout_s: int = 900,
) -> list[dict[str, Any]]:
    """[headless Service, Indexed Job] for one planned configuration (see operators.planning)."""
    c = configuration
    world_size = c.world_size
    names = job_names(dag_id, dag_run_id, c.config_id, world_size)
    labels = {
        **run_labels(dag_id, dag_run_id),
        "app.kubernetes.io/component": "worker",
        f"{LABEL_PREFIX}/config-id": _label_value(c.config_id),
        f"{LABEL_PREFIX}/job": names.job,
    }
    annotations = {f"{LABEL_PREFIX}/dag-run-id": dag_run_id, f"{LABEL_PREFIX}/config-id": c.config_id}
    # The bundle lives at the same relative path under the shared results volume on both sides.
    output = PurePosixPath(RESULTS_MOUNT) / PurePosixPath(c.output).parent.name / PurePosixPath(c.output).name
    # Every rank reads the resolved config the launch step wrote there (operators.launch).
    args = worker_args(str(output / CONFIG_FILE), str(output), DATASETS_MOUNT)
    environment = _pod_environment(names, world_size, pool, image, rendezvous_timeout_s)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": names.service, "namespace": namespace, "labels": dict(labels),
                     "annotations": dict(annotations)},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,  # rank 0 must resolve before any pod is ready
            "selector": {f"{LABEL_PREFIX}/job": names.job},
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT}],
        },
    }
    pod_template = {"metadata": {"labels": dict(labels), "annotations": dict(annotations)},
                    "spec": _pod_spec(names, pool, image, args, environment)}
    return [service, _indexed_job(names, namespace, labels, annotations, pool, world_size, run_timeout_s,
                                  pod_template)]


def _pod_environment(names: JobNames, world_size: int, pool: PoolProfile, image: str,
                     rendezvous_timeout_s: int) -> dict[str, str]:
    environment = rank_environment(0, world_size, names.master_addr, RENDEZVOUS_PORT,
                                   local_world_size=1, threads=_threads(pool.cpu))
    del environment["RANK"]  # each pod's rank is its completion index (JOB_COMPLETION_INDEX)
    environment.update({
        "MLBENCH_RENDEZVOUS_TIMEOUT_S": str(rendezvous_timeout_s),
        "MLBENCH_IMAGE": image,
        "MLBENCH_NODE_TYPE": pool.name,
        "HOME": "/tmp",  # read-only root filesystem: caches go to the writable /tmp
    })
    return environment


def _indexed_job(names: JobNames, namespace: str, labels: dict[str, str], annotations: dict[str, str],
                 pool: PoolProfile, world_size: int, run_timeout_s: int, pod_template: dict[str, Any]
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
            "completions": world_size,
            "parallelism": world_size,
            "backoffLimit": 0,  # one failed rank fails the job; Airflow retries the configuration
            "activeDeadlineSeconds": int(run_timeout_s),
            "ttlSecondsAfterFinished": FINISHED_TTL_S,
            "suspend": bool(pool.kueue_queue),  # Kueue admits the whole gang by unsuspending
            "template": pod_template,
        },
    }


def _threads(cpu: str) -> int:
    if cpu.endswith("m"):
        return max(1, int(cpu[:-1]) // 1000)
    return max(1, int(float(cpu)))


def _pod_spec(names: JobNames, pool: PoolProfile, image: str, args: list[str],
              environment: dict[str, str]) -> dict[str, Any]:
    limits: dict[str, str] = {"memory": pool.memory}
    if pool.gpus_per_pod:
        limits["nvidia.com/gpu"] = str(pool.gpus_per_pod)  # GPUs only in limits
    spec: dict[str, Any] = {
        "subdomain": names.service,
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
                "resources": {"requests": {"cpu": pool.cpu, "memory": pool.memory}, "limits": limits},
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
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": pool.shm_size}},
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
