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
import datetime
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, Union, get_type_hints

from tasks.runtime.timing import PHASES

if TYPE_CHECKING:
    from tasks.communication import CommunicationConfig
    from tasks.spec import RunConfig

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).with_name("result.schema.json")
RESULT_FILE = "result.json"
RecordT = TypeVar("RecordT", bound="Record")


class ResultError(ValueError):
    """A result.json that is not a record of its kind (a missing field, a value of the wrong type)."""


def finite_number(value: Any) -> float | None:
    """`value` as a finite float, or None: None, bools, strings, NaN and infinities are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# Reading and writing records: one generic walk over the dataclass fields, by type hint
# ---------------------------------------------------------------------------------------------

class Record:
    """A dataclass that is one JSON object of result.json: `to_dict` and `from_dict` by type hint.

    Keys come in `LAYOUT` order (the documented layout; fields not named there follow in field
    order), and a field named in `OMIT_IF_NONE` is left out while it is None. Fields named in
    `OPTIONAL` may be absent from a document (they take their default).
    """

    LAYOUT: ClassVar[tuple[str, ...]] = ()
    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset()
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        names = [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        ordered = [name for name in self.LAYOUT if name in names] + [n for n in names if n not in self.LAYOUT]
        return {name: _plain(getattr(self, name)) for name in ordered
                if not (name in self.OMIT_IF_NONE and getattr(self, name) is None)}

    @classmethod
    def from_dict(cls: type[RecordT], data: Any, path: str = "") -> RecordT:
        """The record of a parsed JSON object; ResultError naming the field (`history[1].lr`) that does
        not fit. Every field must be present except those in `OPTIONAL`."""
        label = path or cls.__name__
        if not isinstance(data, dict):
            raise ResultError(f"{label}: expected an object, got {_type_name(data)}")
        hints = get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in data:
                kwargs[f.name] = _typed(hints[f.name], data[f.name], f"{path}.{f.name}" if path else f.name)
            elif f.name not in cls.OPTIONAL:
                raise ResultError(f"{label}: missing field '{f.name}'")
        return cls(**kwargs)


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _typed(hint: Any, value: Any, where: str) -> Any:
    """`value` checked against `hint` (records rebuilt, lists walked; dicts and Any taken as they are)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        return _typed(next(o for o in options if o is not type(None)), value, where)
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_dict(value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ResultError(f"{where}: expected a list, got {_type_name(value)}")
        (item,) = typing.get_args(hint)
        return [_typed(item, entry, f"{where}[{index}]") for index, entry in enumerate(value)]
    expected = {float: (int, float), int: (int,), bool: (bool,), str: (str,), dict: (dict,)}.get(origin or hint)
    if expected is not None and (not isinstance(value, expected) or (hint is not bool and isinstance(value, bool))):
        raise ResultError(f"{where}: expected {getattr(origin or hint, '__name__', hint)}, got {_type_name(value)}")
    return value


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
class MidEpochEvaluation(Record):
    """An evaluation inside an epoch (the config's `mid_epoch_eval_interval`): after `step` of the epoch's
    `steps_in_epoch` optimizer steps, with the train time up to it."""

    step: int
    steps_in_epoch: int
    validation_metric: float | None
    validation_loss: float | None
    cumulative_train_time_s: float
    validation_metrics: dict[str, float | None] = field(default_factory=dict)

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"validation_metrics"})

    @property
    def epoch_fraction(self) -> float:
        return self.step / self.steps_in_epoch

    def finite(self) -> MidEpochEvaluation:
        return dataclasses.replace(
            self, validation_metric=_finite_or_none(self.validation_metric),
            validation_loss=_finite_or_none(self.validation_loss),
            validation_metrics={name: _finite_or_none(value) for name, value in self.validation_metrics.items()})


