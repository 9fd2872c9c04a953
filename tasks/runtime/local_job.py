"""A local job: N ranks of the worker as processes on this machine (`mlbench train`, and the
pipeline's local launcher).

`build_local_job` describes the job (commands and environments) as plain data; `run_local_job`
executes it. The Kubernetes manifests (operators/kubernetes/spec.py) build their pods from the same
`worker_args` and `rank_environment`, so a local run and a pod run execute the same command: every
rank reads the resolved config its launcher wrote to `<output>/config.json` (`tasks.runtime.bundle.prepare_output`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tasks.errors import ExitCode
from tasks.runtime.bundle import CONFIG_FILE, collect_result, prepare_output
from tasks.runtime.heartbeat import process_state, silence_s, stall_timeout_s
from tasks.runtime.results import ResultRecord

PR_SET_PDEATHSIG = 1
TERMINATE_GRACE_S = 10.0


@dataclass(frozen=True)
class RankProcess:
    rank: int
    command: tuple[str, ...]
    env: dict[str, str]
    log_path: Path


@dataclass(frozen=True)
class LocalJob:
    world_size: int
    ranks: tuple[RankProcess, ...]
    output: Path


@dataclass
class JobOutcome:
    returncode: int
    message: str
    failed_rank: int | None = None
    timed_out: bool = False
    returncodes: dict[int, int | None] = field(default_factory=dict)
    # what the launcher alone knows (a rank killed by a signal, or stopped): it leads the record's reason
    root_cause: str | None = None

    @property
    def exit_status(self) -> int:
        """The code a process ends with: the failure's, or 128 + the signal that killed a rank."""
        return self.returncode if self.returncode >= 0 else 128 - self.returncode


def worker_args(config_path: str, output: str, data_root: str) -> list[str]:
    """Arguments after `mlbench` that run one rank of the configuration recorded at `config_path`
    (a `tasks.runtime.bundle.prepare_output` config.json); identical for local processes and pods."""
    return ["worker", "--config", config_path, "--output", output, "--data-root", data_root]


def node_args(config_path: str, output: str, data_root: str) -> list[str]:
    """Arguments after `mlbench` that run one machine's ranks of that configuration (`mlbench node`)."""
    return ["node", *worker_args(config_path, output, data_root)[1:]]


