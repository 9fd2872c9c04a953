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
from operators.stack.processes import http_ok, marked_processes
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


HEALTH_WAIT_S = 120.0
LOG_TAIL_LINES = 40
LOG_NOISE = ("Skipping registering function",)  # Great Expectations' import chatter, hundreds of lines


def pytest_collection_modifyitems(config, items):
    """Tests that break the shared stack on purpose run after those that need it whole (a stable sort)."""
    items.sort(key=lambda item: item.get_closest_marker("breaks_stack") is not None)


def stack_problems(stack) -> list[str]:
    """What is wrong with the stack now: dead services, Airflow components not healthy, MLflow down."""
    problems = [f"{service} is not running" for service, alive in status(stack["layout"]).items() if not alive]
    try:
        problems += stack["airflow"].unhealthy()
    except OSError as error:  # urllib's errors, refused connections and timeouts alike
        problems.append(f"Airflow's health endpoint: {error}")
    if not http_ok(f"{stack['mlflow'].url}/health")():
        problems.append("MLflow's /health does not answer 200")
    return problems


def wait_until_healthy(stack, timeout_s: float = HEALTH_WAIT_S) -> list[str]:
    """The stack's problems still there after `timeout_s` (none: it is healthy)."""
    deadline = time.monotonic() + timeout_s
    while (problems := stack_problems(stack)) and time.monotonic() < deadline:
        time.sleep(3)
    return problems


@pytest.fixture(autouse=True)
def healthy_stack(stack):
    """Every test starts on a healthy stack, or fails at once naming what is wrong (instead of
    waiting out its runs' timeouts behind a stack an earlier test broke)."""
    if problems := wait_until_healthy(stack):
        pytest.fail(f"the stack is not healthy after {HEALTH_WAIT_S:.0f} s: {'; '.join(problems)}")


def log_tails(layout: StackLayout) -> str:
    parts = []
    for log in sorted(layout.logs.glob("*.log")):
        lines = [line[:400] for line in log.read_text(errors="replace").splitlines()
                 if not any(noise in line for noise in LOG_NOISE)]
        parts.append(f"--- {log} (last {LOG_TAIL_LINES} lines) ---\n" + "\n".join(lines[-LOG_TAIL_LINES:]))
    return "\n".join(parts)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed stack test prints the tails of the stack's logs at once: CI may stop the session
    before pytest's summary, and the stack (with its logs) is deleted at the end."""
    report = (yield).get_result()
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and stack is not None:
        tails = log_tails(stack["layout"])
        report.sections.append(("stack logs", tails))
        terminal = item.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            error = call.excinfo.exconly()[:2000] if call.excinfo else ""
            terminal.write_line(f"\n{item.nodeid} failed in {call.when}: {error}")
            terminal.write_line(tails)


def finished_run(stack, dag_id: str, conf: dict) -> str:
    airflow = stack["airflow"]
    run_id = airflow.trigger(dag_id, conf)
    assert airflow.wait_for_run(dag_id, run_id) == "success", f"{dag_id} {run_id} failed: see {stack['layout'].logs}"
    return run_id