@dataclass(frozen=True)
class Evaluation:
    """One evaluation as readers plot or check it, wherever it ran: `step` None after the epoch's end;
    `position` in epochs since the start (0.3: 30 % into the first epoch; 2.0: after the second)."""

    epoch: int
    step: int | None
    position: float
    metric: float | None
    loss: float | None
    metrics: dict[str, float | None]


def _finite_or_none(value: float | None) -> float | None:
    return None if value is not None and not math.isfinite(value) else value


@dataclass
class EpochRecord(Record):
    """One epoch of the history; a metric that diverged (NaN, inf) is null, and the run's reason says why."""

    epoch: int
    lr: float
    train_loss: float | None
    validation_metric: float | None  # None on an epoch without evaluation
    validation_loss: float | None
    epoch_time_s: float
    train_time_s: float
    cumulative_train_time_s: float
    validation_top5: float | None = None
    # the epoch's mean of each training-batch metric MLBench computed inside its step (top1, ...)
    train_metrics: dict[str, float | None] = field(default_factory=dict)
    # the evaluation's other derived metrics (translation: the per-batch BLEU, the sentences decoded)
    validation_metrics: dict[str, float | None] = field(default_factory=dict)
    # the evaluations inside the epoch, in order (None: the config plans none). When one of them reached
    # the goal, the epoch ended there (`stopped_at_step`) and the validation fields above repeat it.
    mid_epoch_evaluations: list[MidEpochEvaluation] | None = None
    stopped_at_step: int | None = None

    LAYOUT: ClassVar[tuple[str, ...]] = (
        "epoch", "lr", "train_loss", "train_metrics", "validation_metric", "validation_loss", "validation_top5",
        "validation_metrics")
    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset({"mid_epoch_evaluations", "stopped_at_step"})
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({
        "validation_top5", "train_metrics", "validation_metrics", "mid_epoch_evaluations", "stopped_at_step"})

    @property
    def fraction_trained(self) -> float:
        """The share of the epoch's steps that ran: less than 1 when the goal ended it early."""
        if self.stopped_at_step is None or not self.mid_epoch_evaluations:
            return 1.0
        return self.stopped_at_step / self.mid_epoch_evaluations[-1].steps_in_epoch

    def evaluations(self) -> list[Evaluation]:
        """The epoch's evaluations in order: those inside it, then its own (none when it skipped
        evaluation). An epoch that the goal ended at an evaluation inside it has that one last, once."""
        inside = [Evaluation(self.epoch, e.step, self.epoch - 1 + e.epoch_fraction, e.validation_metric,
                             e.validation_loss, e.validation_metrics)
                  for e in self.mid_epoch_evaluations or [] if e.step != self.stopped_at_step]
        if self.validation_metric is None and self.validation_loss is None and not self.validation_metrics:
            return inside
        return [*inside, Evaluation(self.epoch, self.stopped_at_step, self.epoch - 1 + self.fraction_trained,
                                    self.validation_metric, self.validation_loss, self.validation_metrics)]

    def finite(self) -> EpochRecord:
        """The same epoch with non-finite losses and metrics as None: JSON has no NaN."""
        return dataclasses.replace(
            self, train_loss=_finite_or_none(self.train_loss),
            validation_metric=_finite_or_none(self.validation_metric),
            validation_loss=_finite_or_none(self.validation_loss),
            validation_top5=_finite_or_none(self.validation_top5),
            train_metrics={name: _finite_or_none(value) for name, value in self.train_metrics.items()},
            validation_metrics={name: _finite_or_none(value) for name, value in self.validation_metrics.items()},
            mid_epoch_evaluations=None if self.mid_epoch_evaluations is None
            else [evaluation.finite() for evaluation in self.mid_epoch_evaluations])


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
        """The epochs' worth of steps that ran: `epochs_run` less what a goal reached inside the last
        epoch left of it (10.9 for a stop at step 113 of 125 in the eleventh)."""
        return sum(entry.fraction_trained for entry in self.history)

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
