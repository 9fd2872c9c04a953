"""Task 0's measurement on two real gloo ranks: sums are right, figures are consistent."""

import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tasks.runtime.allreduce import measure_size
from tasks.runtime.local_job import free_port

pytestmark = pytest.mark.integration


def _measure(rank, world_size, port, out):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    ones = torch.ones(1000)
    dist.all_reduce(ones)
    rows = [measure_size(n, dtype, torch.device("cpu"), repeats=10, warmup=2,
                         generator=torch.Generator().manual_seed(0))
            for n in (1, 10_000, 1_000_000) for dtype in ("fp32", "fp16")]
    if rank == 0:
        out_rows = [row.__dict__ for row in rows]
        with open(out, "w") as f:
            json.dump({"sum": ones[0].item(), "rows": out_rows}, f)
    dist.destroy_process_group()


def test_two_rank_measurement(tmp_path):
    out = tmp_path / "m.json"
    mp.spawn(_measure, args=(2, free_port(), str(out)), nprocs=2, join=True)
    data = json.loads(out.read_text())
    assert data["sum"] == 2.0
    for row in data["rows"]:
        assert row["latency_p10_s"] <= row["latency_median_s"] <= row["latency_p90_s"]
        assert row["bytes"] == row["elements"] * (4 if row["dtype"] == "fp32" else 2)
        assert row["busbw_gbps"] == pytest.approx(row["algbw_gbps"])  # 2 ranks: 2(n-1)/n = 1
    large = [r for r in data["rows"] if r["elements"] == 1_000_000 and r["dtype"] == "fp32"][0]
    small = [r for r in data["rows"] if r["elements"] == 1 and r["dtype"] == "fp32"][0]
    assert large["algbw_gbps"] > small["algbw_gbps"]  # bandwidth grows with size


def test_allreduce_command_writes_a_bundle_and_a_plot(tmp_path):
    from tests.conftest import run_mlbench

    done = run_mlbench("allreduce", "--world-size", "2", "--max-elements", "10000", "--count", "4", "--repeats", "3",
                       "--output", str(tmp_path / "ar"))
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "ar" / "result.json").read_text())
    assert result["status"] == "completed" and result["world_size"] == 2 and result["preset"] == "full"
    assert result["config"]["sizes"] == [1, 22, 464, 10000] and result["config"]["repeats"] == 3
    assert len(result["measurements"]) == 8 and {r["dtype"] for r in result["measurements"]} == {"fp32", "fp16"}
    assert [r["rank"] for r in result["ranks"]] == [0, 1] and all(r["wrong_elements"] == 0 for r in result["ranks"])
    assert result["provenance"]["torch"] == torch.__version__
    mlbench = result["mlbench_measurements"]  # MLBench's sizes, in its order, per dtype; 100 calls each
    assert [m["elements"] for m in mlbench] == result["config"]["mlbench_sizes"] * 2
    assert all(m["calls"] == 100 and m["mean_latency_s"] > 0 for m in mlbench)
    assert (tmp_path / "ar" / "allreduce.png").read_bytes()[:4] == b"\x89PNG"
    assert "all-reduce sweep of 4 sizes on 2 rank(s), gloo on cpu" in done.stdout


@pytest.mark.parametrize("args, message", [
    (["--backend", "mpi"], "backend 'mpi' is not available here: this torch build was not compiled with MPI"),
    (["--dtypes", "fp64"], "bad value 'fp64' for 'dtypes'; valid: one or more of fp32, fp16"),
    (["--min-elements", "10", "--max-elements", "1"], "need 1 <= min_elements <= max_elements, got 10 and 1"),
    (["--repeats", "0"], "bad value 0 for 'repeats'; valid: a whole number >= 1"),
    (["--preset", "huge"], "unknown preset 'huge' for task allreduce; valid presets: full, light, demo, smoke"),
])
def test_allreduce_bad_input_is_one_line(tmp_path, args, message):
    from tests.conftest import run_mlbench

    if "mpi" in args and dist.is_mpi_available():
        pytest.skip("this torch has MPI")
    done = run_mlbench("allreduce", *args, "--output", str(tmp_path / "ar"))
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("repeats", [1, 2, 3, 10])
def test_one_rank_figures_pass_the_results_gate_for_any_number_of_calls(repeats):
    """p10/p90 interpolate like the median: p10 <= median <= p90 however few the calls; one rank has busbw 0."""
    from operators.gates import validate_sweep_result
    from tests.conftest import make_sweep_result

    result = make_sweep_result(world_size=1)  # the smoke sweep's config, its figures replaced by real ones
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        result["measurements"] = [
            measure_size(n, dtype, torch.device("cpu"), repeats=repeats, warmup=1,
                         generator=torch.Generator().manual_seed(0)).__dict__
            for dtype in result["config"]["dtypes"] for n in result["config"]["sizes"]]
    finally:
        dist.destroy_process_group()
    for row in result["measurements"]:
        assert row["latency_p10_s"] <= row["latency_median_s"] <= row["latency_p90_s"]
        assert row["busbw_gbps"] == 0.0 and row["algbw_gbps"] > 0
    for rank in result["ranks"]:
        rank["measurements"] = len(result["measurements"])
    report = validate_sweep_result(result, expected_world_size=1)
    assert report.success, report.failures


def test_a_sweep_broken_part_way_keeps_what_it_measured(tmp_path, monkeypatch):
    from operators.gates import validate_sweep_result
    from tasks.registry import resolve
    from tasks.runtime import allreduce
    from tasks.runtime.distributed import RankEnv
    from tasks.errors import ExitCode

    config = resolve("allreduce", "smoke", world_size=1)
    real, calls = allreduce.measure_size, []

    def out_of_memory_at_the_third_size(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(allreduce, "measure_size", out_of_memory_at_the_third_size)
    port = free_port()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        env = RankEnv(rank=0, world_size=1, local_rank=0, master_addr="127.0.0.1", master_port=port)
        assert allreduce.run_sweep(config, env, tmp_path) == ExitCode.RUN_FAILED
    finally:
        dist.destroy_process_group()
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "failed" and len(result["measurements"]) == 2
    assert result["reason"] == ("rank 0 stopped after 2 of 8 measurements: "
                                "RuntimeError: CUDA out of memory (simulated)")
    report = validate_sweep_result(result, expected_world_size=1)
    assert report.success, report.failures  # a failed sweep may hold fewer sizes, each still consistent
