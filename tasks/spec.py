"""Typed benchmark-task specifications and the resolved run configuration.

A task spec says *what* a benchmark is (model, data, algorithm, hyperparameters, target), in one
place (tasks/benchmarks/). A preset derives a variant of it (full, light, demo, smoke) as data:
dotted overrides in the language of `--set`. Resolving a spec for a given world size and backend
(tasks.training) produces a `RunConfig`: every value the training program uses, with the
world-size-dependent ones (scaled learning rate, warm-up length) already computed, so the config
that is logged is exactly the config that ran.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, get_args, get_type_hints

from tasks.errors import UserError, quoted

LrScaling = Literal["none", "linear", "sqrt", "linear-capped-16"]
ScheduleKind = Literal["plateau-with-warmup", "multistep", "constant", "nt-asgd",
                       "exponential-warmup-step-decay", "inverse-sqrt"]
Aggregation = Literal["flat-allreduce-gradients", "flat-allreduce-gradients-sum", "ddp", "model-averaging"]
Workload = Literal["image-classification", "binary-classification", "language-model", "translation"]
Precision = Literal["fp32", "bf16", "fp16"]
Optimizer = Literal["sgd", "adam"]
BATCHING_UNITS = ("sentences", "tokens")
# How a translation task's BLEU is scored (tasks.runtime.bleu): MLPerf GNMT's rule (4a), MLPerf transformer's (4b)
BLEU_SCHEMES = ("sacrebleu-intl-lowercase", "mlperf-bleu-tokenize")


def added_field(default: Any = None) -> Any:
    """A field added after configs were first logged: left out of `to_dict` (and so of the config
    hash) while it is None, so every configuration that does not use it keeps the hash it had."""
    return field(default=default, metadata={"omit_when_none": True})


@dataclass(frozen=True)
class Augmentation:
    random_crop_padding: int = 0  # pixels of zero padding before a random crop back to size
    horizontal_flip: bool = False
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)  # per-channel, on [0, 1] pixel values
    std: tuple[float, ...] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class DataSpec:
    dataset: str  # a name from tasks.data.catalog
    augmentation: Augmentation = Augmentation()
    # Optional mirror for datasets that download (checksum still enforced).
    url: str | None = None
    md5: str | None = None
    # Cap on samples per split, for smoke runs on real data; None = the whole split.
    max_train_samples: int | None = None
    max_val_samples: int | None = None
    # Language models: the mean length of the sequences backpropagated through (MLBench's bptt).
    sequence_length: int | None = None


@dataclass(frozen=True)
class OptimizerSpec:
    name: Optimizer = "sgd"
    lr: float = 0.1  # base learning rate, before scaling by world size
    lr_scaling: LrScaling = "none"
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    grad_clip_norm: float = 0.0  # clip the aggregated gradient's global L2 norm to this; 0 = no clipping
    # adam (tasks 4a, 4b): its (beta1, beta2) and epsilon; None for SGD
    betas: tuple[float, float] | None = added_field()
    eps: float | None = added_field()


@dataclass(frozen=True)
class ScheduleSpec:
    kind: ScheduleKind = "constant"
    # plateau-with-warmup (MLBench's ReduceLROnPlateauWithWarmup):
    warmup_epochs: Literal["log2-world-size"] | int = 0
    factor: float = 0.5
    patience: int = 1
    threshold: float = 0.01  # absolute improvement of validation loss that counts
    min_lr: float = 0.0
    # multistep:
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    # nt-asgd (Merity et al.'s non-monotonically triggered averaged SGD, as MLBench's task 3a ran it):
    # switch to averaging once the validation loss is worse than the best of all epochs but the last
    # `nonmonotone_interval`; the averaged phase runs at optimizer.lr, unscaled (MLBench's ASGD).
    nonmonotone_interval: int = 5
    # Schedules by optimizer step (tasks 4a, 4b). exponential-warmup-step-decay (MLPerf GNMT, as MLBench
    # 4a): the rate grows exponentially from warmup_start_factor * lr to lr over warmup_steps, is cut by
    # `factor` at decay_start_fraction of all training steps and every decay_interval_fraction after,
    # at most max_decays times. inverse-sqrt (4b): linear from 0 to lr over warmup_steps, then
    # lr * sqrt(warmup_steps / step).
    warmup_steps: int | None = added_field()
    warmup_start_factor: float | None = added_field()
    decay_start_fraction: float | None = added_field()
    decay_interval_fraction: float | None = added_field()
    max_decays: int | None = added_field()


class Choice(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def reference(self) -> bool: ...


ChoiceT = TypeVar("ChoiceT", bound=Choice)


class AlgorithmChoice(Generic[ChoiceT]):
    """A task's ways to run in parallel: the reference one (MLBench's), or one chosen by name."""

    name: str
    algorithms: tuple[ChoiceT, ...]

    @property
    def reference_algorithm(self) -> ChoiceT:
        return next(a for a in self.algorithms if a.reference)

    def algorithm(self, name: str) -> ChoiceT:
        for algorithm in self.algorithms:
            if algorithm.name == name:
                return algorithm
        valid = ", ".join(a.name for a in self.algorithms)
        raise UserError(f"unknown algorithm {quoted(name)} for task {self.name}; valid: {valid}")


@dataclass(frozen=True)
class AlgorithmSpec:
    """One way to train the task in parallel; `reference` marks MLBench's reference implementation."""

    name: str
    aggregation: Aggregation
    optimizer: OptimizerSpec
    schedule: ScheduleSpec
    reference: bool = False
    description: str = ""


