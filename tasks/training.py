"""Resolving a training task (a `TaskSpec`) into the `RunConfig` one run uses.

The spec's values form the unresolved config, the preset's overrides and then the user's are
applied (the same `--set` language), the choices and ranges are checked, and the values that
depend on the world size (scaled rate, warm-up, global batch) are computed last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, get_args

from tasks.errors import UserError
from tasks.overrides import apply_overrides
from tasks.runtime.evaluation_points import SMALLEST_INTERVAL
from tasks.spec import (
    BATCHING_UNITS,
    BLEU_SCHEMES,
    LrScaling,
    Optimizer,
    Precision,
    RunConfig,
    RuntimeOptions,
    ScheduleKind,
    TaskSpec,
    resolve_warmup_epochs,
    scale_lr,
)
from tasks.workloads import get_workload


def resolve_training(spec: TaskSpec, preset: str, *, world_size: int, backend: str, device: str,
                     algorithm: str | None = None, overrides: Mapping[str, str] | None = None,
                     runtime: RuntimeOptions | None = None) -> RunConfig:
    """`tasks.registry.resolve` has checked the preset name, world size, backend and device."""
    values = unresolved_config(spec, preset, world_size=world_size, backend=backend, device=device,
                               algorithm=algorithm, runtime=runtime)
    for source in (spec.presets[preset].overrides, overrides or {}):
        apply_overrides(values, source, derived=RunConfig.DERIVED, owner=spec.name)
    _check_choices(values)
    values["scaled_lr"] = scale_lr(values["optimizer"]["lr"], values["optimizer"]["lr_scaling"], world_size)
    values["warmup_epochs"] = resolve_warmup_epochs(values["schedule"]["warmup_epochs"], world_size)
    translation = values.get("translation")
    if translation is not None and "batch_size" in (overrides or {}):
        raise UserError("a translation task's batch is set by translation.global_batch (and max_per_pass), "
                        "not batch_size")
    if translation is not None:
        # A translation step is a global batch of sentences (or tokens): each worker's share of it.
        values["global_batch_size"] = translation["global_batch"]
        values["batch_size"] = -(-translation["global_batch"] // world_size)
    else:
        values["global_batch_size"] = values["batch_size"] * world_size
    config = RunConfig.from_dict(values)
    _check_ranges(config)
    if config.translation is not None:
        check_translation(config)
    return config


def unresolved_config(spec: TaskSpec, preset: str, *, world_size: int, backend: str, device: str,
                      algorithm: str | None, runtime: RuntimeOptions | None) -> dict[str, Any]:
    """The spec's values as the nested dict presets and overrides edit (derived fields not yet set)."""
    algo = spec.algorithm(algorithm) if algorithm else spec.reference_algorithm
    return {
        "task": spec.name, "task_version": spec.version, "mlbench_id": spec.mlbench_id, "preset": preset,
        "algorithm": algo.name, "aggregation": algo.aggregation, "reference_implementation": algo.reference,
        "world_size": world_size, "backend": backend, "device": device,
        "model": dataclasses.asdict(spec.model), "data": dataclasses.asdict(spec.data),
        "optimizer": dataclasses.asdict(algo.optimizer), "schedule": dataclasses.asdict(algo.schedule),
        "batch_size": spec.batch_size, "max_epochs": spec.max_epochs, "eval_every_epochs": spec.eval_every_epochs,
        "target_metric": spec.target.metric, "target_mode": spec.target.mode, "target_value": spec.target.value,
        "seed": spec.seed, "num_classes": spec.num_classes, "eval_batch_size": spec.eval_batch_size,
        "workload": spec.workload, "loss": dataclasses.asdict(spec.loss),
        "runtime": dataclasses.asdict(runtime or RuntimeOptions()),
        "translation": dataclasses.asdict(spec.translation) if spec.translation else None,
        "mid_epoch_eval_interval": spec.mid_epoch_eval_interval,
    }


