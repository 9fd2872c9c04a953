"""Model registry: the names task specs use -> builders (num_classes, options) -> torch module.

Adding a model is a module here and one entry in MODELS; its options come from the task's
`model.options` (completed from the dataset by the workload: feature count, vocabulary).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasks.errors import UserError


def _resnet_cifar(num_classes: int | None, options: dict[str, Any]) -> Any:
    from tasks.models.resnet_cifar import ResNetCIFAR

    return ResNetCIFAR(depth=options.get("depth", 20), num_classes=num_classes)


def _logistic_regression(num_classes: int | None, options: dict[str, Any]) -> Any:
    from torch import nn

    # One logit per row, no bias (MLBench's LogisticRegression); the sigmoid lives in the loss
    # (BCE with logits) and in the 0.5 threshold.
    return nn.Linear(int(options["num_features"]), 1, bias=False)


def _awd_lstm(num_classes: int | None, options: dict[str, Any]) -> Any:
    from tasks.models.awd_lstm import AWDLSTM

    try:
        return AWDLSTM(**options)  # vocab_size comes from the dataset (tasks.runtime.workload_runtime)
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad model.options for awd-lstm: {exc}") from None


def _gnmt(num_classes: int | None, options: dict[str, Any]) -> Any:
    from tasks.models.gnmt import GNMT

    try:
        return GNMT(**options)  # vocab_size comes from the dataset
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad model.options for gnmt: {exc}") from None


def _transformer(num_classes: int | None, options: dict[str, Any]) -> Any:
    from tasks.models.transformer import Transformer

    try:
        return Transformer(**options)  # vocab_size comes from the dataset
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad model.options for transformer: {exc}") from None


MODELS: dict[str, Callable[[int | None, dict[str, Any]], Any]] = {
    "resnet20-cifar": _resnet_cifar,
    "logistic-regression": _logistic_regression,
    "awd-lstm": _awd_lstm,
    "gnmt": _gnmt,
    "transformer": _transformer,
}
MODEL_NAMES = tuple(MODELS)


def build_model(name: str, num_classes: int | None, options: dict[str, Any] | None = None) -> Any:
    if name not in MODELS:
        raise UserError(f"unknown model '{name}'; valid models: {', '.join(MODELS)}")
    return MODELS[name](num_classes, options or {})


def parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())
