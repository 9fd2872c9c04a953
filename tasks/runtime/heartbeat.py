"""Each rank's heartbeat, and how its launcher tells a stopped rank from a slow one.

A rank touches `<output>/heartbeat/rank<N>` every second from a daemon thread. A rank that is
frozen (SIGSTOP, a cgroup freeze, a process stuck in the kernel) stops beating while its peers wait
in a collective until the process group's timeout (`MLBENCH_RENDEZVOUS_TIMEOUT_S`, 600 s) and then
fail with a generic timeout that names no one. The launcher instead fails the job after
`MLBENCH_STALL_TIMEOUT_S` (120 s) without a beat, naming the rank that stopped. Collectives
release Python's lock, so a rank waiting in one, or computing, keeps beating.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

HEARTBEAT_DIR = "heartbeat"
INTERVAL_S = 1.0
STALL_TIMEOUT_ENV = "MLBENCH_STALL_TIMEOUT_S"
DEFAULT_STALL_TIMEOUT_S = 120.0


def heartbeat_file(output: Path, rank: int) -> Path:
    return output / HEARTBEAT_DIR / f"rank{rank}"


def stall_timeout_s() -> float:
    from tasks.runtime.distributed import float_setting

    return float_setting(STALL_TIMEOUT_ENV, DEFAULT_STALL_TIMEOUT_S)


def start_heartbeat(output: Path, rank: int) -> threading.Thread:
    """Beat for this process until it exits."""
    path = heartbeat_file(output, rank)
    path.parent.mkdir(parents=True, exist_ok=True)

    def beat() -> None:
        while True:
            try:
                path.touch()
            except OSError:
                pass  # a full or vanished volume: the rank fails on its own writes, with that reason
            time.sleep(INTERVAL_S)

    thread = threading.Thread(target=beat, name="mlbench-heartbeat", daemon=True)
    thread.start()
    return thread


def silence_s(output: Path, rank: int, started_at: float, now: float | None = None) -> float:
    """Seconds since the rank's last beat (wall clock), or since it started if it never beat."""
    now = time.time() if now is None else now
    try:
        last = heartbeat_file(output, rank).stat().st_mtime
    except OSError:
        last = started_at
    return now - max(last, started_at)


def process_state(pid: int) -> str | None:
    """The kernel's word for a process's state (Linux /proc), e.g. "stopped"; None if unknown."""
    names = {"R": "running", "S": "sleeping", "D": "in uninterruptible I/O", "T": "stopped", "t": "stopped by a tracer",
             "Z": "a zombie"}
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return names.get(fields[0], fields[0]) if fields else None
