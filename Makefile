# Two commands on a fresh machine: `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo train-demo airflow-ui test test-slow test-fast lint bench venv clean

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
	$(BIN)/python -m pytest -q -m "not slow" tests

# Whole DAG runs over several minutes each (the nightly's three nights); CI runs them after `make test`.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m unit tests

bench: $(STAMP)
	$(BIN)/python bench/step_overhead.py

clean:
	rm -rf .mlbench .pytest_cache
