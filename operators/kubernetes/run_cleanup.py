"""The DAG's cleanup step on a cluster: delete whatever a DAG run left there, by label."""

from __future__ import annotations

from typing import Any, Callable

from kubernetes.client.exceptions import ApiException

from operators.kubernetes.api import describe_error


def label_selector(labels: dict[str, str]) -> str:
    """`k1=v1,k2=v2` for the API's label_selector; refuses an empty selector (it matches everything)."""
    if not labels:
        raise ValueError("an empty label selector would select every object in the namespace")
    return ",".join(f"{key}={value}" for key, value in labels.items())


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
                    log(f"cleanup: could not delete {kind} {name}: {describe_error(exc)}")
                    errors.append(exc)
                continue
            deleted += 1
            log(f"cleanup: deleted {kind} {name}")
    if errors:
        raise errors[0]
    return deleted
