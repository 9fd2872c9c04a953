"""What the two result gates share: the suite's default name, the bundle's JSON schema checked before any
expectation (a violation skips the rest), and the expectations on the ranks that reported."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from operators.gates.gx import Part, run_gate
from operators.gates.report import ValidationReport
from tasks.runtime.results import Record, ResultError

RecordT = TypeVar("RecordT", bound=Record)

MAX_SCHEMA_FAILURE_LINES = 5


def validate_bundle(document: Any, record_type: type[RecordT], schema_file: str,
                    parts: Callable[[RecordT, int], list[Part]], *,
                    expected_world_size: int, suite_name: str | None) -> ValidationReport:
    """The schema (``tasks/runtime/<schema_file>``) first; only a bundle that satisfies it is read as its
    record (``record_type``) and has its parts built."""
    suite = suite_name or _default_suite(document)
    errors = _schema_errors(document, schema_file)
    if not errors:
        try:
            record = record_type.from_dict(document)
        except ResultError as exc:
            errors = [str(exc)]
    if errors:
        return _schema_failure(suite, errors)
    return run_gate(suite, parts(record, int(expected_world_size)))


def rank_expectations(expected_world_size: int) -> list[Any]:
    """Exactly ranks 0..expected_world_size-1 reported, once each."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableRowCountToEqual(value=expected_world_size),
        gxe.ExpectColumnValuesToBeUnique(column="rank"),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="rank", value_set=list(range(expected_world_size))),
    ]


def _default_suite(result: Any) -> str:
    if not isinstance(result, dict):
        return "result:?"
    return f"result:{result.get('task', '?')}__{result.get('algorithm', '?')}__w{result.get('world_size', '?')}"


def _schema_errors(result: Any, schema_file: str) -> list[str]:
    import jsonschema

    from tasks.runtime.results import load_schema

    schema = load_schema(schema_file)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(result), key=lambda e: [str(p) for p in e.absolute_path])
    lines = []
    for error in errors:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
        lines.append(f"{where}: {message}")
    return lines


def _schema_failure(suite: str, errors: list[str]) -> ValidationReport:
    lines = [f"schema: {e}" for e in errors[:MAX_SCHEMA_FAILURE_LINES]]
    if len(errors) > MAX_SCHEMA_FAILURE_LINES:
        lines.append(f"schema: ... ({len(errors) - MAX_SCHEMA_FAILURE_LINES} more violations)")
    statistics = {
        "evaluated_expectations": 1,
        "successful_expectations": 0,
        "unsuccessful_expectations": 1,
        "success_percent": 0.0,
    }
    return ValidationReport(suite, False, lines, statistics, {"schema_errors": errors})
