"""Kinds of benchmark task, as the pipeline sees them: the Airflow side's answers for a training
task, a translation task (4a, 4b) and a communication task (task 0), next to the runtime's in
tasks/kinds.py.

For each kind: its results gate (operators.gates), and how it is reported and logged
(operators.report.training / operators.report.communication offer the same functions: the
comparison rows and text table, the parent run's metrics and plots, a configuration run's metrics
and plots, its columns of configurations.csv). `pipeline_kind(task)` looks a task's kind up once
through the registry; nothing else in operators/ asks what kind a task is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from operators.gates import ValidationReport

ResultGate = Callable[..., "ValidationReport"]


@dataclass(frozen=True)
class PipelineKind:
    name: str
    has_target: bool  # a configuration's run is tagged goal_reached true/false
    report: ModuleType  # rows, table, parent_metrics, parent_plots, child_metrics, child_plots, configuration_row
    result_gate: ResultGate  # the operators.gates function that validates one of its result.json

    def validate_result(self, document: Any, *, expected_world_size: int, suite_name: str) -> ValidationReport:
        """The gate's verdict on a result.json as read from disk (its schema first, then its figures)."""
        return self.result_gate(document, expected_world_size=expected_world_size, suite_name=suite_name)

    def plots(self, drawers: dict[str, Callable[[Path], Path]], directory: Path) -> list[Path]:
        return [draw(directory / name) for name, draw in drawers.items()]


def _kinds() -> dict[str, PipelineKind]:
    from operators.gates import validate_sweep_result, validate_training_result, validate_translation_result
    from operators.report import communication, training, translation

    return {
        "training": PipelineKind("training", True, training, validate_training_result),
        "translation": PipelineKind("translation", True, translation, validate_translation_result),
        "communication": PipelineKind("communication", False, communication, validate_sweep_result),
    }


def pipeline_kind(task: str) -> PipelineKind:
    """The pipeline's answers for the kind of `task` (tasks.registry.kind_of). A task this version
    does not declare (a bundle of an older version read back) is reported as a training task."""
    from tasks.registry import TASKS, kind_of

    return _kinds()[kind_of(task).name if task in TASKS else "training"]
