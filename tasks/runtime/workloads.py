"""What differs between kinds of benchmark tasks: their data batches, loss and evaluation.

The trainer's loop (timed steps, global metrics, goal checks, checkpoints) is the same for all;
a workload supplies the parts that depend on the kind of data and model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from tasks.errors import UserError
from tasks.runtime.loader import ImageBatches, ShardBatches, TabularBatches
from tasks.spec import LossSpec, RunConfig


def regularization(model: nn.Module, loss: LossSpec) -> torch.Tensor | float:
    """l1 * sum|p| + l2 / 2 * sum p^2 over all parameters (MLBench's regularized losses)."""
    if not loss.l1 and not loss.l2:
        return 0.0
    params = list(model.parameters())
    total = 0.0
    if loss.l1:
        total = total + loss.l1 * sum(p.abs().sum() for p in params)
    if loss.l2:
        total = total + loss.l2 / 2 * sum(p.pow(2).sum() for p in params)
    return total


class ImageClassification:
    split_keys = ("train_images", "train_labels", "val_images", "val_labels")
    metrics = ("loss", "top1", "top5")

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.criterion = nn.CrossEntropyLoss()

    def model_options(self, arrays: dict[str, np.ndarray]) -> dict:
        return dict(self.config.model.options)

    def batches(self, arrays, split: str, indices, *, train: bool, rank: int) -> ShardBatches:
        c = self.config
        return ImageBatches(arrays[f"{split}_images"], arrays[f"{split}_labels"], indices, c.batch_size,
                            c.data.augmentation, train=train, seed=c.seed, rank=rank)

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor, model: nn.Module) -> torch.Tensor:
        return self.criterion(outputs, labels) + regularization(model, self.config.loss)

    def evaluation_sums(self, outputs: torch.Tensor, labels: torch.Tensor, model: nn.Module) -> torch.Tensor:
        """[loss sum, top-1 correct, top-5 correct] for one validation batch."""
        outputs = outputs.float()
        top5 = outputs.topk(min(5, outputs.shape[1]), dim=1).indices
        return torch.stack([
            nn.functional.cross_entropy(outputs, labels, reduction="sum")
            + regularization(model, self.config.loss) * labels.numel(),
            (top5[:, 0] == labels).sum().float(),
            (top5 == labels[:, None]).any(dim=1).sum().float(),
        ])


class BinaryClassification:
    """Tabular rows, one logit per row, binary cross-entropy; accuracy at threshold 0.5."""

    split_keys = ("train_features", "train_labels", "val_features", "val_labels")
    metrics = ("loss", "accuracy")

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.criterion = nn.BCEWithLogitsLoss()

    def model_options(self, arrays: dict[str, np.ndarray]) -> dict:
        features = arrays["train_features"].shape[1]
        expected = self.config.model.options.get("num_features")
        if expected is not None and expected != features:
            raise UserError(f"dataset {self.config.data.dataset} has {features} features but the model expects "
                            f"{expected}; set model.options to match or use the task's dataset")
        return {**self.config.model.options, "num_features": features}

    def batches(self, arrays, split: str, indices, *, train: bool, rank: int) -> ShardBatches:
        c = self.config
        return TabularBatches(arrays[f"{split}_features"], arrays[f"{split}_labels"], indices, c.batch_size,
                              train=train, seed=c.seed, rank=rank)

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor, model: nn.Module) -> torch.Tensor:
        return self.criterion(outputs.squeeze(1), labels) + regularization(model, self.config.loss)

    def evaluation_sums(self, outputs: torch.Tensor, labels: torch.Tensor, model: nn.Module) -> torch.Tensor:
        """[loss sum, correct] for one validation batch; the loss includes the regularization term,
        as the loss MLBench's plateau schedule watched."""
        logits = outputs.float().squeeze(1)
        return torch.stack([
            nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="sum")
            + regularization(model, self.config.loss) * labels.numel(),
            ((logits >= 0) == (labels >= 0.5)).sum().float(),
        ])


WORKLOADS = {"image-classification": ImageClassification, "binary-classification": BinaryClassification}


def build_workload(config: RunConfig):
    return WORKLOADS[config.workload](config)


def check_arrays(workload, arrays: dict, dataset: str, root: Path) -> None:
    missing = [key for key in workload.split_keys if key not in arrays]
    if missing:
        raise UserError(f"dataset '{dataset}' under {root} lacks {', '.join(missing)}: it is not a "
                        f"{workload.__class__.__name__} dataset")
