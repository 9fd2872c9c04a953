"""The stack's long-running services as detached processes: each in its own session (so it
outlives `make stack` and its group can be signalled), with a pid file and a log file; waits for
their health endpoints; and `stop_all`, which stops the services and then every process left that
carries the stack's marker (task processes, training ranks), so nothing stays behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from operators.stack.environment import STACK_MARKER
from operators.stack.layout import StackLayout
from operators.stack.postgres import StackError

STOP_GRACE_S = 30.0


def start_service(layout: StackLayout, service: str, command: list[str], env: dict[str, str]) -> int:
    """Start `command` detached, its output in the service's log file; returns its pid."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.pids.mkdir(parents=True, exist_ok=True)
    with open(layout.log_of(service), "ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, cwd=layout.root)
    layout.pid_of(service).write_text(str(process.pid))
    return process.pid


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def service_pid(layout: StackLayout, service: str) -> int | None:
    path = layout.pid_of(service)
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def wait_until(check: Callable[[], bool], *, what: str, timeout_s: float, layout: StackLayout,
               service: str | None = None) -> float:
    """Poll `check` until it holds; returns the seconds waited. Raises with the log's last lines when
    the service died or the time ran out."""
    started = time.monotonic()
    while not check():
        pid = service_pid(layout, service) if service else None
        if pid is not None and not running(pid):
            raise StackError(f"{service} exited while starting: {_last_lines(layout.log_of(service))}")
        if time.monotonic() - started > timeout_s:
            log = f": {_last_lines(layout.log_of(service))}" if service else ""
            raise StackError(f"{what} not ready after {timeout_s:.0f}s{log}")
        time.sleep(1.0)
    return time.monotonic() - started


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return 200 <= response.status < 300
        except (urllib.error.URLError, OSError, ValueError):
            return False
    return check


def _last_lines(path: Path, count: int = 3) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(lines[-count:]) + f" (log: {path})"


def stop_service(layout: StackLayout, service: str) -> None:
    """SIGTERM the service's process group, SIGKILL what is left after the grace period."""
    pid = service_pid(layout, service)
    if pid is not None:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_group(pid, signal.SIGKILL)
    layout.pid_of(service).unlink(missing_ok=True)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def marked_processes(layout: StackLayout) -> list[int]:
    """Pids of every process whose environment carries this stack's marker (readable ones)."""
    marker = f"{STACK_MARKER}={layout.root}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") and running(int(entry.name)):
            found.append(int(entry.name))
    return found


def kill_marked(layout: StackLayout) -> list[int]:
    """SIGTERM, then SIGKILL, every process left with the stack's marker; returns those found."""
    left = marked_processes(layout)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while any(running(pid) for pid in left) and time.monotonic() < deadline:
            time.sleep(0.2)
    return left