def rank_environment(
    rank: int, world_size: int, master_addr: str, master_port: int, *, local_world_size: int, threads: int
) -> dict[str, str]:
    return {
        "RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "LOCAL_RANK": str(rank % local_world_size),
        "LOCAL_WORLD_SIZE": str(local_world_size),
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
        "OMP_NUM_THREADS": str(threads),
        "PYTHONUNBUFFERED": "1",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_local_job(
    args: Sequence[str], world_size: int, output: Path, *, master_port: int, cpu_count: int | None = None,
    extra_env: dict[str, str] | None = None, node_rank: int = 0, local_ranks: int | None = None,
    master_addr: str = "127.0.0.1",
) -> LocalJob:
    """Pure description of the local ranks of one machine: same command, rank-specific environment,
    one log each. All `world_size` ranks by default; with `local_ranks`, the ranks of node
    `node_rank` of a multi-node job (global rank = node_rank x local_ranks + local rank)."""
    local = local_ranks or world_size
    threads = max(1, (cpu_count or os.cpu_count() or 1) // local)
    base = {**os.environ, **(extra_env or {})}
    ranks = tuple(
        RankProcess(
            rank=rank,
            command=(sys.executable, "-m", "tasks.cli", *args),
            env={**base, **rank_environment(rank, world_size, master_addr, master_port,
                                            local_world_size=local, threads=threads)},
            log_path=output / "logs" / f"rank{rank}.log",
        )
        for rank in range(node_rank * local, (node_rank + 1) * local)
    )
    return LocalJob(world_size, ranks, output)


def _die_with_parent() -> None:
    """Runs in each child: the kernel kills it if the launcher dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def _pump(stream, log_file, echo) -> None:
    """Copy a rank's output to its log (and to our stdout); never stop reading, or the rank blocks."""
    for line in iter(stream.readline, b""):
        log_file.write(line)
        log_file.flush()
        if echo:
            try:
                sys.stdout.write(line.decode(errors="replace"))
                sys.stdout.flush()
            except (OSError, ValueError):  # our stdout went away (e.g. piped into `head`)
                echo = False


class _Terminated(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def run_local_job(
    job: LocalJob, *, timeout_s: float | None = None, echo_rank0: bool = True,
    stop: threading.Event | None = None, stall_timeout_s: float | None = None,
) -> JobOutcome:
    """Start every rank; stop all of them as soon as one fails or stops responding (no heartbeat
    for `stall_timeout_s`; None: not watched), the timeout passes, `stop` is set, or we are killed."""
    (job.output / "logs").mkdir(parents=True, exist_ok=True)
    processes: dict[int, subprocess.Popen] = {}
    pumps: list[threading.Thread] = []
    logs = []
    previous = {}

    def on_signal(signum, _frame):
        for sig in previous:  # one signal is enough: cleanup must not be interrupted by a second
            signal.signal(sig, signal.SIG_IGN)
        raise _Terminated(signum)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        for spec in job.ranks:
            log_file = open(spec.log_path, "wb")
            logs.append(log_file)
            process = subprocess.Popen(
                spec.command, env=spec.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
            processes[spec.rank] = process
            pump = threading.Thread(  # the node's first rank: rank 0 on node 0
                target=_pump, args=(process.stdout, log_file, echo_rank0 and spec is job.ranks[0]), daemon=True
            )
            pump.start()
            pumps.append(pump)
        return _watch(job, processes, timeout_s=timeout_s, stop=stop, stall_timeout_s=stall_timeout_s)
    except _Terminated as exc:
        _stop_all(processes)
        return JobOutcome(128 + exc.signum, f"launcher received signal {exc.signum}; all ranks stopped")
    finally:
        _stop_all(processes)
        for pump in pumps:
            pump.join(timeout=5)
        for log_file in logs:
            log_file.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# What a rank's last line says when it failed because a peer went away: not the root cause.
PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "Connection closed", "Broken pipe",
             "remote process exited", "NCCL communicator was aborted")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def root_cause(codes: dict[int, int], last_lines: dict[int, str]) -> int:
    """Of the ranks found failed at the same moment, the one that made the others fail: a rank
    killed by a signal (it could not say why), then one that failed on its own, last one that
    only lost its connection to a dead peer; the lowest rank among equals."""
    def key(rank: int) -> tuple[bool, bool, int]:
        lost_a_peer = any(marker in last_lines.get(rank, "") for marker in PEER_LOST)
        return codes[rank] >= 0, lost_a_peer, rank
    return min(codes, key=key)


def failure_message(rank: int, code: int, last_line: str) -> str:
    if code < 0:
        return f"rank {rank} was killed by signal {-code} ({_signal_name(-code)}); its last line: {last_line}"
    return f"rank {rank} exited with code {code}: {last_line}"


def _stalled(job: LocalJob, processes: dict[int, subprocess.Popen], started_at: float,
             stall_timeout_s: float) -> JobOutcome | None:
    """A running rank that has not beaten for `stall_timeout_s`: the job fails, naming it."""
    for rank, process in processes.items():
        if process.poll() is not None:
            continue
        silent = silence_s(job.output, rank, started_at)
        if silent > stall_timeout_s:
            state = process_state(process.pid)
            message = (f"rank {rank} stopped responding: no heartbeat for {silent:.0f}s"
                       + (f" (its process is {state})" if state else "") + "; all ranks stopped")
            return JobOutcome(ExitCode.RUN_FAILED, message, rank, root_cause=message)
    return None


def _watch(job: LocalJob, processes: dict[int, subprocess.Popen], *, timeout_s: float | None,
           stop: threading.Event | None, stall_timeout_s: float | None = None) -> JobOutcome:
    """Poll the ranks until all finished, one failed or stopped responding, `stop` is set or the
    timeout passes."""
    started_at, deadline = time.time(), time.monotonic() + timeout_s if timeout_s else None
    next_stall_check = time.monotonic() + 1.0
    while True:
        codes = {rank: p.poll() for rank, p in processes.items()}
        failed = {r: c for r, c in codes.items() if c is not None and c != 0}
        if failed:
            lines = {r: _last_line(_log_path(job, r)) for r in failed}
            rank = root_cause(failed, lines)
            message = failure_message(rank, failed[rank], lines[rank])
            return JobOutcome(failed[rank], message, rank, returncodes=codes,
                              root_cause=message if failed[rank] < 0 else None)
        if all(c == 0 for c in codes.values()):
            return JobOutcome(ExitCode.OK, "all ranks finished", returncodes=codes)
        if stop is not None and stop.is_set():
            return JobOutcome(ExitCode.TERMINATED, "stopped on request; all ranks stopped", returncodes=codes)
        if deadline and time.monotonic() > deadline:
            return JobOutcome(ExitCode.TIMEOUT, f"run timed out after {timeout_s:.0f}s; all ranks stopped",
                              timed_out=True, returncodes=codes)
        if stall_timeout_s and time.monotonic() >= next_stall_check:
            next_stall_check = time.monotonic() + 1.0
            stalled = _stalled(job, processes, started_at, stall_timeout_s)
            if stalled is not None:
                return stalled
        time.sleep(0.1)


def _log_path(job: LocalJob, rank: int) -> Path:
    return next(spec.log_path for spec in job.ranks if spec.rank == rank)


def launch_local(
    config,
    *,
    output: Path,
    data_root: Path,
    timeout_s: float | None,
    rendezvous_timeout_s: float,
    echo_rank0: bool = True,
    stop: threading.Event | None = None,
) -> tuple[JobOutcome, ResultRecord]:
    """Run one resolved configuration as N local ranks; always leaves a result.json in `output`.

    The caller has validated the request and prepared the data. Returns the job outcome and the
    parsed result (a failed record with the launcher's reason when no rank wrote one).
    """
    prepare_output(config, output)
    job = build_local_job(
        worker_args(str(output / CONFIG_FILE), str(output), str(data_root)),
        config.world_size, output, master_port=free_port(),
        extra_env={"MLBENCH_RENDEZVOUS_TIMEOUT_S": str(rendezvous_timeout_s)},
    )
    outcome = run_local_job(job, timeout_s=timeout_s, echo_rank0=echo_rank0, stop=stop,
                            stall_timeout_s=stall_timeout_s())
    return outcome, collect_result(config, output, outcome.message, root_cause=outcome.root_cause)


def _stop_all(processes: dict[int, subprocess.Popen]) -> None:
    alive = [p for p in processes.values() if p.poll() is None]
    for p in alive:
        p.terminate()
        p.send_signal(signal.SIGCONT)  # a stopped rank acts on SIGTERM only once it runs again
    deadline = time.monotonic() + TERMINATE_GRACE_S
    for p in alive:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1].strip() if lines else "(empty log)"
