# Two commands on a fresh machine: `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench venv clean

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

# A fresh run each time: the same --output would otherwise resume the finished run.
demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/mlbench train --task cifar10-resnet20 --preset demo --world-size 2 --backend gloo \
		--output runs/demo --data-root data

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m unit tests

bench: $(STAMP)
	$(BIN)/python bench/step_overhead.py

clean:
	rm -rf runs data .pytest_cache
