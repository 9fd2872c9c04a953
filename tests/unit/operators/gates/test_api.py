"""The gates' public API: the dataset gate is chosen by the catalog's kind, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from operators.gates import validate_dataset
from tasks.data import catalog

pytestmark = pytest.mark.unit


def test_every_catalog_kind_has_a_gate_that_reports_missing_arrays():
    kinds = {catalog.kind(name) for name in catalog.names()}
    assert kinds == {"image", "tabular", "text", "translation"}
    for kind in sorted(kinds):
        report = validate_dataset("empty", kind, {}, num_classes=2, shard_plans={})
        assert not report.success and report.suite == "dataset:empty"
        assert any(line.startswith("expect_column_values_to_be_in_set on arrays.dtype") and "=missing" in line
                   for line in report.failures), (kind, report.failures)


@pytest.mark.parametrize("kind", ["images", "tokens", "", None])
def test_an_unknown_kind_is_refused_naming_the_valid_ones(kind):
    with pytest.raises(ValueError, match=r"unknown dataset kind .*; valid kinds: image, tabular, text, translation$"):
        validate_dataset("digits", kind, {}, num_classes=10, shard_plans={})


def test_importing_the_gates_imports_only_the_standard_library():
    """Airflow steps import the package; GX, pandas, numpy and jsonschema come only when a gate runs."""
    code = ("import sys, operators.gates; "
            "print(sorted(m for m in ('great_expectations', 'pandas', 'numpy', 'jsonschema', 'torch', 'airflow') "
            "if m in sys.modules))")
    repo = Path(__file__).resolve().parents[4]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, check=True)
    assert out.stdout.strip() == "[]"