def _check_choices(values: dict[str, Any]) -> None:
    """Fields with a fixed set of valid values, checked before anything is derived from them."""
    workload = get_workload(values["workload"])
    choices = [
        ("optimizer.name", values["optimizer"]["name"], get_args(Optimizer)),
        ("optimizer.lr_scaling", values["optimizer"]["lr_scaling"], get_args(LrScaling)),
        ("schedule.kind", values["schedule"]["kind"], get_args(ScheduleKind)),
        ("target_metric", values["target_metric"], workload.metrics),
        ("target_mode", values["target_mode"], ("max", "min")),
        ("runtime.precision", values["runtime"]["precision"], get_args(Precision)),
    ]
    for name, value, valid in choices:
        if value not in valid:
            raise UserError(f"bad value '{value}' for '{name}'; valid: {', '.join(valid)}")
    if values["loss"]["name"] != workload.loss:
        raise UserError(f"bad value '{values['loss']['name']}' for 'loss.name'; valid for this task: {workload.loss}")
    if values["runtime"]["channels_last"] and workload.data_kind != "image":
        raise UserError("runtime.channels_last applies to image tasks only")
    _check_dataset(values["data"]["dataset"], workload.data_kind)
    _check_schedule(values["schedule"])


def _check_dataset(dataset: str, needed: str) -> None:
    from tasks.data import catalog

    if dataset not in catalog.names():
        raise UserError(f"unknown dataset '{dataset}'; valid for this task: {', '.join(catalog.names(needed))}")
    if catalog.kind(dataset) != needed:
        raise UserError(f"dataset '{dataset}' is {catalog.kind(dataset)} data; this task needs {needed} data: "
                        f"{', '.join(catalog.names(needed))}")


def _check_schedule(schedule: dict[str, Any]) -> None:
    warmup = schedule["warmup_epochs"]
    if warmup != "log2-world-size":
        try:
            if int(warmup) < 0:
                raise ValueError(warmup)
        except (TypeError, ValueError):
            raise UserError(
                f"bad value '{warmup}' for 'schedule.warmup_epochs'; valid: log2-world-size or a whole number >= 0"
            ) from None
    milestones = schedule["milestones"]
    if not all(isinstance(m, int) and m >= 0 for m in milestones):
        raise UserError(f"bad value {list(milestones)} for 'schedule.milestones'; valid: a JSON list of epochs, "
                        "e.g. [82,109]")


def _optional_count(value: Any) -> bool:
    return value is None or (isinstance(value, int) and value >= 1)


