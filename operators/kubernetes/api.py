"""The Kubernetes API as this package talks to it: clients from the Airflow connection, and API
errors as one line (and whether they are worth a retry)."""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client.exceptions import ApiException

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
REASON_CHARS = 300


def clients_from_hook(conn_id: str = "kubernetes_default") -> tuple[Any, Any]:
    """(CoreV1Api, BatchV1Api) from the provider's KubernetesHook: credentials come from the Airflow
    connection (in-cluster, kubeconfig or a secret), never from this repository."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    hook = KubernetesHook(conn_id=conn_id)
    return hook.core_v1_client, hook.batch_v1_client


def one_line(text: Any, limit: int = REASON_CHARS) -> str:
    """`text` with its whitespace collapsed, cut to `limit` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def describe_error(exc: BaseException) -> str:
    """`HTTP 403: <the API server's message>` for an API error, else `Type: message`; one line."""
    if isinstance(exc, ApiException):
        detail = exc.reason or ""
        try:
            detail = json.loads(exc.body).get("message") or detail
        except (TypeError, ValueError, AttributeError):
            pass
        return one_line(f"HTTP {exc.status}: {detail}".rstrip(": "))
    return one_line(f"{type(exc).__name__}: {exc}")


def is_transient(exc: BaseException) -> bool:
    """Whether polling again may succeed: throttling, server errors, dropped connections."""
    if isinstance(exc, ApiException):
        return exc.status in TRANSIENT_STATUSES
    import urllib3

    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))
