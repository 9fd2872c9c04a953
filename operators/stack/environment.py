"""What every component of the stack is started with.

Airflow's environment has exactly the keys of docker/compose.yaml's `x-airflow-common` environment
(`COMPOSE_KEYS`; tests/unit/operators/test_stack.py parses the compose file and compares), with
values for one machine, plus `STACK_ONLY_KEYS`: what the compose image sets by its layout (home,
DAGs folder) or what ports on a shared machine need. Every process also carries `STACK_MARKER`, by
which `processes.stop_all` finds whatever the stack started, however deep.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from operators.stack.layout import StackLayout, StackState

REPO = Path(__file__).resolve().parents[2]
STACK_MARKER = "MLBENCH_STACK_ROOT"
ADMIN_USER = "admin"
COMPOSE_KEYS = frozenset({
    "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "MLFLOW_TRACKING_URI", "MLBENCH_DATA_ROOT",
    "MLBENCH_RUNS_ROOT", "MLBENCH_HOME", "GX_ANALYTICS_ENABLED",
})
STACK_ONLY_KEYS = frozenset({
    "AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__API__BASE_URL", "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT", STACK_MARKER,
})


def database_url(state: StackState, user: str, password: str) -> str:
    return f"postgresql+psycopg2://{user}:{password}@127.0.0.1:{state.postgres_port}/{user}"


def airflow_environment(layout: StackLayout, state: StackState) -> dict[str, str]:
    """Airflow's variables for every component: the compose keys, then the stack-only ones."""
    compose = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url(state, "airflow", state.airflow_db_password),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{state.airflow_url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": state.jwt_secret,
        "AIRFLOW__API__SECRET_KEY": state.api_secret_key,
        "AIRFLOW__CORE__FERNET_KEY": state.fernet_key,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "MLFLOW_TRACKING_URI": state.mlflow_url,
        "MLBENCH_DATA_ROOT": str(layout.mlbench_home / "data"),
        "MLBENCH_RUNS_ROOT": str(layout.mlbench_home / "runs"),
        "MLBENCH_HOME": str(layout.mlbench_home),
        "GX_ANALYTICS_ENABLED": "False",
    }
    stack_only = {
        "AIRFLOW_HOME": str(layout.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(layout)),
        "AIRFLOW__API__BASE_URL": state.airflow_url,
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(state.scheduler_health_port),
        STACK_MARKER: str(layout.root),
    }
    return {**compose, **stack_only}


def process_environment(layout: StackLayout, extra: dict[str, str]) -> dict[str, str]:
    """This process's environment with the stack's on top, and the venv's scripts first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", STACK_MARKER: str(layout.root), **extra}


def passwords_file(layout: StackLayout) -> Path:
    """The simple auth manager's passwords (`{"admin": ...}`), written by `up` with mode 0600."""
    return layout.root / "airflow-passwords.json"


MLFLOW_APP = "mlbench-training-view"  # operators.stack.mlflow_ui: the training-runs view by default


def mlflow_command(layout: StackLayout, state: StackState) -> list[str]:
    return [
        str(Path(sys.executable).parent / "mlflow"), "server", "--app-name", MLFLOW_APP,
        "--backend-store-uri", database_url(state, "mlflow", state.mlflow_db_password),
        "--artifacts-destination", str(layout.artifacts), "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(state.mlflow_port), "--workers", "2",
        "--allowed-hosts", f"127.0.0.1,127.0.0.1:{state.mlflow_port},localhost,localhost:{state.mlflow_port}",
    ]


def airflow_command(service: str, state: StackState) -> list[str]:
    airflow = str(Path(sys.executable).parent / "airflow")
    if service == "api-server":
        return [airflow, "api-server", "--host", "127.0.0.1", "--port", str(state.api_port)]
    return [airflow, service]
