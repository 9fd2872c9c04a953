"""The results bundle's `result.json`, typed: every writer builds one of these records and every
reader gets one back, so no code reads a result by string keys.

- `TrainingResult`: a training task's run (schema `result.schema.json`);
- `SweepResult`: task 0's all-reduce sweep (schema `allreduce_result.schema.json`).

Both open with the same fields (`RunRecord`: status, reason, what ran and how). `to_dict` writes
the JSON layout the schemas (and the README) document; `parse_result` reads it back into the
record of the task's kind (`tasks.kinds`), raising `ResultError` with one line naming the field
when a document does not fit. Torch-free: the Airflow side imports this module.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Union

from tasks.runtime.history import EpochRecord, epochs_trained
from tasks.runtime.records import Record
from tasks.runtime.records import ResultError as ResultError  # readers catch it from here
from tasks.runtime.records import finite_number as finite_number
from tasks.runtime.records import utc_now as utc_now
from tasks.runtime.timing import PHASES

if TYPE_CHECKING:
    from tasks.communication import CommunicationConfig
    from tasks.spec import RunConfig

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).with_name("result.schema.json")
RESULT_FILE = "result.json"


# ---------------------------------------------------------------------------------------------
# What both kinds record
# ---------------------------------------------------------------------------------------------

@dataclass
class Provenance(Record):
    """Where a result came from: host, versions, hardware, code and image (tasks.runtime.provenance)."""

    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset({"backends_unavailable"})
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({  # an empty provenance ({}) is a failure before any was known
        "hostname", "python", "platform", "torch", "cuda", "cudnn", "nccl", "device_name", "cpu_count",
        "torch_threads", "git_sha", "image", "node_type", "backends_unavailable"})

    hostname: str | None = None
    python: str | None = None
    platform: str | None = None
    torch: str | None = None
    cuda: str | None = None
    cudnn: int | None = None
    nccl: str | None = None
    device_name: str | None = None
    cpu_count: int | None = None
    torch_threads: int | None = None
    git_sha: str | None = None
    image: str | None = None
    node_type: str | None = None
    backends_unavailable: dict[str, str] | None = None  # task 0: the backends it could not measure, and why


@dataclass(kw_only=True)
class RunRecord(Record):
    """The fields every result.json opens with: its status, and what ran and how."""

    schema_version: str = SCHEMA_VERSION
    status: str = "failed"  # completed | failed
    reason: str | None = None  # why it failed
    task: str
    task_version: str
    mlbench_id: str
    preset: str
    algorithm: str
    reference_implementation: bool
    world_size: int
    backend: str
    device: str
    seed: int
    config: dict[str, Any]
    config_hash: str
    provenance: Provenance | None = None  # None (written {}): the run failed before it knew any
    wall_time_s: float = 0.0
    started_at: str = field(default_factory=utc_now)
    finished_at: str = field(default_factory=utc_now)

    def to_dict(self) -> dict[str, Any]:
        plain = super().to_dict()
        plain["provenance"] = plain["provenance"] or {}
        return plain

    @staticmethod
    def identity(config: RunConfig | CommunicationConfig) -> dict[str, Any]:
        """The identity fields of a config's record."""
        return {name: getattr(config, name) for name in (
            "task", "task_version", "mlbench_id", "preset", "algorithm", "reference_implementation",
            "world_size", "backend", "device", "seed")}

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def provenance_record(self) -> Provenance:
        """The provenance, empty when the run failed before it knew any."""
        return self.provenance if self.provenance is not None else Provenance()

    def reached_goal(self) -> bool | None:
        """Completed and reached its quality target with a time to accuracy to show; None for a run
        without a target (task 0)."""
        return None

    def outcome_text(self) -> str:
        """How the run ended, for a log line."""
        return self.status

    def failure_line(self, output: Path) -> str:
        return f"[mlbench] FAILED: {self.reason} (result: {output / RESULT_FILE})"


# ---------------------------------------------------------------------------------------------
# A training run
# ---------------------------------------------------------------------------------------------

@dataclass
class Target(Record):
    metric: str
    mode: str  # max | min
    value: float


@dataclass
class ModelInfo(Record):
    name: str
    parameters: int | None = None


@dataclass
class TrainingRankReport(Record):
    """One rank's own figures: MLBench's clock and its split, and its step count."""

    rank: int
    hostname: str | None
    device_name: str | None
    train_time_s: float
    compute_s: float
    communication_s: float
    steps: int
    phases_s: dict[str, float] = field(default_factory=dict)

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"phases_s"})


