"""`make stack` and docker/compose.yaml give Airflow the same variables (so the two cannot drift),
and the stack's credentials are generated, private and never the compose file's local defaults."""

import stat

import pytest
import yaml

from operators.stack.environment import COMPOSE_KEYS, STACK_ONLY_KEYS, airflow_environment, mlflow_command
from operators.stack.layout import StackLayout, StackState
from tests.conftest import REPO

pytestmark = pytest.mark.unit


def compose_airflow_environment():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    return compose["x-airflow-common"]["environment"]


def test_the_stack_gives_airflow_the_compose_files_variables(tmp_path):
    stack_env = airflow_environment(StackLayout(tmp_path), StackState.new())
    assert set(compose_airflow_environment()) == COMPOSE_KEYS
    assert set(stack_env) == COMPOSE_KEYS | STACK_ONLY_KEYS
    assert not COMPOSE_KEYS & STACK_ONLY_KEYS


def test_the_values_that_must_agree_do(tmp_path):
    compose, stack_env = compose_airflow_environment(), airflow_environment(StackLayout(tmp_path), StackState.new())
    for key in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "GX_ANALYTICS_ENABLED"):
        assert str(compose[key]) == stack_env[key], key
    assert stack_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert stack_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")


def test_credentials_are_generated_per_stack_and_saved_privately(tmp_path):
    layout = StackLayout(tmp_path / "stack")
    first, second = StackState.new(), StackState.new()
    assert first.admin_password != second.admin_password and first.jwt_secret != second.jwt_secret
    env = airflow_environment(layout, first)
    assert "mlbench-local-only" not in env["AIRFLOW__API_AUTH__JWT_SECRET"]  # not compose's local default
    first.save(layout)
    assert stat.S_IMODE(layout.state_file.stat().st_mode) == 0o600
    assert StackState.load(layout) == first


def test_every_port_is_on_loopback(tmp_path):
    layout, state = StackLayout(tmp_path), StackState.new()
    command = mlflow_command(layout, state)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert state.airflow_url.startswith("http://127.0.0.1:") and state.mlflow_url.startswith("http://127.0.0.1:")
    assert len({state.postgres_port, state.mlflow_port, state.api_port, state.scheduler_health_port}) == 4
