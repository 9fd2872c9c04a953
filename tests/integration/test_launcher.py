"""The local launcher stops every rank when one fails, when time runs out, and when it is killed."""

import json
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


def test_a_nodes_ranks_are_its_share_of_the_global_ranks_on_its_own_gpus(tmp_path):
    args = worker_args("/out/config.json", "/out", "/data")
    job = build_local_job(args, 16, tmp_path, master_port=29500, cpu_count=208, node_rank=1, local_ranks=8,
                          master_addr="mlb-x-0.mlb-x")
    assert [r.rank for r in job.ranks] == list(range(8, 16))
    assert [r.env["LOCAL_RANK"] for r in job.ranks] == [str(i) for i in range(8)]  # rank i on GPU i
    assert {r.env["LOCAL_WORLD_SIZE"] for r in job.ranks} == {"8"}
    assert {r.env["OMP_NUM_THREADS"] for r in job.ranks} == {"26"}  # 208 cores shared by the node's 8 ranks
    assert {r.env["MASTER_ADDR"] for r in job.ranks} == {"mlb-x-0.mlb-x"}


def test_mlbench_node_runs_its_ranks_and_two_nodes_make_one_job(tmp_path, data_root):
    """`mlbench node` as a pod runs it: one node of 2 ranks, then 2 nodes of 1 rank each (node rank from
    JOB_COMPLETION_INDEX, as in an Indexed Job), each completing the same smoke configuration."""
    from tasks.data import catalog
    from tasks.registry import resolve
    from tasks.runtime.bundle import prepare_output
    from tasks.runtime.local_job import free_port, node_args

    config = resolve("cifar10-resnet20", "smoke", world_size=2, backend="gloo", device="cpu",
                     overrides={"max_epochs": "1"})
    catalog.prepare_for(config.data, data_root)
    for layout, nodes in (("one-node", [{"NODE_RANK": "0", "LOCAL_WORLD_SIZE": "2"}]),
                          ("two-nodes", [{"JOB_COMPLETION_INDEX": str(i), "LOCAL_WORLD_SIZE": "1"} for i in (0, 1)])):
        output = tmp_path / layout
        output.mkdir()
        prepare_output(config, output)
        port = str(free_port())
        processes = [subprocess.Popen(
            [sys.executable, "-m", "tasks.cli", *node_args(str(output / "config.json"), str(output), str(data_root))],
            env={**os.environ, **node, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for node in nodes]
        outputs = [p.communicate(timeout=300)[0] for p in processes]
        assert [p.returncode for p in processes] == [0] * len(nodes), outputs
        result = json.loads((output / "result.json").read_text())
        assert result["status"] == "completed" and result["world_size"] == 2
        assert sorted(p.name for p in (output / "logs").iterdir()) == ["rank0.log", "rank1.log"]


def test_mlbench_node_without_its_environment_is_one_clear_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tasks.cli", "node", "--config", "c.json", "--output", str(tmp_path)],
                          env={k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "LOCAL_WORLD_SIZE")},
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: a node needs LOCAL_WORLD_SIZE in its environment")
