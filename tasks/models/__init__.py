"""Model registry: names used by task specs -> constructors."""

from __future__ import annotations

from typing import Any

from tasks.errors import UserError

MODEL_NAMES = ("resnet20-cifar", "logistic-regression", "awd-lstm")


def build_model(name: str, num_classes: int | None, options: dict[str, Any] | None = None):
    options = options or {}
    if name == "resnet20-cifar":
        from tasks.models.resnet_cifar import ResNetCIFAR

        return ResNetCIFAR(depth=options.get("depth", 20), num_classes=num_classes)
    if name == "logistic-regression":
        from torch import nn

        # One logit per row, no bias (MLBench's LogisticRegression); the sigmoid lives in the loss
        # (BCE with logits) and in the 0.5 threshold.
        return nn.Linear(int(options["num_features"]), 1, bias=False)
    if name == "awd-lstm":
        from tasks.models.awd_lstm import AWDLSTM

        try:
            return AWDLSTM(**options)  # vocab_size comes from the dataset (tasks.runtime.workload_runtime)
        except (TypeError, ValueError) as exc:
            raise UserError(f"bad model.options for awd-lstm: {exc}") from None
    raise UserError(f"unknown model '{name}'; valid models: {', '.join(MODEL_NAMES)}")


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())