@dataclass(kw_only=True)
class TrainingResult(RunRecord):
    """A training task's result.json (result.schema.json; the README documents every field)."""

    LAYOUT: ClassVar[tuple[str, ...]] = (
        "schema_version", "status", "reason", "task", "task_version", "mlbench_id", "preset", "algorithm",
        "reference_implementation", "world_size", "backend", "device", "seed", "target", "goal_reached",
        "time_to_accuracy_s", "wall_time_to_accuracy_s", "train_time_s", "wall_time_s", "compute_s",
        "communication_s", "phases_s", "epochs_run", "steps", "final_validation_metric", "best_validation_metric",
        "throughput_samples_per_s", "history", "config", "config_hash", "model", "provenance", "ranks", "resumes",
        "lost_time_s", "started_at", "finished_at")

    target: Target
    goal_reached: bool = False
    time_to_accuracy_s: float | None = None
    wall_time_to_accuracy_s: float | None = None
    train_time_s: float = 0.0
    compute_s: float = 0.0
    communication_s: float = 0.0
    phases_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    epochs_run: int = 0
    steps: int = 0
    final_validation_metric: float | None = None
    best_validation_metric: float | None = None
    throughput_samples_per_s: float | None = None
    history: list[EpochRecord] = field(default_factory=list)
    model: ModelInfo
    ranks: list[TrainingRankReport] = field(default_factory=list)
    resumes: int = 0
    lost_time_s: float = 0.0  # wall time between the last checkpoint before a crash and the resume

    @classmethod
    def for_config(cls, config: RunConfig) -> TrainingResult:
        """What is known before training starts: a run that fails early still records this."""
        return cls(**cls.identity(config),
                   target=Target(config.target_metric, config.target_mode, config.target_value),
                   config=_json_plain(config.to_dict()), config_hash=config.config_hash(),
                   model=ModelInfo(config.model.name))

    @classmethod
    def failed(cls, config: RunConfig, reason: str) -> TrainingResult:
        return dataclasses.replace(cls.for_config(config), reason=reason)

    def reached_goal(self) -> bool:
        return self.completed and self.goal_reached and finite_number(self.time_to_accuracy_s) is not None

    @property
    def epochs_trained(self) -> float:
        """`epochs_run` less what a goal reached inside the last epoch left of it."""
        return epochs_trained(self.history)

    def outcome_text(self) -> str:
        return f"{self.status}, goal reached: {self.goal_reached}, time to accuracy: {self.time_to_accuracy_s}"

    def summary_line(self, output: Path) -> str:
        """The one line `mlbench train` ends with."""
        where = f"(result: {output / RESULT_FILE})"
        if not self.completed:
            return self.failure_line(output)
        target = self.target
        if self.goal_reached:
            return (f"[mlbench] goal reached: {target.metric} {self.final_validation_metric:.4f} "
                    f"(target {target.value}) in {self.epochs_trained:.4g} epochs; "
                    f"time to accuracy {self.time_to_accuracy_s:.2f}s, "
                    f"wall {self.wall_time_to_accuracy_s:.2f}s; compute {self.compute_s:.2f}s, "
                    f"communication {self.communication_s:.2f}s {where}")
        best = f"{self.best_validation_metric:.4f}" if self.best_validation_metric is not None else "n/a"
        short_of = "<" if target.mode == "max" else ">"
        return (f"[mlbench] target NOT reached: best {target.metric} {best} {short_of} {target.value} "
                f"after {self.epochs_run} epochs {where}")


# ---------------------------------------------------------------------------------------------
# Task 0: an all-reduce sweep
# ---------------------------------------------------------------------------------------------

@dataclass
class Measurement(Record):
    """Rank 0's figures for one dtype and tensor size."""

    elements: int
    dtype: str
    bytes: int
    latency_median_s: float
    latency_p10_s: float
    latency_p90_s: float
    algbw_gbps: float  # GB/s (1e9 bytes), at the median latency
    busbw_gbps: float

    def finite(self) -> bool:
        return all(finite_number(getattr(self, name)) is not None for name in (
            "latency_median_s", "latency_p10_s", "latency_p90_s", "algbw_gbps", "busbw_gbps"))


@dataclass
class MlbenchMeasurement(Record):
    """MLBench's own figure for one dtype and size: the mean of `calls` all-reduce calls, no warm-up,
    the device synchronized after each call only. Not comparable with `Measurement`'s median."""

    elements: int
    dtype: str
    calls: int
    mean_latency_s: float


@dataclass
class SweepRankReport(Record):
    """One rank's part in a sweep: how many sizes it measured, and how many sums came back wrong."""

    rank: int
    hostname: str | None
    device_name: str | None
    measurements: int
    wrong_elements: int


