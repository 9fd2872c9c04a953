# syntax=docker/dockerfile:1
#
# Airflow image: the official Apache Airflow image plus this project (DAGs in /opt/airflow/dags,
# `operators` and `tasks` installed as a package) with the `airflow` extra: the cncf-kubernetes
# provider, Great Expectations and MLflow. No torch by default: with the kubernetes launcher the
# ranks run in the training image, never here.
#
# Build from the repository root (docker/airflow.Dockerfile.dockerignore keeps the context small):
#
#   Cluster deployments (kubernetes launcher):
#     docker build -f docker/airflow.Dockerfile -t mlbench-airflow/airflow:0.1.0 \
#       --build-arg MLBENCH_GIT_SHA=$(git rev-parse HEAD) .
#
#   One machine (the local launcher runs ranks inside the Airflow worker; what compose.yaml builds):
#     docker build -f docker/airflow.Dockerfile -t mlbench-airflow/airflow:0.1.0-local \
#       --build-arg EXTRAS=airflow,train .
#   When EXTRAS contains `train`, torch is installed first from TORCH_INDEX_URL (CPU build by
#   default), so resolving the project's `torch==` pin never pulls the multi-GB CUDA build.
#
# Stays the image's `airflow` user (uid 50000, gid 0). No secrets: connections, keys and
# passwords come from the deployment's environment or secrets backend.

ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

ARG EXTRAS=airflow
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG MLBENCH_GIT_SHA=unknown

# Mount points for the shared volumes and MLBENCH_HOME, owned by airflow: a fresh named volume
# (compose) takes over this ownership, so the airflow user can write datasets and results.
USER root
RUN mkdir -p /datasets /results /opt/airflow/mlbench /opt/mlbench/src \
 && chown airflow:0 /datasets /results /opt/airflow/mlbench /opt/mlbench/src \
 && chmod 2775 /datasets /results /opt/airflow/mlbench
USER airflow

COPY --chown=airflow:0 pyproject.toml README.md /opt/mlbench/src/
COPY --chown=airflow:0 tasks /opt/mlbench/src/tasks
COPY --chown=airflow:0 operators /opt/mlbench/src/operators

# `apache-airflow==$AIRFLOW_VERSION` (set by the base image) keeps pip from moving Airflow itself
# while it resolves the project's extras. The check at the end runs the installed package from
# outside the source tree: the CLI resolves and the node-pool profiles (package data) are there.
RUN set -eu; \
    case ",${EXTRAS}," in \
      *,train,*|*,all,*) \
        pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"; \
        python -c "import torch; print('torch==' + torch.__version__)" > /tmp/torch-constraint.txt ;; \
      *) : > /tmp/torch-constraint.txt ;; \
    esac; \
    pip install --no-cache-dir --constraint /tmp/torch-constraint.txt \
        "apache-airflow==${AIRFLOW_VERSION}" "/opt/mlbench/src[${EXTRAS}]"; \
    rm -f /tmp/torch-constraint.txt; \
    cd /tmp; \
    mlbench tasks >/dev/null; \
    mlbench pools >/dev/null

COPY --chown=airflow:0 dags /opt/airflow/dags

ENV MLBENCH_HOME=/opt/airflow/mlbench \
    MLBENCH_DATA_ROOT=/datasets \
    MLBENCH_RUNS_ROOT=/results \
    MLBENCH_GIT_SHA=${MLBENCH_GIT_SHA} \
    GX_ANALYTICS_ENABLED=False \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

USER airflow
