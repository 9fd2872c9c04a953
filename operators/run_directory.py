"""The run directory of one DAG run: every file the pipeline's steps hand each other.

`<runs root>/<DAG run id, made path-safe>/` holds the validated request, the plan, the reason a
run stopped before training, an invalid request's record, the data gate's reports, a marker per
finished recording step, the report's summary, and one bundle directory per configuration.
Steps pass each other only small values (ids); everything else is read back from here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from operators.planning import Configuration, safe_name
from tasks.settings import Settings


class RunDirectory:
    REQUEST = "request.json"
    PLAN = "plan.json"
    STOPPED = "stopped.txt"
    INVALID_REQUEST = "invalid_request.json"
    MARKERS = "steps"
    DATA_VALIDATION = "data_validation"
    SUMMARY = "summary.txt"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls, run_id: str, settings: Settings | None = None) -> RunDirectory:
        settings = settings or Settings.from_env()
        return cls(settings.runs_root / safe_name(run_id))

    def _write(self, name: str, text: str) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / name
        target.write_text(text)
        return target

    def reset(self) -> None:
        """A DAG run cleared and run again must not read the previous attempt's request, plan or markers."""
        for name in (self.REQUEST, self.PLAN, self.STOPPED, self.INVALID_REQUEST):
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.path / self.MARKERS, ignore_errors=True)
        shutil.rmtree(self.data_validation_dir, ignore_errors=True)

    # -- request and plan
    def write_request(self, request: dict[str, Any]) -> None:
        self._write(self.REQUEST, json.dumps(request, indent=2))

    def read_request(self) -> dict[str, Any] | None:
        path = self.path / self.REQUEST
        return json.loads(path.read_text()) if path.exists() else None

    def write_plan(self, plan: list[Configuration]) -> None:
        self._write(self.PLAN, json.dumps([c.to_dict() for c in plan], indent=2))

    def read_plan(self) -> list[Configuration] | None:
        path = self.path / self.PLAN
        if not path.exists():
            return None
        return [Configuration.from_dict(entry) for entry in json.loads(path.read_text())]

    # -- why a run stopped before training
    def record_stop(self, message: str) -> None:
        self._write(self.STOPPED, message)

    def stop_reason(self) -> str | None:
        path = self.path / self.STOPPED
        return path.read_text() if path.exists() else None

    def record_invalid_request(self, params: dict[str, Any], reason: str) -> None:
        self._write(self.INVALID_REQUEST, json.dumps({"params": params, "reason": reason}, indent=2, default=str))

    def invalid_request(self) -> dict[str, Any] | None:
        """`{"params": ..., "reason": ...}` of a request that failed validation, if this run had one."""
        path = self.path / self.INVALID_REQUEST
        return json.loads(path.read_text()) if path.exists() else None

    # -- the data gate's reports
    @property
    def data_validation_dir(self) -> Path:
        return self.path / self.DATA_VALIDATION

    def write_data_report(self, dataset: str, report: dict[str, Any]) -> None:
        self.data_validation_dir.mkdir(parents=True, exist_ok=True)
        (self.data_validation_dir / f"{dataset}.json").write_text(json.dumps(report, indent=2, default=str))

    def data_reports(self) -> list[Path]:
        return sorted(self.data_validation_dir.glob("*.json"))

    def data_gate_failures(self) -> list[str]:
        failures = []
        for path in self.data_reports():
            report = json.loads(path.read_text())
            if not report["success"]:
                failures.append(f"data validation failed: {'; '.join(report['failures'][:3])}")
        return failures

    # -- recording steps and the report
    def mark_done(self, step: str) -> None:
        markers = self.path / self.MARKERS
        markers.mkdir(parents=True, exist_ok=True)
        (markers / f"{step}.done").touch()

    def unfinished(self, steps: tuple[str, ...]) -> list[str]:
        return [step for step in steps if not (self.path / self.MARKERS / f"{step}.done").exists()]

    def write_summary(self, text: str) -> None:
        self._write(self.SUMMARY, text + "\n")
