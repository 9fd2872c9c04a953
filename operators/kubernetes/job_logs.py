"""Pod logs of a running job: rank 0's log followed line by line as it is written, and the last
lines of a failed rank's log."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

from operators.kubernetes.api import describe_error

LOG_TAIL_LINES = 50
DRAIN_LOG_S = 10.0  # after success: how long rank 0's log may take to deliver its last lines


def iter_lines(response: Any) -> Iterator[str]:
    """Lines of a streamed (unpreloaded) response as they arrive; chunks may split lines."""
    if hasattr(response, "stream"):
        chunks = response.stream(amt=None, decode_content=False)  # chunked: yields each chunk on arrival
    else:
        chunks = iter(response)
    pending = b""
    for chunk in chunks:
        pending += chunk.encode() if isinstance(chunk, str) else chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace").rstrip("\r")
    if pending:
        yield pending.decode("utf-8", "replace").rstrip("\r")


def close_response(response: Any) -> None:
    """Unblock a reader in another thread (urllib3 >= 2.3 has shutdown) and release the connection."""
    if response is None:
        return
    for method in ("shutdown", "close", "release_conn"):
        try:
            getattr(response, method, lambda: None)()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


class LogFollower:
    """Follows one pod's log in a daemon thread and hands each line to `emit`; never raises."""

    def __init__(self, core: Any, namespace: str, pod: str, container: str | None,
                 emit: Callable[[str], None], prefix: str) -> None:
        self.core = core
        self._namespace = namespace
        self._pod = pod
        self._container = container
        self._emit = emit
        self._prefix = prefix
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None
        self.thread = threading.Thread(target=self._run, name=f"mlbench-log-{pod}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _say(self, line: str) -> None:
        try:
            self._emit(self._prefix + line)
        except Exception:  # noqa: BLE001 - a broken log sink must not kill the follower loudly
            self._stopping.set()

    def _run(self) -> None:
        response = None
        try:
            response = self.core.read_namespaced_pod_log(
                name=self._pod, namespace=self._namespace, container=self._container,
                follow=True, _preload_content=False,
            )
            with self._lock:
                self._response = response
            if self._stopping.is_set():
                return
            for line in iter_lines(response):
                if self._stopping.is_set():
                    return
                self._say(line)
        except Exception as exc:  # noqa: BLE001 - the stream ending badly must not affect the run
            if not self._stopping.is_set():
                self._say(f"(log stream ended: {describe_error(exc)})")
        finally:
            close_response(response)

    def finish(self, drain_s: float) -> None:
        """Let the stream deliver what is left (up to `drain_s`), then close it and end the thread."""
        if drain_s > 0:
            self.thread.join(drain_s)
        self._stopping.set()
        with self._lock:
            response = self._response
        close_response(response)
        self.thread.join(2.0)


def log_tail(core: Any, namespace: str, pod: Any, container: str | None) -> tuple[list[str], bool]:
    """The last lines of a pod's log, and whether it could be read."""
    try:
        text = core.read_namespaced_pod_log(name=pod.metadata.name, namespace=namespace,
                                            container=container, tail_lines=LOG_TAIL_LINES)
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        return [f"(could not read the log: {describe_error(exc)})"], False
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text or "").splitlines()[-LOG_TAIL_LINES:], True