@dataclass(frozen=True)
class LossSpec:
    name: Literal["cross-entropy", "binary-cross-entropy", "label-smoothed-cross-entropy"] = "cross-entropy"
    l1: float = 0.0  # regularization added to the loss: l1 * sum|p| + l2 / 2 * sum p^2 over all parameters
    l2: float = 0.0
    # Language models (AWD-LSTM): activation regularization alpha * mean(h^2) on the last layer's dropped
    # output (AR) and temporal activation regularization beta * mean((h_t+1 - h_t)^2) on its raw output (TAR).
    activation_alpha: float = 0.0
    temporal_activation_beta: float = 0.0
    # Translation: the share of the target's probability mass spread evenly over the vocabulary.
    label_smoothing: float | None = added_field()


@dataclass(frozen=True)
class TranslationSpec:
    """What a translation task adds to a training run: how sentence pairs are batched, how the
    validation set is decoded (beam search) and how BLEU is scored."""

    # An optimizer step sees `global_batch` sentences (or target tokens) across all workers; a worker
    # processes at most `max_per_pass` at once and accumulates the gradients of the rest.
    batching: Literal["sentences", "tokens"] = "sentences"
    global_batch: int = 2048
    max_per_pass: int = 128
    # What the loss is divided by before the gradients are summed across workers: the worker's own
    # sentences in the step (MLBench 4a) or the target tokens of the step on all workers (4b).
    loss_normalization: Literal["sentences", "tokens"] = "sentences"
    eval_batch_sentences: int = 64  # validation sentences decoded together (and MLBench's BLEU batch)
    beam_size: int = 5
    max_decode_length: int | None = 150  # None: source length + max_decode_length_offset
    max_decode_length_offset: int | None = None
    length_penalty: float = 0.6
    length_penalty_constant: float = 5.0
    coverage_penalty: float = 0.1
    bleu: str = "sacrebleu-intl-lowercase"  # one of BLEU_SCHEMES
    sample_translations: int = 20  # validation sentences written with their translations at each evaluation
    # fp16 dynamic loss scaling: the first scale, the clean steps before it doubles, its cap (None: no cap)
    loss_scale_start: float = 2.0**10
    loss_scale_window: int = 128
    loss_scale_max: float | None = 2.0**13


@dataclass(frozen=True)
class TargetSpec:
    metric: str  # name of the validation metric, e.g. "top1"
    mode: Literal["max", "min"]
    value: float  # MLBench's (full) quality target; the light preset overrides target_value


@dataclass(frozen=True)
class Preset:
    """A named variant of a task: dotted overrides of its unresolved config, exactly as
    `--set FIELD=VALUE` takes them (so any preset can be reproduced, or varied, by hand)."""

    name: str
    description: str
    overrides: Mapping[str, str] = field(default_factory=dict)


def presets(*items: Preset) -> dict[str, Preset]:
    """A task's presets by name, in the order given (the order `mlbench tasks` lists them)."""
    return {preset.name: preset for preset in items}


def quality_presets(light_target: str) -> tuple[Preset, Preset]:
    """`full` (the task as declared) and `light` (the same with MLBench's lighter target)."""
    return (Preset("full", "the task as MLBench defines it, full quality target"),
            Preset("light", "the task as MLBench defines it, lighter quality target", {"target_value": light_target}))


@dataclass(frozen=True)
class ModelSpec:
    name: str  # a name from tasks.models
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec(AlgorithmChoice[AlgorithmSpec]):
    name: str
    version: str
    mlbench_id: str  # MLBench's task number, e.g. "1a"
    description: str
    model: ModelSpec
    data: DataSpec
    algorithms: tuple[AlgorithmSpec, ...]
    batch_size: int  # per worker
    max_epochs: int
    eval_every_epochs: int
    target: TargetSpec
    seed: int
    num_classes: int | None  # None: from the dataset (a language model's vocabulary)
    presets: dict[str, Preset]
    workload: Workload = "image-classification"
    loss: LossSpec = LossSpec()
    eval_batch_size: int | None = None  # per worker; None = batch_size
    translation: TranslationSpec | None = None  # translation tasks only
    # also evaluate after every this fraction of an epoch (0.001 <= f < 1); None: only after epochs
    mid_epoch_eval_interval: float | None = None
    kind: str = "training"  # tasks.kinds: how the task runs, is validated, logged and reported


