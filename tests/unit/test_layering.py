"""tasks/ (the training runtime, all a pod has) never depends on operators/ (the Airflow side)."""

import ast
import importlib.metadata

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit

FORBIDDEN = "operators"


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import statement and every importlib.import_module("...") call."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in
              ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def _is_forbidden(module: str) -> bool:
    return module == FORBIDDEN or module.startswith(FORBIDDEN + ".")


def test_no_module_under_tasks_imports_operators():
    sources = sorted((REPO / "tasks").rglob("*.py"))
    assert len(sources) > 20  # the scan sees the package
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in sources
        for line, module in _imported_modules(ast.parse(path.read_text(), filename=str(path)))
        if _is_forbidden(module)
    ]
    assert not offenders, "tasks/ must not depend on operators/: " + "; ".join(offenders)


@pytest.mark.parametrize("source", [
    "import operators",
    "import operators.kubernetes.pools as pools",
    "from operators.kubernetes.spec import build_manifests",
    "def f():\n    from operators import planning",
    "import importlib\nimportlib.import_module('operators.cli')",
])
def test_the_scan_sees_every_kind_of_import(source):
    assert any(_is_forbidden(module) for _, module in _imported_modules(ast.parse(source)))


def test_a_relative_or_similarly_named_import_is_not_flagged():
    source = "from . import operators\nimport operators_extra\nfrom tasks.operators_like import x"
    assert not any(_is_forbidden(module) for _, module in _imported_modules(ast.parse(source)))


def test_the_operators_commands_are_registered_as_entry_points():
    commands = {e.name: e.value for e in importlib.metadata.entry_points(group="mlbench.commands")}
    assert commands == {"pools": "operators.cli:add_pools_command", "render": "operators.cli:add_render_command",
                        "compare": "operators.cli:add_compare_command", "rerun": "operators.cli:add_rerun_command",
                        "detect": "operators.regressions.cli:add_detect_command",
                        "track": "operators.cli:add_track_command"}
