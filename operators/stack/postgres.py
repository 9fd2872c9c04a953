"""The stack's PostgreSQL: Debian's server binaries on a project-local data directory, listening on
127.0.0.1 only, with one database (and role of the same name) for Airflow and one for MLflow.

PostgreSQL refuses to run as root: as root (CI, containers) its commands run as the `postgres`
user that Debian's package creates, and the data directory belongs to it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from operators.stack.layout import StackLayout, StackState

SUPERUSER = "mlbench_admin"
INSTALL_HINT = "install it with `sudo apt-get install -y postgresql` (Debian/Ubuntu), then run `make stack` again"


class StackError(RuntimeError):
    """A stack command that cannot go on: one line saying why and what to do."""


def server_binaries() -> Path:
    """The directory of `postgres`, `initdb` and `pg_ctl` (Debian keeps them per major version)."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "postgres").exists() and Path(candidate, "initdb").exists():
            return Path(candidate)
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).parent
    raise StackError(f"no PostgreSQL server found (initdb, postgres); {INSTALL_HINT}")


def _as_owner(command: list[str]) -> list[str]:
    """`command` as the user the server runs as: ourselves, or `postgres` when we are root."""
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise StackError(f"running as root needs the `postgres` user to run the server; {INSTALL_HINT}") from None
    return ["runuser", "-u", "postgres", "--", *command]


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(_as_owner(command), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise StackError(f"{what} failed: {' '.join(tail) or f'exit code {done.returncode}'}")


def _owned_directory(path: Path, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


def initialize(layout: StackLayout, state: StackState) -> None:
    """A new cluster (once per stack): password logins over TCP, the superuser `mlbench_admin`."""
    binaries = server_binaries()
    if (layout.postgres_data / "PG_VERSION").exists():
        return
    _owned_directory(layout.postgres_data, 0o700)
    with tempfile.NamedTemporaryFile("w", dir=layout.root, delete=False) as handle:
        handle.write(state.postgres_password + "\n")
    password_file = Path(handle.name)
    try:
        if os.geteuid() == 0:
            os.chown(password_file, pwd.getpwnam("postgres").pw_uid, -1)
        _run([str(binaries / "initdb"), "-D", str(layout.postgres_data), "-U", SUPERUSER, "-A", "scram-sha-256",
              f"--pwfile={password_file}", "-E", "UTF8", "--no-instructions"], "initdb")
    finally:
        password_file.unlink(missing_ok=True)


def start(layout: StackLayout, state: StackState) -> None:
    binaries = server_binaries()
    _owned_directory(layout.postgres_socket_dir, 0o755)
    layout.logs.mkdir(parents=True, exist_ok=True)
    log = layout.log_of("postgres")
    log.touch()
    if os.geteuid() == 0:
        os.chown(log, pwd.getpwnam("postgres").pw_uid, -1)
    options = f"-c listen_addresses=127.0.0.1 -p {state.postgres_port} -k {layout.postgres_socket_dir}"
    _run([str(binaries / "pg_ctl"), "start", "-D", str(layout.postgres_data), "-l", str(log), "-w", "-t", "60",
          "-o", options], "starting PostgreSQL")


def stop(layout: StackLayout) -> None:
    if not (layout.postgres_data / "postmaster.pid").exists():
        return
    _run([str(server_binaries() / "pg_ctl"), "stop", "-D", str(layout.postgres_data), "-m", "fast", "-w", "-t", "60"],
         "stopping PostgreSQL")


def restart(layout: StackLayout) -> None:
    """Stop and start again on the same port (the fault test's "PostgreSQL restarted")."""
    # -l: without a log file the server would inherit our captured stdout and `_run` never return
    _run([str(server_binaries() / "pg_ctl"), "restart", "-D", str(layout.postgres_data), "-m", "fast", "-w",
          "-t", "60", "-l", str(layout.log_of("postgres"))], "restarting PostgreSQL")


def create_databases(state: StackState) -> None:
    """Roles `airflow` and `mlflow`, each owning the database of its name (idempotent)."""
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=state.postgres_port, user=SUPERUSER,
                                  password=state.postgres_password, dbname="postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for role, password in (("airflow", state.airflow_db_password), ("mlflow", state.mlflow_db_password)):
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD %s', (password,))
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (role,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{role}" OWNER "{role}"')
    finally:
        connection.close()