@dataclass(frozen=True)
class RuntimeOptions:
    """How to execute, not what to train: these never change the benchmark's definition."""

    precision: Precision = "fp32"
    channels_last: bool = False
    deterministic: bool = False
    checkpoint_every_epochs: int = 1


ConfigT = TypeVar("ConfigT", bound="ResolvedConfig")


class ResolvedConfig:
    """What every resolved configuration (a training run's, a sweep's) shares: a plain-dict form
    that is logged and written to config.json, a stable hash, and the way back from that dict.

    `DERIVED` names the fields computed at resolution and what to set instead (overrides refuse them).
    """

    DERIVED: ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = _plain(self)
        return plain

    def config_hash(self) -> str:
        """Stable hash of the resolved config: two runs with the same hash ran the same thing."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls: type[ConfigT], data: dict[str, Any]) -> ConfigT:
        built: ConfigT = _build_dataclass(cls, data)
        return built


# Fields of a resolved training config that are computed from others; set their inputs instead.
TRAINING_DERIVED_FIELDS = {
    "scaled_lr": "optimizer.lr and optimizer.lr_scaling",
    "warmup_epochs": "schedule.warmup_epochs",
    "global_batch_size": "batch_size",
    "world_size": "--world-size",
    "backend": "--backend",
    "task": "--task",
    "preset": "--preset",
    "algorithm": "--algorithm",
    "aggregation": "--algorithm",
    "reference_implementation": "--algorithm",
    "device": "--device",
    "mlbench_id": "the task spec",
    "task_version": "the task spec",
    "workload": "the task spec",
}


@dataclass(frozen=True)
class RunConfig(ResolvedConfig):
    """Everything one benchmark run uses, resolved for its world size. Logged in full."""

    DERIVED: ClassVar[dict[str, str]] = TRAINING_DERIVED_FIELDS

    task: str
    task_version: str
    mlbench_id: str
    preset: str
    algorithm: str
    aggregation: Aggregation
    reference_implementation: bool
    world_size: int
    backend: str
    device: str  # "cpu" or "cuda"
    model: ModelSpec
    data: DataSpec
    optimizer: OptimizerSpec
    schedule: ScheduleSpec
    scaled_lr: float  # optimizer.lr after lr_scaling for this world size
    warmup_epochs: int  # resolved from schedule.warmup_epochs
    batch_size: int  # per worker
    global_batch_size: int
    max_epochs: int
    eval_every_epochs: int
    target_metric: str
    target_mode: Literal["max", "min"]
    target_value: float
    seed: int
    num_classes: int | None  # None: from the dataset (a language model's vocabulary)
    workload: Workload = "image-classification"
    loss: LossSpec = LossSpec()
    eval_batch_size: int | None = None  # per worker; None = batch_size
    runtime: RuntimeOptions = RuntimeOptions()
    translation: TranslationSpec | None = added_field()  # translation tasks only
    mid_epoch_eval_interval: float | None = added_field()  # also evaluate every this fraction of an epoch

    def reached(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.target_mode == "max":
            return value >= self.target_value
        return value <= self.target_value


def scale_lr(lr: float, scaling: LrScaling, world_size: int) -> float:
    if scaling == "none":
        return lr
    if scaling == "linear":
        return lr * world_size
    if scaling == "sqrt":
        return lr * math.sqrt(world_size)
    if scaling == "linear-capped-16":
        return lr * min(16, world_size)
    raise ValueError(f"unknown lr scaling {scaling!r}")


def resolve_warmup_epochs(warmup: Literal["log2-world-size"] | int, world_size: int) -> int:
    if warmup == "log2-world-size":
        return int(math.log2(world_size))
    return int(warmup)


def _plain(value: Any) -> Any:
    """dataclasses.asdict, leaving out `added_field`s that are None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not (f.metadata.get("omit_when_none") and getattr(value, f.name) is None)}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass a field's type names, also inside `X | None`."""
    candidates = (hint, *get_args(hint))
    return next((arg for arg in candidates if isinstance(arg, type) and dataclasses.is_dataclass(arg)), None)


def _build_dataclass(cls: type, data: Any) -> Any:
    """Rebuild nested frozen dataclasses from plain JSON data (lists back to tuples), by type hint."""
    if not dataclasses.is_dataclass(cls) or not isinstance(data, dict):
        return data
    names = [f.name for f in dataclasses.fields(cls)]
    hints = get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        if name not in names:
            raise UserError(f"unknown config field {quoted(name)} in {cls.__name__}; valid: {', '.join(names)}")
        nested = _dataclass_of(hints[name])
        if nested is not None and isinstance(value, dict):
            kwargs[name] = _build_dataclass(nested, value)
        else:
            kwargs[name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)
