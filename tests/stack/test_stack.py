"""The production path for real (`make test-stack`): PostgreSQL, an MLflow tracking server with
proxied artifacts, and Airflow's api-server, scheduler (LocalExecutor), dag-processor and triggerer,
started by `operators.stack` as `make stack` does; DAG runs triggered through Airflow's REST API v2
(authenticated), results checked through MLflow's REST API. The stack is shared by the session
(tests/stack/conftest.py), which stops it at the end and checks that nothing is left running.
"""

from __future__ import annotations

import datetime
import time

import pytest

from operators.stack.cli import status
from tests.stack.clients import DEMO_CONF, Airflow, metrics_of, params_of, tags_of
from tests.stack.conftest import TASK, finished_run

pytestmark = pytest.mark.stack
PNG = b"\x89PNG\r\n\x1a\n"


def test_everything_runs_on_loopback_with_generated_credentials(stack):
    layout, state = stack["layout"], stack["state"]
    assert status(layout) == {"mlflow": True, "api-server": True, "scheduler": True, "dag-processor": True,
                              "triggerer": True, "postgres": True}
    assert oct(layout.state_file.stat().st_mode & 0o777) == "0o600"
    assert state.admin_password not in {"admin", "airflow", ""} and len(state.admin_password) >= 20
    assert state.airflow_url.startswith("http://127.0.0.1:") and state.mlflow_url.startswith("http://127.0.0.1:")


def test_a_benchmark_triggered_through_the_rest_api_is_tracked_through_the_tracking_server(stack):
    started = time.monotonic()
    run_id = finished_run(stack, "mlbench_benchmark", DEMO_CONF)
    stack["timings"]["demo_run_s"] = time.monotonic() - started
    mlflow = stack["mlflow"]
    experiment = mlflow.experiment(f"mlbench/{TASK}")
    runs = mlflow.runs_of(experiment["experiment_id"], run_id)
    parents = [r for r in runs if tags_of(r)["mlbench.role"] == "benchmark"]
    children = [r for r in runs if tags_of(r)["mlbench.role"] == "configuration"]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent["info"]["status"] == "FINISHED" and parent["info"]["run_name"].startswith(f"{TASK} demo w1,2 manual")
    assert params_of(parent)["preset"] == "demo" and "speedup_w2" in metrics_of(parent)
    assert {params_of(c)["world_size"] for c in children} == {"1", "2"}
    for child in children:
        assert tags_of(child)["mlflow.parentRunId"] == parent["info"]["run_id"]
        assert metrics_of(child)["time_to_accuracy_s"] > 0
    assert parent["info"]["artifact_uri"].startswith("mlflow-artifacts:")  # stored behind the proxy
    paths = mlflow.artifact_paths(parent["info"]["run_id"])
    assert {"plots/scaling.png", "comparison/comparison.csv", "request.json"} <= set(paths)
    assert mlflow.download(parent["info"]["run_id"], "plots/scaling.png").startswith(PNG)
    assert b"world_size" in mlflow.download(parent["info"]["run_id"], "comparison/comparison.csv")


def test_the_nightly_runs_on_the_stack(stack):
    run_id = finished_run(stack, "mlbench_nightly", {})
    mlflow = stack["mlflow"]
    runs = mlflow.runs_of(mlflow.experiment(f"mlbench/{TASK}")["experiment_id"], run_id)
    assert {tags_of(r)["dag_id"] for r in runs} == {"mlbench_nightly"} and len(runs) == 3


def _launch_windows(airflow: Airflow, run_id: str) -> list[tuple[datetime.datetime, datetime.datetime]]:
    windows = []
    for task in airflow.task_instances("mlbench_benchmark", run_id):
        if task["task_id"] == "launch" and task["start_date"] and task["end_date"]:
            windows.append((datetime.datetime.fromisoformat(task["start_date"]),
                            datetime.datetime.fromisoformat(task["end_date"])))
    return windows


def test_two_triggers_at_once_both_finish_and_the_pool_keeps_their_launches_apart(stack):
    airflow, mlflow = stack["airflow"], stack["mlflow"]
    first = airflow.trigger("mlbench_benchmark", DEMO_CONF)
    second = airflow.trigger("mlbench_benchmark", DEMO_CONF)
    assert airflow.wait_for_run("mlbench_benchmark", first) == "success"
    assert airflow.wait_for_run("mlbench_benchmark", second) == "success"
    windows = sorted(_launch_windows(airflow, first) + _launch_windows(airflow, second))
    assert len(windows) == 4  # two configurations each
    for (_, end), (start, _) in zip(windows, windows[1:], strict=False):
        assert start >= end, f"two launches overlapped: {windows}"
    experiment_id = mlflow.experiment(f"mlbench/{TASK}")["experiment_id"]
    assert len(mlflow.runs_of(experiment_id, first)) == len(mlflow.runs_of(experiment_id, second)) == 3
