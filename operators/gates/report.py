"""A gate's verdict: the report written as JSON beside what it judged, and the exception that carries it."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

SUMMARY_FAILURES = 3  # failure lines quoted in summary()


@dataclass
class ValidationReport:
    """One gate's verdict on one dataset or one results bundle."""

    suite: str  # "dataset:<name>" or "result:<run id>"
    success: bool
    failures: list[str] = field(default_factory=list)  # one line per failed expectation
    statistics: dict = field(default_factory=dict)  # evaluated / successful / unsuccessful counts
    results: dict = field(default_factory=dict)  # GX validation results (describe_dict) per part

    def summary(self) -> str:
        evaluated = self.statistics.get("evaluated_expectations", 0)
        if self.success and not self.failures:
            return f"{self.suite}: all {evaluated} expectations passed"
        failed = self.statistics.get("unsuccessful_expectations", len(self.failures))
        quoted = "; ".join(self.failures[:SUMMARY_FAILURES])
        if len(self.failures) > SUMMARY_FAILURES:
            quoted += f"; ... ({len(self.failures) - SUMMARY_FAILURES} more)"
        return f"{self.suite}: {failed} of {evaluated} expectations failed: {quoted}"

    def to_dict(self) -> dict:
        return jsonable({**asdict(self), "summary": self.summary()})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """A report as `to_dict` wrote it (its summary is recomputed)."""
        return cls(suite=str(data["suite"]), success=data["success"] is True,
                   failures=[str(line) for line in data.get("failures") or []],
                   statistics=dict(data.get("statistics") or {}), results=dict(data.get("results") or {}))


class ValidationFailed(Exception):
    """A gate failed; str(exc) is the report's summary and exc.report the whole report."""

    def __init__(self, report: ValidationReport):
        super().__init__(report.summary())
        self.report = report

    def __reduce__(self):  # picklable across processes (the default would pass the message as report)
        return (type(self), (self.report,))


def jsonable(value: Any) -> Any:
    """A JSON-safe copy: numpy scalars as Python numbers, NaN/inf as null, unknown objects as strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):
        try:
            return jsonable(value.item())
        except (TypeError, ValueError):
            pass
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)
