import atexit
import os
import shutil
import subprocess
import tempfile
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
# Tests never touch a real Airflow installation: one throw-away AIRFLOW_HOME per session.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="mlbench-airflow-home-")
atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], True)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

REPO = Path(__file__).resolve().parents[1]

if TYPE_CHECKING:
    from tasks.runtime.results import TrainingResult


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is visible")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """One prepared data root for the whole session (datasets are prepared once per root)."""
    return tmp_path_factory.mktemp("datasets")


def run_mlbench(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tasks.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, **kwargs,
    )


def run_pipeline_steps(params: dict, run_id: str, *, home: Path, data_root: Path, monkeypatch) -> list[dict]:
    """Every step of one DAG run called in order without Airflow; asserts each gate passed.

    Returns the launch outcomes; the MLflow store is a SQLite file under home.
    """
    from operators import steps
    from operators.launch import launch_configuration
    from operators.planning import Configuration

    monkeypatch.setenv("MLBENCH_HOME", str(home))
    monkeypatch.setenv("MLBENCH_DATA_ROOT", str(data_root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow.db")
    request = steps.validate_request_step(params, run_id)
    steps.prepare_data_step(request, run_id)
    gate = steps.validate_data_step(request, run_id)
    assert all(v["success"] for v in gate), gate
    outcomes = [launch_configuration(Configuration.from_dict(c), run_timeout_s=300, rendezvous_timeout_s=60)
                for c in steps.plan_step(request, run_id)]
    assert all(v["success"] for v in steps.validate_results_step(run_id))
    assert len(steps.track_step(run_id, dag_id="mlbench_benchmark")["child_runs"]) == len(outcomes)
    return outcomes


def make_sweep_result(world_size: int = 2, *, preset: str = "smoke", status: str = "completed",
                      bandwidth_gbps: float = 2.0) -> dict:
    """A consistent task-0 result.json (latency = 50 us + bytes / bandwidth), as rank 0 writes it
    and as the pipeline reads it back (JSON: lists, not tuples)."""
    import json

    from tasks.registry import resolve
    from tasks.runtime.results import Provenance, SweepResult

    config = resolve("allreduce", preset, world_size=world_size)
    result = SweepResult.for_config(config).to_dict()
    from tasks.communication import bus_factor

    factor = bus_factor(world_size)
    measurements = []
    if status == "completed":
        for dtype, item in (("fp32", 4), ("fp16", 2)):
            for elements in config.sizes:
                size = elements * item
                median = 50e-6 + size / (bandwidth_gbps * 1e9)
                algbw = size / median / 1e9
                measurements.append({"elements": elements, "dtype": dtype, "bytes": size, "latency_median_s": median,
                                     "latency_p10_s": median * 0.9, "latency_p90_s": median * 1.3,
                                     "algbw_gbps": algbw, "busbw_gbps": algbw * factor})
    mlbench = [{"elements": elements, "dtype": dtype, "calls": config.mlbench_calls,
                "mean_latency_s": 60e-6 + elements * item / (bandwidth_gbps * 1e9)}
               for dtype, item in (("fp32", 4), ("fp16", 2)) for elements in config.mlbench_sizes
               ] if status == "completed" else []
    result.update(
        status=status, reason=None if status == "completed" else "rank 1 exited with code 1",
        measurements=measurements, mlbench_measurements=mlbench, wall_time_s=0.5,
        provenance=Provenance(hostname="vm", torch="2.13.0+cpu", device_name="AMD EPYC", git_sha="8fc85e4").to_dict(),
        ranks=[{"rank": r, "hostname": "vm", "device_name": "AMD EPYC", "measurements": len(measurements),
                "wrong_elements": 0} for r in range(world_size)] if status == "completed" else [],
    )
    return json.loads(json.dumps(result))


def make_training_record(world_size: int = 1, **fields: Any) -> "TrainingResult":
    """A TrainingResult of the smoke preset of task 1a at `world_size`, with `fields` replaced."""
    import dataclasses

    from tasks.registry import resolve
    from tasks.runtime.results import TrainingResult

    record = TrainingResult.for_config(resolve("cifar10-resnet20", "smoke", world_size=world_size))
    return dataclasses.replace(record, **fields)
