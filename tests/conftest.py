import os
import subprocess
import tempfile
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
# Tests never touch a real Airflow installation: one throw-away AIRFLOW_HOME per session.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="mlbench-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

REPO = Path(__file__).resolve().parents[1]


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

    monkeypatch.setenv("MLBENCH_HOME", str(home))
    monkeypatch.setenv("MLBENCH_DATA_ROOT", str(data_root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow.db")
    request = steps.validate_request_step(params, run_id)
    steps.prepare_data_step(request, run_id)
    gate = steps.validate_data_step(request, run_id)
    assert all(v["success"] for v in gate), gate
    outcomes = [steps.launch_configuration(c, run_timeout_s=300, rendezvous_timeout_s=60)
                for c in steps.plan_step(request, run_id)]
    assert all(v["success"] for v in steps.validate_results_step(run_id))
    assert len(steps.track_step(run_id, dag_id="mlbench_benchmark")["child_runs"]) == len(outcomes)
    return outcomes
