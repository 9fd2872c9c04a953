"""`python -m operators.stack up|down|status` (what `make stack` and `make stack-down` run), and
the same as functions for the stack test: `up` returns the running stack's state, `down` stops
everything and returns the pids it had to kill beyond the services."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from operators.stack import postgres
from operators.stack.environment import (
    ADMIN_USER,
    airflow_command,
    airflow_environment,
    mlflow_command,
    passwords_file,
    process_environment,
)
from operators.stack.layout import SERVICES, StackLayout, StackState
from operators.stack.postgres import StackError
from operators.stack.processes import (
    http_ok,
    kill_marked,
    running,
    service_pid,
    start_service,
    stop_service,
    wait_until,
)
from tasks.settings import LOCAL_LAUNCH_POOL, Settings

START_TIMEOUT_S = 180.0


def say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


def default_layout() -> StackLayout:
    return StackLayout(Settings.from_env().home / "stack")


def airflow_env(layout: StackLayout, state: StackState, extra: dict[str, str] | None = None) -> dict[str, str]:
    return process_environment(layout, {**airflow_environment(layout, state), **(extra or {})})


def up(layout: StackLayout, extra_env: dict[str, str] | None = None) -> StackState:
    """Start whatever of the stack is not running (creating it the first time); returns its state."""
    started = time.monotonic()
    state = StackState.load(layout)
    if state is None or not (layout.postgres_data / "PG_VERSION").exists():
        state = StackState.new()
        state.save(layout)
    postgres.initialize(layout, state)
    if not (layout.postgres_data / "postmaster.pid").exists():
        postgres.start(layout, state)
    postgres.create_databases(state)
    say(f"PostgreSQL on 127.0.0.1:{state.postgres_port} ({time.monotonic() - started:.0f}s)")
    _write_passwords(layout, state)
    env = airflow_env(layout, state, extra_env)
    _prepare_airflow(env)
    say(f"Airflow metadata database migrated ({time.monotonic() - started:.0f}s)")
    start_mlflow(layout, state)
    _start(layout, "api-server", airflow_command("api-server", state), env,
           health=f"{state.airflow_url}/api/v2/monitor/health")
    for service in ("scheduler", "dag-processor", "triggerer"):
        _start(layout, service, airflow_command(service, state), env,
               health=f"http://127.0.0.1:{state.scheduler_health_port}/health" if service == "scheduler" else None)
    say(f"stack up in {time.monotonic() - started:.0f}s")
    return state


def start_mlflow(layout: StackLayout, state: StackState) -> None:
    """The tracking server (also how the fault test brings it back after stopping it)."""
    _start(layout, "mlflow", mlflow_command(layout, state), process_environment(layout, {}),
           health=f"{state.mlflow_url}/health")


def _write_passwords(layout: StackLayout, state: StackState) -> None:
    path = passwords_file(layout)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({ADMIN_USER: state.admin_password}, handle)


def _prepare_airflow(env: dict[str, str]) -> None:
    airflow = str(Path(sys.executable).parent / "airflow")
    for args in (("db", "migrate"), ("pools", "set", LOCAL_LAUNCH_POOL, "1", "local launcher: one at a time")):
        done = subprocess.run([airflow, *args], env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise StackError(f"`airflow {' '.join(args)}` failed: {' '.join(tail)}")


def _start(layout: StackLayout, service: str, command: list[str], env: dict[str, str], *, health: str | None) -> None:
    pid = service_pid(layout, service)
    if pid is not None and running(pid):
        say(f"{service} already running (pid {pid})")
        return
    start_service(layout, service, command, env)
    if health is not None:
        waited = wait_until(http_ok(health), what=service, timeout_s=START_TIMEOUT_S, layout=layout, service=service)
        say(f"{service} ready ({waited:.0f}s)")
    else:
        say(f"{service} started")


def down(layout: StackLayout) -> list[int]:
    """Stop every service, then any process left with the stack's marker, then PostgreSQL. The data
    stays (`make stack` resumes it); returns the pids that had to be killed beyond the services."""
    for service in reversed(SERVICES):
        stop_service(layout, service)
    leftovers = kill_marked(layout)
    postgres.stop(layout)
    return leftovers


def status(layout: StackLayout) -> dict[str, bool]:
    state = {service: (pid := service_pid(layout, service)) is not None and running(pid) for service in SERVICES}
    state["postgres"] = (layout.postgres_data / "postmaster.pid").exists()
    return state


def print_access(layout: StackLayout, state: StackState) -> None:
    print(f"Airflow UI:  {state.airflow_url}   (login: {ADMIN_USER} / {state.admin_password})")
    print(f"MLflow UI:   {state.mlflow_url}")
    print(f"logs: {layout.logs}   credentials: {layout.state_file} (mode 0600)   stop: make stack-down")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m operators.stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--root", type=Path, help="where the stack lives (default: <MLBENCH_HOME>/stack)")
    parser.add_argument("--purge", action="store_true", help="with down: delete the stack's data too")
    args = parser.parse_args(argv)
    layout = StackLayout(args.root.resolve()) if args.root else default_layout()
    try:
        if args.command == "up":
            print_access(layout, up(layout))
        elif args.command == "down":
            leftovers = down(layout)
            say("stopped" + (f"; also killed {len(leftovers)} leftover process(es)" if leftovers else ""))
            if args.purge:
                shutil.rmtree(layout.root, ignore_errors=True)
                say(f"deleted {layout.root}")
        else:
            for name, alive in status(layout).items():
                print(f"{name:14} {'running' if alive else 'stopped'}")
            state = StackState.load(layout)
            if state is not None:
                print_access(layout, state)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
