"""The benchmark-task registry: every task spec and its presets, in one place.

Task hyperparameters follow MLBench's reference *code* (not its docs where the two differ); see
the README's task table and ../shared/reference/mlbench.md §1. Task 0 (`allreduce`) is a
communication task, with no model or data: its spec and sweeps are in tasks/communication.py.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable

from tasks.communication import ALLREDUCE, CommunicationConfig, CommunicationTaskSpec, resolve_communication
from tasks.errors import UserError
from tasks.spec import (
    AlgorithmSpec,
    Augmentation,
    DataSpec,
    LossSpec,
    ModelSpec,
    OptimizerSpec,
    RunConfig,
    RuntimeOptions,
    ScheduleSpec,
    TargetSpec,
    TaskSpec,
    resolve_warmup_epochs,
    scale_lr,
)

BACKENDS = ("gloo", "nccl")

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
# Measured on the digits training split after scaling to [0, 1] (see tasks/data/digits.py).
DIGITS_MEAN = (0.3051, 0.3051, 0.3051)
DIGITS_STD = (0.3818, 0.3818, 0.3818)
# Language-model demo on the Python language reference (measured: see docs/performance.md).
DEMO_LM_EPOCHS = 40
DEMO_LM_PERPLEXITY = 150.0

CIFAR10_RESNET20 = TaskSpec(
    name="cifar10-resnet20",
    version="1.0",
    mlbench_id="1a",
    description="Image classification: ResNet-20 v1 on CIFAR-10, synchronous data-parallel SGD",
    model=ModelSpec(name="resnet20-cifar"),
    data=DataSpec(
        dataset="cifar10",
        augmentation=Augmentation(
            random_crop_padding=4, horizontal_flip=True, mean=CIFAR10_MEAN, std=CIFAR10_STD
        ),
    ),
    algorithms=(
        AlgorithmSpec(
            name="allreduce",
            aggregation="flat-allreduce-gradients",
            optimizer=OptimizerSpec(
                lr=0.02, lr_scaling="linear", momentum=0.9, weight_decay=1e-4, nesterov=False
            ),
            schedule=ScheduleSpec(
                kind="plateau-with-warmup",
                warmup_epochs="log2-world-size",
                factor=0.5,
                patience=1,
                threshold=0.01,
                min_lr=0.02,
            ),
            reference=True,
            description="MLBench reference: gradients packed into one flat all-reduce, averaged",
        ),
        AlgorithmSpec(
            name="ddp",
            aggregation="ddp",
            optimizer=OptimizerSpec(
                lr=0.1, lr_scaling="none", momentum=0.9, weight_decay=1e-4, nesterov=False
            ),
            schedule=ScheduleSpec(kind="multistep", milestones=(82, 109), gamma=0.1),
            reference=False,
            description="PyTorch DistributedDataParallel (MLBench's alternative implementation)",
        ),
    ),
    batch_size=128,
    max_epochs=164,
    eval_every_epochs=1,
    target=TargetSpec(metric="top1", mode="max", full=0.80, light=0.70),
    seed=42,
    num_classes=10,
    presets=("full", "light", "demo", "smoke"),
)

EPSILON_LOGREG = TaskSpec(
    name="epsilon-logreg",
    version="1.0",
    mlbench_id="2a",
    description="Binary classification: logistic regression on epsilon (2000 dense features), model averaging",
    workload="binary-classification",
    model=ModelSpec(name="logistic-regression", options={"num_features": 2000}),
    data=DataSpec(dataset="epsilon"),
    algorithms=(
        AlgorithmSpec(
            name="model-averaging",
            aggregation="model-averaging",
            optimizer=OptimizerSpec(lr=4.0, lr_scaling="linear-capped-16", momentum=0.0, weight_decay=0.0),
            # torch's ReduceLROnPlateau as MLBench ran it: x0.75 after one epoch without an absolute
            # improvement of 0.01 in validation loss, never below 4.
            schedule=ScheduleSpec(kind="plateau-with-warmup", warmup_epochs=0, factor=0.75, patience=0,
                                  threshold=0.01, min_lr=4.0),
            reference=True,
            description="MLBench reference: local SGD step, then weights all-reduced and averaged",
        ),
    ),
    loss=LossSpec(name="binary-cross-entropy", l2=2.5e-6),  # 1 / 400k training rows
    batch_size=100,
    max_epochs=20,
    eval_every_epochs=1,
    target=TargetSpec(metric="accuracy", mode="max", full=0.89, light=0.80),
    seed=42,
    num_classes=2,
    presets=("full", "light", "demo", "smoke"),
)

# AWD-LSTM as MLBench task 3a configured it (tasks.models.awd_lstm holds the architecture's defaults).
AWD_LSTM_OPTIONS = {
    "vocab_size": 33_278,
    "embedding_size": 400,
    "hidden_size": 1150,
    "num_layers": 3,
    "dropout": 0.4,
    "dropouth": 0.2,
    "dropouti": 0.65,
    "dropoute": 0.1,
    "weight_drop": 0.5,
    "tie_weights": True,
}

WIKITEXT2_LSTM = TaskSpec(
    name="wikitext2-lstm",
    version="1.0",
    mlbench_id="3a",
    description="Language modelling: AWD-LSTM on WikiText-2 (word level), synchronous SGD, then averaged SGD",
    workload="language-model",
    model=ModelSpec(name="awd-lstm", options=AWD_LSTM_OPTIONS),
    data=DataSpec(dataset="wikitext2", sequence_length=70),
    algorithms=(
        AlgorithmSpec(
            name="allreduce",
            aggregation="flat-allreduce-gradients",
            # lr 15·√k, each step's rate scaled by its sequence length / 70; gradient norm clipped to 0.25
            # after the all-reduce; the NT-ASGD switch keeps the rate.
            optimizer=OptimizerSpec(lr=15.0, lr_scaling="sqrt", momentum=0.0, weight_decay=1.2e-6,
                                    grad_clip_norm=0.25),
            schedule=ScheduleSpec(kind="nt-asgd", nonmonotone_interval=5),
            reference=True,
            description="MLBench reference: gradients all-reduced and averaged, clipped, SGD then averaged SGD",
        ),
    ),
    loss=LossSpec(name="cross-entropy", activation_alpha=2.0, temporal_activation_beta=1.0),
    batch_size=20,  # columns of the token stream per worker
    eval_batch_size=10,
    max_epochs=750,
    eval_every_epochs=1,
    target=TargetSpec(metric="perplexity", mode="min", full=70.0, light=90.0),
    seed=43,
    num_classes=None,  # the vocabulary, from the dataset
    presets=("full", "light", "demo", "smoke"),
)

TASKS: dict[str, TaskSpec | CommunicationTaskSpec] = {
    spec.name: spec for spec in (CIFAR10_RESNET20, EPSILON_LOGREG, WIKITEXT2_LSTM, ALLREDUCE)
}


@dataclasses.dataclass(frozen=True)
class Preset:
    """How a preset derives from its task: what it changes, and why."""

    name: str
    description: str
    apply: Callable[[TaskSpec, dict[str, Any]], None]  # edits the unresolved config dict in place


def _full(spec: TaskSpec, cfg: dict[str, Any]) -> None:
    cfg["target_value"] = spec.target.full


def _light(spec: TaskSpec, cfg: dict[str, Any]) -> None:
    cfg["target_value"] = spec.target.light


# A small AWD-LSTM for the language-model demo and smoke presets: the same architecture and
# regularisation, sized for a CPU and a vocabulary of a few hundred to a few thousand words.
SMALL_AWD_LSTM = {
    "embedding_size": 64, "hidden_size": 256, "num_layers": 2,
    "dropout": 0.3, "dropouth": 0.2, "dropouti": 0.3, "dropoute": 0.05, "weight_drop": 0.3, "tie_weights": True,
}  # fmt: skip


def _demo(spec: TaskSpec, cfg: dict[str, Any]) -> None:
    if spec.workload == "language-model":
        # The Python language reference that ships with CPython: real English text, offline.
        cfg["data"] = dataclasses.asdict(DataSpec(dataset="python-reference-text", sequence_length=35))
        cfg["model"]["options"] = dict(SMALL_AWD_LSTM)  # the vocabulary comes from the data
        cfg["max_epochs"] = DEMO_LM_EPOCHS
        cfg["target_value"] = DEMO_LM_PERPLEXITY
        return
    if spec.workload == "binary-classification":
        # Real tumour measurements that ship with scikit-learn (569 rows, 30 features).
        cfg["data"] = dataclasses.asdict(DataSpec(dataset="breast-cancer"))
        cfg["model"]["options"] = {}  # the feature count comes from the data
        cfg["max_epochs"] = 20
        cfg["target_value"] = 0.95
        return
    # Real handwritten digits that ship with scikit-learn: runs offline in under a minute.
    cfg["data"] = dataclasses.asdict(
        DataSpec(
            dataset="digits",
            augmentation=Augmentation(
                random_crop_padding=2, horizontal_flip=False, mean=DIGITS_MEAN, std=DIGITS_STD
            ),
        )
    )
    cfg["batch_size"] = 32
    cfg["max_epochs"] = 15
    cfg["target_value"] = 0.95


def _smoke(spec: TaskSpec, cfg: dict[str, Any]) -> None:
    if spec.workload == "language-model":
        # A generated WikiText-2-format archive, through the same parser as the real one.
        cfg["data"] = dataclasses.asdict(DataSpec(dataset="synthetic-wikitext2", sequence_length=20))
        cfg["model"]["options"] = {**SMALL_AWD_LSTM, "embedding_size": 16, "hidden_size": 32}
        cfg["max_epochs"] = 2
        cfg["target_value"] = 1.5  # not reached in 2 epochs: the smoke run exercises every epoch
        return
    if spec.workload == "binary-classification":
        # Generated rows in the real LIBSVM format, through the same parser as epsilon.
        cfg["data"] = dataclasses.asdict(DataSpec(dataset="synthetic-epsilon"))
        cfg["model"]["options"] = {}
        cfg["max_epochs"] = 3
        cfg["target_value"] = 0.999
        return
    # A few hundred generated images in the real CIFAR-10 file format: seconds on CPU.
    cfg["data"] = dataclasses.asdict(
        DataSpec(dataset="synthetic-cifar10", augmentation=spec.data.augmentation)
    )
    cfg["batch_size"] = 32
    cfg["max_epochs"] = 3
    cfg["target_value"] = 0.99


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("full", "the task as MLBench defines it, full quality target", _full),
        Preset("light", "the task as MLBench defines it, lighter quality target", _light),
        Preset("demo", "real data bundled with scikit-learn, reaches its target in under a minute on CPU", _demo),
        Preset("smoke", "tiny generated data in the real file format, a few epochs, for tests", _smoke),
    )
}

# Fields computed from others at resolution; set their inputs instead.
DERIVED_FIELDS = {
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

# Validation metrics each kind of workload reports (tasks.runtime.workloads), the goal's candidates.
WORKLOAD_METRICS = {
    "image-classification": ("top1", "top5", "loss"),
    "binary-classification": ("accuracy", "loss"),
    "language-model": ("perplexity", "loss"),
}


def is_communication_task(name: str) -> bool:
    """Task 0 and its kind: no dataset, no target, a sweep of sizes instead of epochs."""
    return isinstance(TASKS.get(name), CommunicationTaskSpec)


def get_task(name: str) -> TaskSpec | CommunicationTaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown task '{name}'; valid tasks: {', '.join(TASKS)}") from None


def get_preset(spec: TaskSpec | CommunicationTaskSpec, name: str) -> Preset:
    if name not in spec.presets or name not in PRESETS:
        raise UserError(f"unknown preset '{name}' for task {spec.name}; valid presets: {', '.join(spec.presets)}")
    return PRESETS[name]


def resolve(
    task: str,
    preset: str = "full",
    *,
    world_size: int = 1,
    backend: str = "gloo",
    device: str | None = None,
    algorithm: str | None = None,
    overrides: dict[str, str] | None = None,
    runtime: RuntimeOptions | None = None,
) -> RunConfig | CommunicationConfig:
    """Resolve a task + preset for one world size and backend into the config that will run."""
    spec = get_task(task)
    chosen_preset = get_preset(spec, preset)
    if not isinstance(world_size, int) or world_size < 1:
        raise UserError(f"world size must be a whole number >= 1, got {world_size!r}")
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}'; valid backends: {', '.join(BACKENDS)}")
    device = device or ("cuda" if backend == "nccl" else "cpu")
    if device not in ("cpu", "cuda"):
        raise UserError(f"unknown device '{device}'; valid devices: cpu, cuda")
    if backend == "nccl" and device != "cuda":
        raise UserError("backend 'nccl' needs device 'cuda'; use backend 'gloo' for CPU training")
    if isinstance(spec, CommunicationTaskSpec):
        return resolve_communication(spec, preset, world_size=world_size, backend=backend, device=device,
                                     algorithm=algorithm, overrides=overrides)
    algo = spec.algorithm(algorithm) if algorithm else spec.reference_algorithm

    cfg: dict[str, Any] = {
        "task": spec.name,
        "task_version": spec.version,
        "mlbench_id": spec.mlbench_id,
        "preset": chosen_preset.name,
        "algorithm": algo.name,
        "aggregation": algo.aggregation,
        "reference_implementation": algo.reference,
        "world_size": world_size,
        "backend": backend,
        "device": device,
        "model": dataclasses.asdict(spec.model),
        "data": dataclasses.asdict(spec.data),
        "optimizer": dataclasses.asdict(algo.optimizer),
        "schedule": dataclasses.asdict(algo.schedule),
        "batch_size": spec.batch_size,
        "max_epochs": spec.max_epochs,
        "eval_every_epochs": spec.eval_every_epochs,
        "target_metric": spec.target.metric,
        "target_mode": spec.target.mode,
        "target_value": spec.target.full,
        "seed": spec.seed,
        "num_classes": spec.num_classes,
        "eval_batch_size": spec.eval_batch_size,
        "workload": spec.workload,
        "loss": dataclasses.asdict(spec.loss),
        "runtime": dataclasses.asdict(runtime or RuntimeOptions()),
    }
    chosen_preset.apply(spec, cfg)
    for path, raw in (overrides or {}).items():
        _apply_override(cfg, path, raw)
    _check_choices(cfg)

    cfg["scaled_lr"] = scale_lr(cfg["optimizer"]["lr"], cfg["optimizer"]["lr_scaling"], world_size)
    cfg["warmup_epochs"] = resolve_warmup_epochs(cfg["schedule"]["warmup_epochs"], world_size)
    cfg["global_batch_size"] = cfg["batch_size"] * world_size
    config = RunConfig.from_dict(cfg)
    _check_ranges(config)
    return config


def config_from_dict(data: dict[str, Any]) -> RunConfig | CommunicationConfig:
    """A resolved config back from its `to_dict()` (a launcher's config.json): task 0's
    CommunicationConfig (`"kind": "communication"`) or a training RunConfig."""
    if data.get("kind") == ALLREDUCE.kind:
        return CommunicationConfig.from_dict(data)
    return RunConfig.from_dict(data)


def _apply_override(cfg: dict[str, Any], path: str, raw: str) -> None:
    """Set one dotted field (e.g. `optimizer.lr=0.05`), typed like the value it replaces."""
    head = path.split(".")[0]
    if head in DERIVED_FIELDS:
        raise UserError(f"'{path}' cannot be set; it comes from {DERIVED_FIELDS[head]}")
    node = cfg
    parts = path.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise UserError(f"unknown config field '{path}'; see `mlbench tasks show` for valid fields")
        node = node[part]
    leaf = parts[-1]
    if leaf not in node or isinstance(node[leaf], dict):
        valid = ", ".join(sorted(k for k, v in node.items() if not isinstance(v, dict)))
        raise UserError(f"unknown config field '{path}'; valid here: {valid}")
    node[leaf] = _parse_like(path, raw, node[leaf])


def _parse_like(path: str, raw: str, current: Any) -> Any:
    try:
        if isinstance(current, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        if isinstance(current, int) and not isinstance(current, bool):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        if isinstance(current, (tuple, list)):
            return tuple(json.loads(raw))
        if current is None:
            return None if raw.lower() in ("none", "null", "") else _number_or_text(raw)
        return raw
    except (ValueError, TypeError, json.JSONDecodeError):
        kind = "a JSON list, e.g. [82,109]" if isinstance(current, (tuple, list)) else f"{type(current).__name__} like {current!r}"
        raise UserError(f"bad value '{raw}' for '{path}': expected {kind}") from None


def _number_or_text(raw: str) -> Any:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def _check_choices(cfg: dict[str, Any]) -> None:
    """Fields with a fixed set of valid values, checked before anything is derived from them."""
    from typing import get_args

    from tasks.spec import LrScaling, ScheduleKind

    choices = [
        ("optimizer.name", cfg["optimizer"]["name"], ("sgd",)),
        ("optimizer.lr_scaling", cfg["optimizer"]["lr_scaling"], get_args(LrScaling)),
        ("schedule.kind", cfg["schedule"]["kind"], get_args(ScheduleKind)),
        ("target_metric", cfg["target_metric"], WORKLOAD_METRICS[cfg["workload"]]),
        ("target_mode", cfg["target_mode"], ("max", "min")),
        ("runtime.precision", cfg["runtime"]["precision"], ("fp32", "bf16")),
    ]
    for name, value, valid in choices:
        if value not in valid:
            raise UserError(f"bad value '{value}' for '{name}'; valid: {', '.join(valid)}")
    from tasks.data import catalog
    from tasks.spec import WORKLOAD_DATA_KIND, WORKLOAD_LOSS

    workload = cfg["workload"]
    if cfg["loss"]["name"] != WORKLOAD_LOSS[workload]:
        raise UserError(f"bad value '{cfg['loss']['name']}' for 'loss.name'; valid for this task: {WORKLOAD_LOSS[workload]}")
    if cfg["runtime"]["channels_last"] and workload != "image-classification":
        raise UserError("runtime.channels_last applies to image tasks only")
    dataset, needed = cfg["data"]["dataset"], WORKLOAD_DATA_KIND[workload]
    if dataset not in catalog.names():
        raise UserError(f"unknown dataset '{dataset}'; valid for this task: "
                        f"{', '.join(n for n in catalog.names() if catalog.kind(n) == needed)}")
    if catalog.kind(dataset) != needed:
        raise UserError(f"dataset '{dataset}' is {catalog.kind(dataset)} data; this task needs {needed} data: "
                        f"{', '.join(n for n in catalog.names() if catalog.kind(n) == needed)}")
    warmup = cfg["schedule"]["warmup_epochs"]
    if warmup != "log2-world-size":
        try:
            if int(warmup) < 0:
                raise ValueError
        except (TypeError, ValueError):
            raise UserError(
                f"bad value '{warmup}' for 'schedule.warmup_epochs'; valid: log2-world-size or a whole number >= 0"
            ) from None
    milestones = cfg["schedule"]["milestones"]
    if not all(isinstance(m, int) and m >= 0 for m in milestones):
        raise UserError(f"bad value {list(milestones)} for 'schedule.milestones'; valid: a JSON list of epochs, e.g. [82,109]")


def _check_ranges(config: RunConfig) -> None:
    data = config.data
    checks = [
        (config.batch_size >= 1, "batch_size must be >= 1"),
        (config.max_epochs >= 1, "max_epochs must be >= 1"),
        (config.eval_every_epochs >= 1, "eval_every_epochs must be >= 1"),
        (config.scaled_lr > 0, "optimizer.lr must be > 0"),
        (config.runtime.precision in ("fp32", "bf16"), "runtime.precision must be fp32 or bf16"),
        (config.runtime.checkpoint_every_epochs >= 1, "runtime.checkpoint_every_epochs must be >= 1"),
        (config.num_classes is None if config.workload == "language-model"
         else isinstance(config.num_classes, int) and config.num_classes >= 2,
         "num_classes must be a whole number >= 2 (none for language models: their vocabulary comes from the data)"),
        (config.eval_batch_size is None or (isinstance(config.eval_batch_size, int) and config.eval_batch_size >= 1),
         "eval_batch_size must be a whole number >= 1 (or none for batch_size)"),
        (config.optimizer.grad_clip_norm >= 0, "optimizer.grad_clip_norm must be >= 0 (0 = no clipping)"),
        (config.schedule.nonmonotone_interval >= 0, "schedule.nonmonotone_interval must be >= 0"),
        (config.loss.activation_alpha >= 0 and config.loss.temporal_activation_beta >= 0,
         "loss.activation_alpha and loss.temporal_activation_beta must be >= 0"),
        (config.workload != "language-model"
         or (isinstance(data.sequence_length, int) and data.sequence_length >= 2),
         "data.sequence_length must be a whole number >= 2 for a language model"),
        (config.workload != "language-model" or (data.max_train_samples is None and data.max_val_samples is None),
         "data.max_train_samples and data.max_val_samples apply to image and tabular tasks only"),
        (config.workload == "language-model"
         or (not config.loss.activation_alpha and not config.loss.temporal_activation_beta),
         "loss.activation_alpha and loss.temporal_activation_beta apply to language models only"),
        (data.max_train_samples is None or (isinstance(data.max_train_samples, int) and data.max_train_samples >= 1),
         "data.max_train_samples must be a whole number >= 1 (or none for the whole split)"),
        (data.max_val_samples is None or (isinstance(data.max_val_samples, int) and data.max_val_samples >= 1),
         "data.max_val_samples must be a whole number >= 1 (or none for the whole split)"),
        (config.loss.l1 >= 0 and config.loss.l2 >= 0, "loss.l1 and loss.l2 must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def task_summary(spec: TaskSpec | CommunicationTaskSpec) -> dict[str, Any]:
    if isinstance(spec, CommunicationTaskSpec):
        return spec.summary()
    return {
        "name": spec.name,
        "mlbench_id": spec.mlbench_id,
        "model": spec.model.name,
        "dataset": spec.data.dataset,
        "metric": spec.target.metric,
        "target_full": spec.target.full,
        "target_light": spec.target.light,
        "algorithms": [a.name for a in spec.algorithms],
        "presets": list(spec.presets),
    }
