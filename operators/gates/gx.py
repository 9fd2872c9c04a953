"""Great Expectations plumbing: a gate's parts validated on one ephemeral data context, gathered into a report."""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

from operators.gates.failures import failure_line
from operators.gates.report import ValidationReport, jsonable

Part = tuple[str, Any, list[Any]]  # (part name, pandas frame, GX expectations on it)

_LOCK = threading.Lock()  # one gate at a time on the process's context


class _Validator:
    """An ephemeral data context with one pandas asset. Every frame is passed in as a batch parameter,
    so one whole-dataframe batch definition serves every gate and part."""

    def __init__(self) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no usage statistics from workers
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        asset = context.data_sources.add_pandas("mlbench-gates").add_dataframe_asset("frame")
        self._batches = asset.add_batch_definition_whole_dataframe("whole-frame")

    def validate(self, suite_name: str, frame: Any, expectations: list[Any]) -> Any:
        """GX's validation result of ``frame`` against ``expectations``, each tagged with its place in the list."""
        import great_expectations as gx

        suite = gx.ExpectationSuite(name=suite_name)
        for order, expectation in enumerate(expectations):
            expectation.meta = {**(expectation.meta or {}), "order": order}
            suite.add_expectation(expectation)
        return self._batches.get_batch(batch_parameters={"dataframe": frame}).validate(suite)


@functools.cache  # building the context is slow (a context, data source and asset): once per process
def _validator() -> _Validator:
    return _Validator()


def run_gate(suite_name: str, parts: list[Part]) -> ValidationReport:
    """Validate every part; the report holds one failure line per failed expectation, in list order."""
    failures: list[str] = []
    totals = {"evaluated_expectations": 0, "successful_expectations": 0, "unsuccessful_expectations": 0}
    described: dict[str, Any] = {}
    with _LOCK:
        validator = _validator()
        for part, frame, expectations in parts:
            validation = validator.validate(f"{suite_name}/{part}", frame, expectations)
            described[part] = validation.describe_dict()
            for key in totals:
                totals[key] += int(validation.statistics.get(key, 0))
            ordered = sorted(validation.results, key=lambda r: (r.expectation_config.meta or {}).get("order", 0))
            failures += [failure_line(part, r) for r in ordered if not r.success]
    evaluated = totals["evaluated_expectations"]
    totals["success_percent"] = 100.0 * totals["successful_expectations"] / evaluated if evaluated else 100.0
    return ValidationReport(suite_name, not failures, failures, totals, jsonable(described))


def where(column: str, value: Any) -> dict[str, Any]:
    """Restrict an expectation to the rows where column == value (a GX Condition, not a query string)."""
    from great_expectations.expectations.row_conditions import Column

    return {"row_condition": Column(column) == value}
