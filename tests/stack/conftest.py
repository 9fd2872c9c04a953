"""One stack for the whole `make test-stack` session: started as `make stack` starts it, in a fresh
directory, and stopped at the end, where the teardown checks that no process of it is left."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from operators.stack.cli import down, status, up
from operators.stack.environment import ADMIN_USER
from operators.stack.layout import StackLayout
from operators.stack.processes import marked_processes
from tests.conftest import REPO
from tests.stack.clients import Airflow, MLflow

TASK = "cifar10-resnet20"
OUTPUT = Path(os.environ.get("MLBENCH_TEST_OUTPUT", REPO / ".mlbench" / "test-output")) / "stack"


def nightly_sweep(path: Path) -> Path:
    """A nightly as small as the demo (the bundled sweep trains for hours)."""
    path.write_text(yaml.safe_dump({"version": 1, "request": {
        "tasks": [TASK], "preset": "demo", "world_sizes": [1, 2], "on_regression": "fail"}}))
    return path


@pytest.fixture(scope="session")
def stack():
    # Not pytest's tmp_path: PostgreSQL runs as another user when we are root, and pytest's
    # directories are private to us.
    root = Path(tempfile.mkdtemp(prefix="mlbench-stack-"))
    os.chmod(root, 0o755)
    layout = StackLayout(root / "stack")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        state = up(layout, {"MLBENCH_NIGHTLY_SWEEP": str(nightly_sweep(root / "nightly.yaml"))})
    except Exception:
        down(layout)
        raise
    timings = {"startup_s": time.monotonic() - started}
    yield {"layout": layout, "state": state, "timings": timings, "output": OUTPUT,
           "airflow": Airflow(state.airflow_url, ADMIN_USER, state.admin_password),
           "mlflow": MLflow(state.mlflow_url)}
    stopping = time.monotonic()
    down(layout)
    timings["shutdown_s"] = time.monotonic() - stopping
    (OUTPUT / "timings.json").write_text(json.dumps(timings, indent=2))
    left = marked_processes(layout)
    shutil.rmtree(root, ignore_errors=True)
    assert left == [], f"processes of the stack still running after `down`: {left}"
    assert not any(status(layout).values())


def finished_run(stack, dag_id: str, conf: dict) -> str:
    airflow = stack["airflow"]
    run_id = airflow.trigger(dag_id, conf)
    assert airflow.wait_for_run(dag_id, run_id) == "success", f"{dag_id} {run_id} failed: see {stack['layout'].logs}"
    return run_id
