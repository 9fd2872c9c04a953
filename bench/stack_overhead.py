"""The production path's cost, measured side by side on one machine: how long `make stack` takes to
come up, a demo DAG run's wall time under the live scheduler (LocalExecutor on PostgreSQL, MLflow
server) against the same run through `airflow dags test` (SQLite, no servers), and what the
scheduler adds per task (from each task instance's scheduled, queued and start times).

    .venv/bin/python bench/stack_overhead.py [--rounds 2]

Rounds alternate the two paths (the stack is stopped while `airflow dags test` runs); medians are
printed as a Markdown table for docs/performance.md. The first start of a stack creates its
database; later rounds start the same one again.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from operators.embedded import airflow_env, prepare_airflow, run_dag  # noqa: E402
from operators.stack.cli import down, up  # noqa: E402
from operators.stack.environment import ADMIN_USER  # noqa: E402
from operators.stack.layout import StackLayout  # noqa: E402
from tests.stack.clients import DEMO_CONF, Airflow  # noqa: E402


def _time(stamp: str | None) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(stamp) if stamp else None


def live_run(airflow: Airflow) -> dict[str, float]:
    """One demo run through the REST API: wall time and the scheduler's per-task delays."""
    started = time.monotonic()
    run_id = airflow.trigger("mlbench_benchmark", DEMO_CONF)
    state = airflow.wait_for_run("mlbench_benchmark", run_id)
    wall = time.monotonic() - started
    if state != "success":
        raise SystemExit(f"live run {run_id} ended {state}")
    waits, busy = [], 0.0
    for task in airflow.task_instances("mlbench_benchmark", run_id):
        scheduled, begun, ended = (_time(task.get(k)) for k in ("scheduled_when", "start_date", "end_date"))
        if scheduled and begun:
            waits.append((begun - scheduled).total_seconds())
        if begun and ended:
            busy += (ended - begun).total_seconds()
    return {"wall_s": wall, "task_wait_median_s": statistics.median(waits), "task_wait_max_s": max(waits),
            "tasks": float(len(waits)), "task_busy_s": busy}


def embedded_run(home: Path, index: int) -> float:
    env = airflow_env({"MLBENCH_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow")})
    prepare_airflow(env)
    outcome = run_dag("mlbench_benchmark", DEMO_CONF, env, log_path=home / f"dags-test-{index}.log")
    if outcome.returncode != 0:
        raise SystemExit(f"`airflow dags test` run failed; see {outcome.log_path}")
    return outcome.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mlbench-stack-bench-"))
    os.chmod(root, 0o755)
    layout = StackLayout(root / "stack")
    startups, shutdowns, live, embedded = [], [], [], []
    for index in range(args.rounds):
        # The stack is down while `airflow dags test` runs: an idle scheduler and dag-processor
        # still take CPU (the DAG files are re-parsed every 30 s) and would slow the other path.
        started = time.monotonic()
        state = up(layout)
        startups.append(time.monotonic() - started)
        try:
            live.append(live_run(Airflow(state.airflow_url, ADMIN_USER, state.admin_password)))
        finally:
            stopping = time.monotonic()
            down(layout)
            shutdowns.append(time.monotonic() - stopping)
        print(f"round {index + 1}: live {live[-1]['wall_s']:.1f}s", flush=True)
        embedded.append(embedded_run(root / "embedded", index))
        print(f"round {index + 1}: dags test {embedded[-1]:.1f}s", flush=True)
    startup, shutdown = statistics.median(startups), statistics.median(shutdowns)
    median = {key: statistics.median(run[key] for run in live) for key in live[0]}
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"{datetime.date.today()}; {args.rounds} round(s)\n")
    print("| measure | value |\n|---|---|")
    print(f"| stack start-up (PostgreSQL, migrations, MLflow, Airflow's four components) | {startup:.1f} s |")
    print(f"| stack shutdown (`down`, nothing left) | {shutdown:.1f} s |")
    live_rounds = ", ".join(f"{run['wall_s']:.1f}" for run in live)
    embedded_rounds = ", ".join(f"{seconds:.1f}" for seconds in embedded)
    print(f"| demo run, live scheduler (median; rounds {live_rounds}) | {median['wall_s']:.1f} s |")
    print(f"| demo run, `airflow dags test` (median; rounds {embedded_rounds}) | {statistics.median(embedded):.1f} s |")
    print(f"| ratio live / dags test | {median['wall_s'] / statistics.median(embedded):.2f} |")
    print(f"| per task: scheduled -> started, median / max ({median['tasks']:.0f} task instances) "
          f"| {median['task_wait_median_s']:.2f} s / {median['task_wait_max_s']:.2f} s |")
    print(f"| time in tasks (sum of task durations) | {median['task_busy_s']:.1f} s |")


if __name__ == "__main__":
    main()
