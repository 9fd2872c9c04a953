# syntax=docker/dockerfile:1
#
# Training image: one program, `mlbench` (entrypoint). Every rank of every launcher runs
#   mlbench worker --config /results/<run>/<config>/config.json --output /results/<run>/<config> --data-root /datasets
# with RANK (or JOB_COMPLETION_INDEX), WORLD_SIZE, MASTER_ADDR and MASTER_PORT in its environment;
# config.json is the resolved configuration its launcher wrote there.
# Only tasks/ is installed: operators/ (Airflow side) is not part of the image, so its `mlbench`
# has no `pools`/`render` (those commands are entry points of operators/cli.py).
#
# Build from the repository root (the build context; docker/train.Dockerfile.dockerignore keeps it small):
#
#   CUDA (default; GPU pools, nccl):
#     docker build -f docker/train.Dockerfile -t mlbench-airflow/train:0.1.0-cuda \
#       --build-arg MLBENCH_GIT_SHA=$(git rev-parse HEAD) \
#       --build-arg MLBENCH_IMAGE=mlbench-airflow/train:0.1.0-cuda .
#
#   CPU (CPU pools, gloo):
#     docker build -f docker/train.Dockerfile -t mlbench-airflow/train:0.1.0-cpu \
#       --build-arg BASE_IMAGE=python:3.11-slim-bookworm \
#       --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu \
#       --build-arg MLBENCH_GIT_SHA=$(git rev-parse HEAD) \
#       --build-arg MLBENCH_IMAGE=mlbench-airflow/train:0.1.0-cpu .
#
# Where Python comes from (the one design decision here):
#   The project is built and tested on CPython 3.11, and the training venv must find *its own*
#   interpreter at run time. Ubuntu 24.04 (the CUDA base) ships only python3.12, 22.04 only 3.10,
#   and a PPA would put a third-party interpreter under the benchmark. So both variants use the
#   same interpreter: the official CPython build from the `python` image (PYTHON_IMAGE).
#     1. stage `cpython`: the official python:3.11 image (Debian bookworm, glibc 2.36).
#     2. stage `builder`: that same interpreter creates /opt/mlbench/venv, installs torch from
#        TORCH_INDEX_URL first, then the project with the `train` extra under a constraint that
#        keeps exactly the torch build just installed (pip cannot swap in another one).
#     3. stage `runtime`: FROM BASE_IMAGE; copies the interpreter (binary, libpython, stdlib)
#        into /usr/local exactly where the venv expects it, installs the distribution's shared
#        libraries the stdlib extension modules link against (OpenSSL, libffi, ...; names are
#        picked per distribution: OpenSSL is libssl3t64 on Ubuntu 24.04, libssl3 on bookworm),
#        and fails the build unless those modules import. Then copies the venv.
#   This works because the runtime base is glibc-compatible and not older than bookworm
#   (Ubuntu 24.04 has glibc 2.39; the CPU base *is* the python image, so the copy is a no-op
#   there). Any mismatch fails the build at the import check, never at run time.
#   CUDA itself comes with the torch wheel (the cu128 build depends on NVIDIA's CUDA, cuDNN and
#   NCCL wheels); the nvidia/cuda base adds the NVIDIA container-runtime settings
#   (NVIDIA_VISIBLE_DEVICES, NVIDIA_DRIVER_CAPABILITIES). The node needs a driver for CUDA 12.8.
#
# Runs as uid/gid 10001 (the pods' runAsUser), needs no writable root filesystem (bytecode is
# compiled at install time; outputs go to /results, scratch to /tmp). No secrets are used or stored.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# ------------------------------------------------------------------------------ the interpreter
FROM ${PYTHON_IMAGE} AS cpython

# ------------------------------------------------------------------------------ builder
FROM cpython AS builder
# torch: the version pinned in pyproject's `train` extra, built for this variant's accelerator.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3.11 -m venv /opt/mlbench/venv
ENV PATH=/opt/mlbench/venv/bin:${PATH}

RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
 && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY tasks ./tasks
# Non-editable install; the constraint pins the exact torch build above (e.g. 2.13.0+cu128).
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import torch; print('torch==' + torch.__version__)" > /tmp/torch-constraint.txt \
 && pip install --constraint /tmp/torch-constraint.txt ".[train]" \
 && pip check \
 && cd / && python -c "import torch, mlperf_logging, sklearn, tasks.cli; print('installed', tasks.cli.__file__)"

# ------------------------------------------------------------------------------ runtime
FROM ${BASE_IMAGE} AS runtime
ARG MLBENCH_GIT_SHA=unknown
ARG MLBENCH_IMAGE=mlbench-airflow/train:0.1.0-cuda

# Shared libraries of the stdlib extension modules a non-interactive program uses (OpenSSL for
# ssl/hashlib, libffi for ctypes, compression, sqlite3, uuid, expat), by the first package name
# this distribution knows (Ubuntu 24.04: libssl3t64; Debian bookworm: libssl3). readline, curses
# and dbm are left out: nothing here is interactive.
RUN set -eu; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    pick() { for p in "$@"; do if apt-cache show "$p" >/dev/null 2>&1; then echo "$p"; return 0; fi; done; \
             echo "none of these packages exists here: $*" >&2; return 1; }; \
    packages=ca-certificates; \
    for alternatives in "libssl3t64 libssl3" libffi8 libexpat1 libsqlite3-0 libuuid1 libbz2-1.0 liblzma5 zlib1g; do \
        packages="${packages} $(pick ${alternatives})"; \
    done; \
    apt-get install -y --no-install-recommends ${packages}; \
    rm -rf /var/lib/apt/lists/*

# The same CPython the venv was built with, where the venv expects it (/usr/local).
COPY --from=cpython /usr/local/bin/python3.11 /usr/local/bin/python3.11
COPY --from=cpython /usr/local/lib/python3.11 /usr/local/lib/python3.11
COPY --from=cpython /usr/local/lib/libpython3* /usr/local/lib/
RUN set -eu; \
    ldconfig; \
    ln -sf python3.11 /usr/local/bin/python3; \
    python3.11 -c "import ssl, hashlib, ctypes, zlib, bz2, lzma, sqlite3, uuid, pyexpat, json, multiprocessing; hashlib.md5(b''); print('python', __import__('sys').version.split()[0], ssl.OPENSSL_VERSION)"

RUN set -eu; \
    groupadd --gid 10001 mlbench; \
    useradd --uid 10001 --gid 10001 --home-dir /home/mlbench --create-home \
            --shell /usr/sbin/nologin mlbench; \
    mkdir -p /datasets /results; \
    chown 10001:10001 /datasets /results

COPY --from=builder /opt/mlbench/venv /opt/mlbench/venv

ENV PATH=/opt/mlbench/venv/bin:${PATH} \
    VIRTUAL_ENV=/opt/mlbench/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/mlbench \
    MLBENCH_DATA_ROOT=/datasets \
    MLBENCH_GIT_SHA=${MLBENCH_GIT_SHA} \
    MLBENCH_IMAGE=${MLBENCH_IMAGE}

# The entrypoint resolves, torch imports (no GPU needed for this) and the registry loads.
RUN mlbench tasks >/dev/null \
 && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

LABEL org.opencontainers.image.title="mlbench-airflow training image" \
      org.opencontainers.image.description="MLBench benchmark tasks: one rank per container (mlbench worker)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${MLBENCH_GIT_SHA}" \
      org.opencontainers.image.licenses="Apache-2.0"

WORKDIR /home/mlbench
USER 10001:10001
ENTRYPOINT ["mlbench"]
CMD ["--help"]
