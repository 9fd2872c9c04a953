"""Nothing we read can run code: YAML only through a safe loader, torch.load only with
weights_only=True, no pickle, no eval. Checked on the syntax tree of every module we ship."""

import ast

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit

UNSAFE_CALLS = {"load": "yaml", "unsafe_load": "yaml", "full_load": "yaml", "load_all": "yaml",
                "unsafe_load_all": "yaml", "loads": "pickle"}


def _call_name(node: ast.Call) -> tuple[str | None, str | None]:
    """(module or object, function) of `a.b(...)`, or (None, name) of `b(...)`."""
    if isinstance(node.func, ast.Attribute):
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
        return owner, node.func.attr
    return None, node.func.id if isinstance(node.func, ast.Name) else None


def _keyword(node: ast.Call, name: str):
    return next((k.value for k in node.keywords if k.arg == name), None)


def _offences(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        owner, name = _call_name(node)
        if owner in ("yaml", "pickle") and (UNSAFE_CALLS.get(name) == owner or name == "load"):
            found.append((node.lineno, f"{owner}.{name}"))
        if owner == "torch" and name == "load":
            flag = _keyword(node, "weights_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                found.append((node.lineno, "torch.load without weights_only=True"))
        if owner is None and name in ("eval", "exec"):
            found.append((node.lineno, name))
        if name == "load" and _keyword(node, "allow_pickle") is not None:
            flag = _keyword(node, "allow_pickle")
            if not (isinstance(flag, ast.Constant) and flag.value is False):
                found.append((node.lineno, "numpy load with allow_pickle"))
    return found


@pytest.mark.parametrize("package", ["tasks", "operators", "dags", "bench"])
def test_no_shipped_module_reads_data_in_a_way_that_runs_code(package):
    sources = sorted((REPO / package).rglob("*.py"))
    assert sources
    offenders = [f"{path.relative_to(REPO)}:{line}: {what}" for path in sources
                 for line, what in _offences(ast.parse(path.read_text(), filename=str(path)))]
    assert offenders == []


def test_the_check_sees_each_unsafe_form():
    source = ("import yaml, torch, pickle\nyaml.load(s)\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
              "pickle.loads(b)\neval('1')\nnp.load(p, allow_pickle=True)\nyaml.safe_load(s)\n"
              "torch.load(p, weights_only=True)\n")
    assert [what for _, what in _offences(ast.parse(source))] == [
        "yaml.load", "torch.load without weights_only=True", "torch.load without weights_only=True",
        "pickle.loads", "eval", "numpy load with allow_pickle"]
