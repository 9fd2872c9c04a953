"""The production path on one machine, without Docker: `make stack` / `make stack-down`.

What docker/compose.yaml describes, as local processes under `.mlbench/stack/`: a PostgreSQL server
(Debian's `postgresql` binaries, a project-local data directory) holding Airflow's and MLflow's
databases, an MLflow tracking server on it with proxied artifacts (`--serve-artifacts`), and
Airflow's api-server, scheduler (LocalExecutor), dag-processor and triggerer. Ports are free ones
on 127.0.0.1, chosen at start; passwords and secrets are generated per stack and kept in
`.mlbench/stack/state.json` (mode 0600, never committed). Airflow gets the same environment
variables as compose's `x-airflow-common` (`environment.py`; a test compares the two).

Modules: `layout` (paths and the saved state), `environment` (what every component is started
with), `postgres` (initdb, start, stop, roles and databases), `processes` (detached services, their
pid and log files, health waits, and stopping every process the stack started), `cli`
(`python -m operators.stack up|down|status`).
"""
