"""The local launcher stops every rank when one fails, when time runs out, and when it is killed."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tasks.runtime.local_job import LocalJob, RankProcess, build_local_job, run_local_job, worker_args

pytestmark = pytest.mark.integration


def job_of(tmp_path, scripts):
    ranks = tuple(
        RankProcess(rank, (sys.executable, "-c", script), dict(os.environ), tmp_path / "logs" / f"rank{rank}.log")
        for rank, script in enumerate(scripts)
    )
    return LocalJob(len(scripts), ranks, tmp_path)


def test_one_failing_rank_stops_the_others_and_is_named(tmp_path):
    pid_file = tmp_path / "sleeper.pid"
    sleeper = f"import os,time; open({str(pid_file)!r},'w').write(str(os.getpid())); time.sleep(60)"
    failer = "import sys,time; time.sleep(0.5); print('rendezvous failed: peer missing'); sys.exit(3)"
    started = time.monotonic()
    outcome = run_local_job(job_of(tmp_path, [sleeper, failer]), timeout_s=30, echo_rank0=False)
    assert time.monotonic() - started < 15
    assert outcome.returncode == 3 and outcome.failed_rank == 1
    assert "rank 1 exited with code 3: rendezvous failed: peer missing" in outcome.message
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)  # the healthy rank was stopped too


def test_timeout_stops_all_ranks(tmp_path):
    sleepers = [f"import os,time; open({str(tmp_path / f'{r}.pid')!r},'w').write(str(os.getpid())); time.sleep(60)"
                for r in range(2)]
    outcome = run_local_job(job_of(tmp_path, sleepers), timeout_s=1, echo_rank0=False)
    assert outcome.timed_out and outcome.returncode == 124 and "timed out after 1s" in outcome.message
    for rank in range(2):
        with pytest.raises(ProcessLookupError):
            os.kill(int((tmp_path / f"{rank}.pid").read_text()), 0)


def test_a_rank_flooding_a_closed_stdout_does_not_stall(tmp_path):
    """Our stdout closed (piped into `head`): rank output keeps flowing into its log."""
    import io

    flood = "import sys\nfor i in range(200000): print('x' * 100)"
    closed = io.TextIOWrapper(io.BytesIO())
    closed.close()
    real_stdout, sys.stdout = sys.stdout, closed
    try:
        outcome = run_local_job(job_of(tmp_path, [flood]), timeout_s=60, echo_rank0=True)
    finally:
        sys.stdout = real_stdout
    assert outcome.returncode == 0, outcome.message
    assert (tmp_path / "logs" / "rank0.log").stat().st_size >= 200000 * 101


def test_stop_event_stops_every_rank(tmp_path):
    """What the Airflow operator's on_kill does."""
    import threading

    stop = threading.Event()
    pid_files = [tmp_path / f"{r}.pid" for r in range(2)]

    def stop_once_every_rank_runs():  # not on a fixed delay: a loaded machine starts Python slowly
        while not all(path.exists() for path in pid_files):
            time.sleep(0.05)
        stop.set()

    threading.Thread(target=stop_once_every_rank_runs, daemon=True).start()
    sleepers = [f"import os,time; open({str(path)!r},'w').write(str(os.getpid())); time.sleep(60)"
                for path in pid_files]
    started = time.monotonic()
    outcome = run_local_job(job_of(tmp_path, sleepers), timeout_s=60, echo_rank0=False, stop=stop)
    assert outcome.returncode == 143 and "stopped on request" in outcome.message
    assert time.monotonic() - started < 15
    for rank in range(2):
        with pytest.raises(ProcessLookupError):
            os.kill(int((tmp_path / f"{rank}.pid").read_text()), 0)


def test_killing_the_launcher_kills_its_ranks(tmp_path):
    pid_file = tmp_path / "rank.pid"
    script = (
        "import sys, os; from pathlib import Path; sys.path.insert(0, os.getcwd());"
        "from tasks.runtime.local_job import *;"
        f"job = LocalJob(1, (RankProcess(0, (sys.executable, '-c', "
        f"\"import os,time; open({str(pid_file)!r},'w').write(str(os.getpid())); time.sleep(60)\"), "
        f"dict(os.environ), Path({str(tmp_path)!r}) / 'logs' / 'rank0.log'),), Path({str(tmp_path)!r}));"
        "run_local_job(job, timeout_s=60)"
    )
    launcher = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    rank_pid = int(pid_file.read_text())
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(rank_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail("the rank outlived its SIGKILLed launcher")


def test_job_description_gives_each_rank_the_same_command_and_its_own_environment(tmp_path):
    args = worker_args("/out/config.json", "/out", "/data")
    job = build_local_job(args, 4, tmp_path, master_port=29500, cpu_count=8)
    assert len({r.command for r in job.ranks}) == 1
    assert job.ranks[0].command[-7:] == ("worker", "--config", "/out/config.json", "--output", "/out",
                                         "--data-root", "/data")
    assert [r.env["RANK"] for r in job.ranks] == ["0", "1", "2", "3"]
    assert {r.env["WORLD_SIZE"] for r in job.ranks} == {"4"} and {r.env["MASTER_PORT"] for r in job.ranks} == {"29500"}
    assert {r.env["OMP_NUM_THREADS"] for r in job.ranks} == {"2"}  # 8 cores shared by 4 ranks
