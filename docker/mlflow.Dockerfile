# syntax=docker/dockerfile:1
#
# MLflow tracking server for the local stack (docker/compose.yaml): MLflow plus the PostgreSQL
# driver its backend store needs. The same MLflow version as the project's `airflow` extra, so the
# client in Airflow and this server agree on the API. From the build context it copies one module,
# operators/stack/mlflow_ui.py (imports only MLflow): the server app that opens experiments in the
# UI's training-runs view by default (`--app-name mlbench-training-view`).
#
#   docker build -f docker/mlflow.Dockerfile -t mlbench-airflow/mlflow:3.17.2 .
#
# The compose file passes the server flags (backend store, artifact destination, allowed hosts).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG MLFLOW_VERSION=3.17.2
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONUNBUFFERED=1

COPY docker/mlflow-ui/pyproject.toml /opt/mlflow-ui/pyproject.toml
COPY operators/stack/mlflow_ui.py /opt/mlflow-ui/mlbench_mlflow_ui.py
RUN pip install --no-cache-dir "mlflow==${MLFLOW_VERSION}" "psycopg2-binary>=2.9,<3" /opt/mlflow-ui \
 && mlflow --version

# Artifacts are written here (a named volume in compose takes over this ownership).
RUN groupadd --gid 10001 mlflow \
 && useradd --uid 10001 --gid 10001 --home-dir /home/mlflow --create-home --shell /usr/sbin/nologin mlflow \
 && mkdir -p /mlflow-artifacts \
 && chown 10001:10001 /mlflow-artifacts

WORKDIR /home/mlflow
USER 10001:10001
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