@dataclass(kw_only=True)
class SweepResult(RunRecord):
    """Task 0's result.json (allreduce_result.schema.json; the README documents every field)."""

    LAYOUT: ClassVar[tuple[str, ...]] = (
        "schema_version", "kind", "status", "reason", "task", "task_version", "mlbench_id", "preset", "algorithm",
        "reference_implementation", "world_size", "backend", "device", "seed", "config", "config_hash",
        "provenance", "measurements", "mlbench_measurements", "ranks", "wall_time_s", "started_at", "finished_at")
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"mlbench_measurements"})  # bundles of task 0 1.0 have none

    kind: str  # the collective: allreduce
    measurements: list[Measurement] = field(default_factory=list)  # ours: rounded sizes, median of timed calls
    mlbench_measurements: list[MlbenchMeasurement] = field(default_factory=list)  # MLBench's sizes and mean
    ranks: list[SweepRankReport] = field(default_factory=list)

    @classmethod
    def for_config(cls, config: CommunicationConfig) -> SweepResult:
        """What is known before measuring: a sweep that fails early still records this."""
        return cls(**cls.identity(config), kind=config.kind, config=_json_plain(config.to_dict()),
                   config_hash=config.config_hash())

    @classmethod
    def failed(cls, config: CommunicationConfig, reason: str) -> SweepResult:
        return dataclasses.replace(cls.for_config(config), reason=reason)

    def curves(self) -> dict[str, list[Measurement]]:
        """dtype -> its measurements with finite figures, ascending size."""
        by_dtype: dict[str, list[Measurement]] = {}
        for row in self.measurements:
            if row.finite():
                by_dtype.setdefault(row.dtype, []).append(row)
        return {dtype: sorted(rows, key=lambda r: r.elements) for dtype, rows in by_dtype.items()}

    def summary_line(self, output: Path, *, plot: Path) -> str:
        """The one line `mlbench allreduce` ends with: per dtype, the smallest size's latency and the peak."""
        if not self.completed:
            return self.failure_line(output)
        parts = []
        for dtype, rows in self.curves().items():
            peak = max(rows, key=lambda r: r.busbw_gbps)
            parts.append(f"{dtype}: {rows[0].latency_median_s * 1e3:.3f} ms at {rows[0].elements:,} "
                         f"element(s), peak busbw {peak.busbw_gbps:.3f} GB/s at {peak.elements:,}")
        return (f"[mlbench] all-reduce sweep of {len(self.config['sizes'])} sizes on {self.world_size} "
                f"rank(s), {self.backend} on {self.device}: {'; '.join(parts)} "
                f"(result: {output / RESULT_FILE}, plot: {plot})")


ResultRecord = Union[TrainingResult, SweepResult]


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

def failed_result(config: RunConfig | CommunicationConfig, reason: str) -> ResultRecord:
    """The record of a run that failed before (or without) its ranks writing one, in its kind's layout."""
    from tasks.registry import kind_of

    return kind_of(config.task).failed_result(config, reason)


def write_result(output: Path, result: ResultRecord) -> Path:
    path = output / RESULT_FILE
    tmp = output / (RESULT_FILE + ".tmp")
    try:
        tmp.write_text(json.dumps(result.to_dict(), indent=2, sort_keys=False, allow_nan=False, default=_jsonable))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (disk full) leaves no partial file behind
    return path


def parse_result(document: Any) -> ResultRecord:
    """A parsed result.json as the record of its task's kind; ResultError if it is not one."""
    from tasks.registry import TASKS, kind_of

    task = document.get("task") if isinstance(document, dict) else None
    record_type = kind_of(task).result_type if task in TASKS else (
        SweepResult if isinstance(document, dict) and "measurements" in document else TrainingResult)
    record: ResultRecord = record_type.from_dict(document)
    return record


def read_result(output: Path) -> ResultRecord:
    """`output`/result.json; ResultError if it is not valid JSON or not a record of its kind."""
    path = output / RESULT_FILE
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultError(f"{path} is not valid JSON: {exc}") from exc
    return parse_result(document)


def load_schema(name: str = SCHEMA_PATH.name) -> dict[str, Any]:
    """A results bundle's JSON schema: `result.schema.json` (training) or `allreduce_result.schema.json`."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.with_name(name).read_text())
    return schema


def _json_plain(data: dict[str, Any]) -> dict[str, Any]:
    """`data` as it reads back from JSON (tuples as lists), so a record equals its own read-back."""
    plain: dict[str, Any] = json.loads(json.dumps(data))
    return plain


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
