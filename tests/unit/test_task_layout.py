"""The task layout docs/adding-a-task.md promises, checked on the tree: each task lives in its
declaration, a model entry and dataset entries, and nothing else in the code names it."""

import re

import pytest

from tasks.data import catalog
from tasks.models import MODELS
from tasks.registry import TASKS, resolve
from tasks.workloads import get_workload
from tests.conftest import REPO

pytestmark = pytest.mark.unit

# Where a task may be named besides its declaration: the defaults of the demo, the trigger form and
# a request, and the `mlbench allreduce` shortcut command.
DEFAULT_PICKERS = {"operators/embedded.py", "operators/request.py", "operators/pipeline.py", "tasks/cli.py"}
CODE = sorted(p for root in ("tasks", "operators", "dags") for p in (REPO / root).rglob("*.py"))


def _modules_naming(text: str) -> set[str]:
    pattern = re.compile(rf"[\"']{re.escape(text)}[\"']")
    return {str(p.relative_to(REPO)) for p in CODE if pattern.search(p.read_text())}


@pytest.mark.parametrize("name", list(TASKS))
def test_a_task_is_named_only_in_its_declaration(name):
    declaration = f"tasks/benchmarks/{name.replace('-', '_')}.py"
    assert (REPO / declaration).exists()
    named = _modules_naming(name) - DEFAULT_PICKERS
    assert declaration in named
    # Other declarations may use the same word for something else (task 0 and 1a's `allreduce` algorithm).
    assert {m for m in named if not m.startswith("tasks/benchmarks/")} == set()


@pytest.mark.parametrize("name", [n for n, spec in TASKS.items() if spec.kind == "training"])
def test_a_training_task_uses_a_registered_model_and_catalog_datasets_of_its_workloads_kind(name):
    spec = TASKS[name]
    assert spec.model.name in MODELS
    needed = get_workload(spec.workload).data_kind
    for preset in spec.presets:
        config = resolve(name, preset)
        assert catalog.kind(config.data.dataset) == needed, (preset, config.data.dataset)


def test_every_model_and_dataset_is_named_in_one_registry_entry_and_declarations_only():
    for model in MODELS:
        assert _modules_naming(model) - {"tasks/models/__init__.py"} <= {
            f"tasks/benchmarks/{n.replace('-', '_')}.py" for n in TASKS}, model
    for dataset in catalog.DATASETS:
        outside = {m for m in _modules_naming(dataset)
                   if not m.startswith(("tasks/benchmarks/", "tasks/data/"))}
        assert outside == set(), (dataset, outside)
