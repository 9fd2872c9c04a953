# Two commands on a fresh machine: `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo train-demo airflow-ui stack stack-down test test-slow test-stack test-faults test-fast lint bench venv clean system-packages

venv: $(STAMP)

# torch first, pinned: the CPU build lies on disk on dev/CI machines; letting the project's
# dependency resolution pick torch could pull a multi-GB CUDA build instead.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[all]'
	@touch $(STAMP)

export GX_ANALYTICS_ENABLED := False

# The whole pipeline on the embedded default: project-local Airflow (SQLite) in .mlbench/airflow,
# MLflow in .mlbench/mlflow.db, datasets and run directories under .mlbench/.
demo: $(STAMP)
	$(BIN)/python -m operators.embedded demo

# Only the training runtime: 2 local ranks of the demo preset, no Airflow.
train-demo: $(STAMP)
	rm -rf .mlbench/train-demo
	$(BIN)/mlbench train --task cifar10-resnet20 --preset demo --world-size 2 --backend gloo \
		--output .mlbench/train-demo --data-root .mlbench/data

# The real Airflow UI on the same embedded setup: http://localhost:8080, trigger mlbench_benchmark.
airflow-ui: $(STAMP)
	$(BIN)/python -c "from operators.embedded import airflow_env, prepare_airflow; prepare_airflow(airflow_env())"
	PATH=$(CURDIR)/$(BIN):$$PATH AIRFLOW_HOME=$${AIRFLOW_HOME:-$(CURDIR)/.mlbench/airflow} \
		MLBENCH_HOME=$${MLBENCH_HOME:-$(CURDIR)/.mlbench} \
		AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags AIRFLOW__CORE__LOAD_EXAMPLES=False $(BIN)/airflow standalone

# The linter (pyflakes, pycodestyle, bugbear, Airflow's AIR rules) and the type checker (strict on the
# typed boundaries: pyproject.toml [tool.mypy]) run before the tests, so CI enforces them.
lint: $(STAMP)
	$(BIN)/ruff check tasks operators dags bench tests
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q -m "not slow and not stack and not faults" tests

# Whole DAG runs over several minutes each (the nightly's three nights); CI runs them after `make test`.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests

# Faults injected into real ranks (killed, frozen, full disk, damaged checkpoints, racing preparers),
# each measured into .mlbench/test-output/faults/measurements.json; CI runs them after `make test`.
test-faults: $(STAMP)
	$(BIN)/python -m pytest -q -m faults tests

# The production path on this machine: PostgreSQL, an MLflow server and a live Airflow (api-server,
# scheduler, dag-processor, triggerer) under .mlbench/stack/, on 127.0.0.1 with generated credentials.
stack: $(STAMP) system-packages
	$(BIN)/python -m operators.stack up

stack-down: $(STAMP)
	$(BIN)/python -m operators.stack down

# The stack for real, with both UIs checked in headless Chromium; CI runs it after `make test-slow`.
# -v: each test's outcome as it ends (a failing stack test also prints the stack's log tails at once);
# a stack that fails three tests is broken: stop there rather than wait out every later test's runs
test-stack: $(STAMP) system-packages
	$(BIN)/python -m pytest -v --durations=0 --maxfail=3 -m stack tests

# Debian's PostgreSQL server and Chromium: installed here when we are root, else the one command to run.
system-packages:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql chromium >/dev/null; \
	else \
		echo "error: needs Debian's PostgreSQL server and Chromium: sudo apt-get install -y postgresql chromium" >&2; \
		exit 1; \
	fi

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m unit tests

bench: $(STAMP)
	$(BIN)/python bench/step_overhead.py

clean:
	rm -rf .mlbench .pytest_cache