def _valid_interval(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and SMALLEST_INTERVAL <= value < 1


def _check_ranges(config: RunConfig) -> None:
    data, loss = config.data, config.loss
    data_kind = get_workload(config.workload).data_kind
    language_model = data_kind == "text"
    vocabulary_from_data = data_kind in ("text", "translation")
    checks = [
        (config.batch_size >= 1, "batch_size must be >= 1"),
        (config.max_epochs >= 1, "max_epochs must be >= 1"),
        (config.eval_every_epochs >= 1, "eval_every_epochs must be >= 1"),
        (config.mid_epoch_eval_interval is None or _valid_interval(config.mid_epoch_eval_interval),
         f"mid_epoch_eval_interval must be a fraction of an epoch from {SMALLEST_INTERVAL} to below 1 (e.g. 0.3), "
         "or none"),
        (not language_model or config.mid_epoch_eval_interval is None,
         "mid_epoch_eval_interval needs epochs of a known number of steps; a language model draws its "
         "sequence lengths, so it evaluates after epochs only"),
        (config.scaled_lr > 0, "optimizer.lr must be > 0"),
        (config.runtime.checkpoint_every_epochs >= 1, "runtime.checkpoint_every_epochs must be >= 1"),
        (config.num_classes is None if vocabulary_from_data
         else isinstance(config.num_classes, int) and config.num_classes >= 2,
         "num_classes must be a whole number >= 2 (none for language models and translation: their vocabulary "
         "comes from the data)"),
        (_optional_count(config.eval_batch_size),
         "eval_batch_size must be a whole number >= 1 (or none for batch_size)"),
        (config.optimizer.grad_clip_norm >= 0, "optimizer.grad_clip_norm must be >= 0 (0 = no clipping)"),
        (config.schedule.nonmonotone_interval >= 0, "schedule.nonmonotone_interval must be >= 0"),
        (loss.activation_alpha >= 0 and loss.temporal_activation_beta >= 0,
         "loss.activation_alpha and loss.temporal_activation_beta must be >= 0"),
        (not language_model or (isinstance(data.sequence_length, int) and data.sequence_length >= 2),
         "data.sequence_length must be a whole number >= 2 for a language model"),
        (not language_model or (data.max_train_samples is None and data.max_val_samples is None),
         "data.max_train_samples and data.max_val_samples apply to image and tabular tasks only"),
        (language_model or (not loss.activation_alpha and not loss.temporal_activation_beta),
         "loss.activation_alpha and loss.temporal_activation_beta apply to language models only"),
        (_optional_count(data.max_train_samples),
         "data.max_train_samples must be a whole number >= 1 (or none for the whole split)"),
        (_optional_count(data.max_val_samples),
         "data.max_val_samples must be a whole number >= 1 (or none for the whole split)"),
        (loss.l1 >= 0 and loss.l2 >= 0, "loss.l1 and loss.l2 must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def check_translation(config: RunConfig) -> None:
    """A translation run's batching, decoding, optimizer and schedule settings, each with what is valid."""
    t, opt, schedule = config.translation, config.optimizer, config.schedule
    assert t is not None
    length_set = [t.max_decode_length is not None, t.max_decode_length_offset is not None]
    checks = [
        (config.workload == "translation", "translation settings apply to translation tasks only"),
        (t.batching in BATCHING_UNITS and t.loss_normalization in BATCHING_UNITS,
         f"translation.batching and translation.loss_normalization must be one of {', '.join(BATCHING_UNITS)}"),
        (t.global_batch >= config.world_size, f"translation.global_batch ({t.global_batch}) must be at least the "
                                              f"world size ({config.world_size})"),
        (t.max_per_pass >= 1, "translation.max_per_pass must be a whole number >= 1"),
        (t.eval_batch_sentences >= 1, "translation.eval_batch_sentences must be a whole number >= 1"),
        (t.beam_size >= 1, "translation.beam_size must be a whole number >= 1"),
        (sum(length_set) == 1, "set exactly one of translation.max_decode_length and "
                               "translation.max_decode_length_offset (the other to null)"),
        (t.length_penalty >= 0 and t.coverage_penalty >= 0 and t.length_penalty_constant >= 0,
         "translation.length_penalty, length_penalty_constant and coverage_penalty must be >= 0"),
        (t.bleu in BLEU_SCHEMES, f"bad value '{t.bleu}' for 'translation.bleu'; valid: {', '.join(BLEU_SCHEMES)}"),
        (t.sample_translations >= 0, "translation.sample_translations must be >= 0"),
        (config.loss.label_smoothing is not None and 0 <= config.loss.label_smoothing < 1,
         "loss.label_smoothing must be in [0, 1) for a translation task"),
        (opt.name != "adam" or (opt.betas is not None and len(opt.betas) == 2 and opt.eps is not None),
         "optimizer adam needs optimizer.betas (a JSON pair, e.g. [0.9,0.999]) and optimizer.eps"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    needed = {"exponential-warmup-step-decay": ("warmup_steps", "warmup_start_factor", "decay_start_fraction",
                                                "decay_interval_fraction", "max_decays"),
              "inverse-sqrt": ("warmup_steps",)}.get(schedule.kind, ())
    missing = [name for name in needed if getattr(schedule, name) is None]
    if missing:
        raise UserError(f"schedule {schedule.kind} needs {', '.join('schedule.' + name for name in missing)}")


def training_summary(spec: TaskSpec) -> dict[str, Any]:
    """The row `mlbench tasks` lists for a training task."""
    light = spec.presets.get("light")
    return {
        "name": spec.name,
        "mlbench_id": spec.mlbench_id,
        "model": spec.model.name,
        "dataset": spec.data.dataset,
        "metric": spec.target.metric,
        "target_full": spec.target.value,
        "target_light": float(light.overrides["target_value"]) if light and "target_value" in light.overrides
        else spec.target.value,
        "algorithms": [a.name for a in spec.algorithms],
        "presets": list(spec.presets),
    }
