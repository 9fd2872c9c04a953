"""Both UIs in a real browser (Debian's headless Chromium driven by Playwright), on the live stack:
a person triggers the benchmark from Airflow's form and watches it succeed, then compares its two
configurations in MLflow. Assertions are on page content; screenshots go to the test output
directory (two of them are in the README)."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest

from operators.stack.environment import ADMIN_USER
from operators.tracking.views import VIEW_NAME
from tests.stack import browser as ui
from tests.stack.clients import tags_of
from tests.stack.conftest import TASK

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def page():
    with ui.browser_page() as opened:
        yield opened


@pytest.fixture(scope="module")
def triggered_in_the_form(stack, page):
    """The benchmark as a person triggers it: log in, open the form, set preset and worker counts."""
    airflow, state = stack["airflow"], stack["state"]
    airflow.wait_for_dag("mlbench_benchmark")
    airflow.call("PATCH", "/dags/mlbench_benchmark", {"is_paused": False})
    before = {run["dag_run_id"] for run in airflow.call("GET", "/dags/mlbench_benchmark/dagRuns?limit=100")["dag_runs"]}
    ui.airflow_login(page, state.airflow_url, ADMIN_USER, state.admin_password)
    dialog = ui.open_trigger_form(page, state.airflow_url, "mlbench_benchmark")
    ui.fill_trigger_form(page, dialog, preset="demo", world_sizes=[1, 2])
    page.screenshot(path=str(stack["output"] / "airflow-trigger-form.png"))
    ui.submit_trigger_form(dialog)
    deadline = time.monotonic() + 30
    while True:
        runs = airflow.call("GET", "/dags/mlbench_benchmark/dagRuns?limit=100")["dag_runs"]
        new = [run for run in runs if run["dag_run_id"] not in before]
        if new or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(new) == 1, f"the form created {len(new)} runs"
    return new[0]


def test_the_trigger_form_starts_the_run_it_shows(triggered_in_the_form):
    conf = triggered_in_the_form["conf"]
    assert conf["preset"] == "demo" and conf["world_sizes"] == [1, 2] and conf["algorithm"] is None


def test_the_run_reaches_success_in_the_grid_view(stack, page, triggered_in_the_form):
    run_id = triggered_in_the_form["dag_run_id"]
    assert stack["airflow"].wait_for_run("mlbench_benchmark", run_id) == "success"
    text = ui.run_state_in_grid(page, stack["state"].airflow_url, "mlbench_benchmark", run_id, "validate_request")
    assert "Success" in text and "Running" not in text
    for task in ("validate_request", "launch", "track", "compare_history", "check"):
        assert task in text  # the grid's task rows
    page.screenshot(path=str(stack["output"] / "airflow-run-success.png"))


@pytest.fixture(scope="module")
def tracked(stack, triggered_in_the_form):
    """The run's parent and child runs, as MLflow's API lists them."""
    mlflow = stack["mlflow"]
    run_id = triggered_in_the_form["dag_run_id"]
    assert stack["airflow"].wait_for_run("mlbench_benchmark", run_id) == "success"
    experiment_id = mlflow.experiment(f"mlbench/{TASK}")["experiment_id"]
    runs = mlflow.runs_of(experiment_id, run_id)
    parent = next(r for r in runs if tags_of(r)["mlbench.role"] == "benchmark")
    children = [r for r in runs if tags_of(r)["mlbench.role"] == "configuration"]
    return {"experiment_id": experiment_id, "parent": parent, "children": children}


def test_the_experiment_opens_in_the_training_runs_view_with_named_parent_runs(stack, page, tracked):
    text = ui.training_view(page, stack["state"].mlflow_url, tracked["experiment_id"])
    name = tracked["parent"]["info"]["run_name"]
    assert name.startswith(f"{TASK} demo w1,2 manual ") and name in text
    assert "Token Usage" not in text  # not the GenAI overview
    page.screenshot(path=str(stack["output"] / "mlflow-runs.png"))


def test_a_first_visit_from_mlflows_home_opens_the_training_runs_view(stack, page, tracked):
    with ui.fresh_page(page) as fresh:  # a browser that has never chosen between GenAI and Model training
        text = ui.experiment_from_home(fresh, stack["state"].mlflow_url, f"mlbench/{TASK}")
        fresh.screenshot(path=str(stack["output"] / "mlflow-from-home.png"))
    assert "Run Name" in text and "Token Usage" not in text
    assert tracked["parent"]["info"]["run_name"] in text


def test_the_saved_view_shows_the_metrics_to_compare_by(stack, page, tracked):
    ui.training_view(page, stack["state"].mlflow_url, tracked["experiment_id"])
    titles = ui.open_saved_view(page, VIEW_NAME)  # as a person finds it, under "Views"
    assert {"time_to_accuracy_s", "best_validation_metric", "world_size"} <= set(titles), titles


def test_the_compare_view_shows_time_to_accuracy_and_validation_curves_for_both(stack, page, tracked):
    children = {child["info"]["run_id"]: child["info"]["run_name"] for child in tracked["children"]}
    ui.training_view(page, stack["state"].mlflow_url, tracked["experiment_id"])
    ui.open_saved_view(page, VIEW_NAME)
    ui.select_runs(page, tracked["parent"]["info"]["run_name"], list(children.values()))
    page.screenshot(path=str(stack["output"] / "mlflow-comparison-view.png"))
    ui.compare_selected(page)
    assert sorted(json.loads(urllib.parse.parse_qs(page.url.split("?", 1)[1])["runs"][0])) == sorted(children)
    page.screenshot(path=str(stack["output"] / "mlflow-compare.png"))
    chart = ui.metric_chart(page, "time_to_accuracy_s")
    for name in children.values():
        assert any(line.startswith(f"{name}\t") and "(step=0)" in line for line in chart.splitlines()), name
    page.go_back()
    page.get_by_text("Run details").wait_for()
    curves = ui.metric_chart(page, "validation_top1")
    for name in children.values():
        assert f"{name} (validation_top1)" in curves  # one curve per run, per epoch
    page.screenshot(path=str(stack["output"] / "mlflow-validation-curves.png"))


def test_the_parent_run_page_shows_the_comparison_and_renders_the_scaling_plot(stack, page, tracked):
    url, experiment_id = stack["state"].mlflow_url, tracked["experiment_id"]
    parent_id = tracked["parent"]["info"]["run_id"]
    text = ui.run_page(page, url, experiment_id, parent_id)
    assert f"Benchmark {TASK}, DAG run" in text  # the description, rendered from markdown
    assert "world_size" in text and "speedup" in text  # its comparison table
    shown, width = ui.artifact_image(page, url, experiment_id, parent_id, "plots/scaling.png")
    assert shown.startswith("Path: mlflow-artifacts:/") and shown.endswith("plots/scaling.png")
    assert width > 300
    page.screenshot(path=str(stack["output"] / "mlflow-scaling-plot.png"))
