"""The Kubernetes API as this package talks to it: clients from the Airflow connection, and API
errors as one line (and whether they are worth a retry)."""

from __future__ import annotations

import contextlib
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
    if _is_api_error(exc):
        detail = getattr(exc, "reason", None) or ""
        try:
            detail = json.loads(exc.body).get("message") or detail
        except (TypeError, ValueError, AttributeError):
            pass
        return one_line(f"HTTP {getattr(exc, 'status', None)}: {detail}".rstrip(": "))
    return one_line(f"{type(exc).__name__}: {exc}")


def is_transient(exc: BaseException) -> bool:
    """Whether polling again may succeed: throttling, server errors, dropped connections."""
    if _is_api_error(exc):
        return getattr(exc, "status", None) in TRANSIENT_STATUSES
    import urllib3

    transient: tuple[type[BaseException], ...] = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
    with contextlib.suppress(ImportError):  # the triggerer's async client
        import aiohttp

        transient += (aiohttp.ClientError,)
    return isinstance(exc, transient)


def is_not_found(exc: BaseException) -> bool:
    return _is_api_error(exc) and getattr(exc, "status", None) == 404


def _is_api_error(exc: BaseException) -> bool:
    """An API error of the sync client or of the async one (kubernetes_asyncio) the triggerer uses."""
    return isinstance(exc, ApiException) or (type(exc).__name__ == "ApiException" and hasattr(exc, "status"))
