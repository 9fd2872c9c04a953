"""Faults on the real stack: the tracking server down while `track` runs, and PostgreSQL restarted in
the middle of a DAG run. Nothing is lost, duplicated or left RUNNING in MLflow."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from operators.stack import postgres
from operators.stack.cli import airflow_env, start_mlflow
from operators.stack.processes import stop_service
from tests.conftest import REPO
from tests.stack.clients import DEMO_CONF, metrics_of, tags_of
from tests.stack.conftest import TASK, wait_until_healthy

pytestmark = [pytest.mark.stack, pytest.mark.breaks_stack]
DAG = "mlbench_benchmark"


def logged_runs(stack, run_id: str) -> list[dict]:
    mlflow = stack["mlflow"]
    return mlflow.runs_of(mlflow.experiment(f"mlbench/{TASK}")["experiment_id"], run_id)


def test_the_tracking_server_down_during_track_loses_and_duplicates_nothing(stack):
    airflow, layout, state = stack["airflow"], stack["layout"], stack["state"]
    run_id = airflow.trigger(DAG, DEMO_CONF)
    airflow.wait_for_task(DAG, run_id, "validate_results", {"success"})
    stop_service(layout, "mlflow")  # down before `track` starts, and for a while after
    airflow.wait_for_task(DAG, run_id, "track", {"running", "up_for_retry"})
    time.sleep(20)
    start_mlflow(layout, state)
    assert airflow.wait_for_run(DAG, run_id) == "success"
    runs = logged_runs(stack, run_id)
    assert sorted(tags_of(r)["mlbench.role"] for r in runs) == ["benchmark", "configuration", "configuration"]
    assert all(r["info"]["status"] == "FINISHED" for r in runs)
    assert all("time_to_accuracy_s" in metrics_of(r) for r in runs if tags_of(r)["mlbench.role"] == "configuration")
    # Logging it again by hand, as after a longer outage, finds the same runs and adds nothing.
    done = subprocess.run([sys.executable, "-m", "tasks.cli", "track", "--run-id", run_id], cwd=REPO,
                          env=airflow_env(layout, state), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    again = logged_runs(stack, run_id)
    assert sorted(r["info"]["run_id"] for r in again) == sorted(r["info"]["run_id"] for r in runs)
    assert [len(metrics_of(r)) for r in sorted(again, key=lambda r: r["info"]["run_id"])] == \
        [len(metrics_of(r)) for r in sorted(runs, key=lambda r: r["info"]["run_id"])]


def test_a_postgresql_restart_mid_run_ends_the_run_cleanly(stack):
    airflow, layout = stack["airflow"], stack["layout"]
    run_id = airflow.trigger(DAG, DEMO_CONF)
    airflow.wait_for_task(DAG, run_id, "launch", {"running"})
    postgres.restart(layout)
    final = airflow.wait_for_run(DAG, run_id)
    assert final in ("success", "failed")
    if final == "failed":  # then a task says why, and the run is still recorded
        failed = [t for t in airflow.task_instances(DAG, run_id) if t["state"] == "failed"]
        assert failed, "the run failed with no failed task"
    statuses = [r["info"]["status"] for r in logged_runs(stack, run_id)]
    assert statuses and "RUNNING" not in statuses
    assert wait_until_healthy(stack) == [], "the stack did not recover from the restart"
