"""The torch side of each workload (tasks.workloads): data batches, forward pass, loss, evaluation.

The trainer's loop (timed steps, global metrics, goal checks, checkpoints) is the same for all;
a workload runtime supplies the parts that depend on the kind of data and model:

  model_options(arrays, metadata)  the model's options, completed from the prepared dataset
  data(arrays, rank, world_size)  -> (train batches, validation batches, validation size)
  start_pass()                    before every training epoch and every evaluation
  forward(model, inputs)          -> outputs the loss and evaluation sums take
  lr_factor(inputs)               the step's learning-rate multiplier
  loss(outputs, labels, model), evaluation_sums(outputs, labels, model), derived_metrics(metrics)
  summed_metrics                  the metrics evaluation_sums returns, in order
  train_metric_sums(outputs, labels)  the training batch's metrics that MLBench computed inside its
                                  timed step, each times the batch's samples (train_metrics: names)

and, with defaults in `WorkloadRuntime` that only translation (tasks.runtime.translation) changes:
  passes(inputs, labels)          -> (inputs, labels, loss weight) per forward/backward pass of a step
  sample_count(labels)            what the loss and metrics are averaged over (samples, or tokens)
  extra_validation_metrics        derived metrics recorded per evaluation besides the target and loss
  write_samples(output, epoch)    rank 0, after an evaluation: e.g. sample translations beside result.json
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tasks.errors import UserError
from tasks.runtime.loader import ImageBatches, ShardBatches, TabularBatches, TokenSequences
from tasks.runtime.sharding import train_shards, validation_shards
from tasks.spec import LossSpec, RunConfig
from tasks.workloads import SampleWorkload


class WorkloadRuntime:
    train_metrics: tuple[str, ...] = ()
    extra_validation_metrics: tuple[str, ...] = ()

    def passes(self, inputs: Any, labels: torch.Tensor) -> Iterator[tuple[Any, torch.Tensor, float]]:
        """A step is one forward/backward pass on the whole batch, its loss unweighted."""
        yield inputs, labels, 1.0

    def sample_count(self, labels: torch.Tensor) -> int:
        return labels.numel()

    def write_samples(self, output: Path, epoch: int, step: int | None = None) -> None:
        pass


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


class SampleClassification(WorkloadRuntime):
    """Independent samples: shards of a seeded permutation, one forward per batch, no state between."""

    inputs_key = ""  # "images" or "features"

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    def data(self, arrays, rank: int, world_size: int) -> tuple[ShardBatches, ShardBatches, int]:
        config = self.config
        num_train, num_val = SampleWorkload.sample_counts(config, arrays)
        if num_train < world_size:
            raise UserError(f"{num_train} training samples cannot be split across {world_size} ranks")
        train = self.batches(arrays, "train", train_shards(num_train, world_size, config.seed)[rank],
                             train=True, rank=rank)
        val = self.batches(arrays, "val", validation_shards(num_val, world_size, config.seed)[rank],
                           train=False, rank=rank)
        return train, val, num_val

    def batches(self, arrays, split: str, indices, *, train: bool, rank: int) -> ShardBatches:
        raise NotImplementedError

    def start_pass(self) -> None:
        pass

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return model(inputs)

    def lr_factor(self, inputs: torch.Tensor) -> float:
        return 1.0

    def derived_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        return metrics


def topk_correct(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[top-1 correct, top-5 correct] of a batch of class scores."""
    top5 = outputs.topk(min(5, outputs.shape[1]), dim=1).indices
    return torch.stack([(top5[:, 0] == labels).sum().float(), (top5 == labels[:, None]).any(dim=1).sum().float()])


class ImageClassification(SampleClassification):
    summed_metrics = ("loss", "top1", "top5")
    train_metrics = ("top1", "top5")  # MLBench's TopKAccuracy(1) and (5) on every training batch

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.criterion = nn.CrossEntropyLoss()

    def model_options(self, arrays: dict[str, np.ndarray], metadata: dict) -> dict:
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
        loss = (nn.functional.cross_entropy(outputs, labels, reduction="sum")
                + regularization(model, self.config.loss) * labels.numel())
        return torch.cat([loss.reshape(1), topk_correct(outputs, labels)])

    def train_metric_sums(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return topk_correct(outputs.float(), labels)


class BinaryClassification(SampleClassification):
    """Tabular rows, one logit per row, binary cross-entropy; accuracy at threshold 0.5."""

    summed_metrics = ("loss", "accuracy")
    train_metrics = ("accuracy", "f1", "dice")  # MLBench's TopKAccuracy, F1Score, DiceCoefficient per batch

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.criterion = nn.BCEWithLogitsLoss()

    def model_options(self, arrays: dict[str, np.ndarray], metadata: dict) -> dict:
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

    def train_metric_sums(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """[correct, F1 · n, Dice · n] of a training batch of n rows: MLBench's per-batch F1 (threshold
        0.5, epsilon 1e-9) and soft Dice (on the probabilities, epsilon 1e-4), weighted by batch size."""
        probabilities = torch.sigmoid(outputs.float().squeeze(1))
        positive = probabilities >= 0.5
        predicted = positive.float()
        true_positives = (predicted * labels).sum()
        precision = true_positives / (predicted.sum() + 1e-9)
        recall = true_positives / (labels.sum() + 1e-9)
        f1 = 2 * precision * recall / (precision + recall + 1e-9)
        dice = (2 * (probabilities * labels).sum() + 1e-4) / (probabilities.sum() + labels.sum() + 1e-4)
        n = labels.numel()
        return torch.stack([(positive == (labels >= 0.5)).sum().float(), f1 * n, dice * n])


class LanguageModel(WorkloadRuntime):
    """Word-level language modelling on a token stream (MLBench task 3a, AWD-LSTM).

    Training: each rank owns `batch_size` columns of the stream and walks them in consecutive
    sequences of random length (TokenSequences); the hidden state carries from one sequence to the
    next, cut from the graph in between (truncated backpropagation through time), and starts from
    zeros every epoch. The rate of a step is scaled by its length / sequence_length, as the
    reference did, so a short sequence takes a proportionally small step.
    Evaluation: every rank evaluates the whole validation stream (not sharded, as MLBench), in
    `eval_batch_size` columns of fixed-length sequences; perplexity = exp(mean cross-entropy).
    """

    summed_metrics = ("loss",)
    train_metrics = ("perplexity",)  # MLBench's Perplexity on every training batch

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.sequence_length = int(config.data.sequence_length or 0)
        self.hidden = None

    def model_options(self, arrays: dict[str, np.ndarray], metadata: dict) -> dict:
        vocabulary_size = int(metadata["vocab_size"])
        expected = self.config.model.options.get("vocab_size")
        if expected is not None and expected != vocabulary_size:
            raise UserError(f"dataset {self.config.data.dataset} has a vocabulary of {vocabulary_size} words but "
                            f"the model expects {expected}; set model.options to match or use the task's dataset")
        return {**self.config.model.options, "vocab_size": vocabulary_size}

    def data(self, arrays, rank: int, world_size: int) -> tuple[TokenSequences, TokenSequences, int]:
        c = self.config
        eval_columns = c.eval_batch_size or c.batch_size
        train = TokenSequences(arrays["train_tokens"], c.batch_size, self.sequence_length, train=True,
                               seed=c.seed, rank=rank, world_size=world_size)
        val = TokenSequences(arrays["val_tokens"], eval_columns, self.sequence_length, train=False,
                             seed=c.seed, rank=0, world_size=1)
        return train, val, val.num_samples

    def start_pass(self) -> None:
        self.hidden = None

    def forward(self, model: nn.Module, inputs: torch.Tensor):
        from tasks.models.awd_lstm import detach_hidden

        if self.hidden is None:
            self.hidden = model.init_hidden(inputs.size(1))
        logits, hidden, raw, dropped = model(inputs, self.hidden)
        self.hidden = detach_hidden(hidden)
        return logits, raw, dropped

    def lr_factor(self, inputs: torch.Tensor) -> float:
        return inputs.size(0) / self.sequence_length

    def loss(self, outputs, targets: torch.Tensor, model: nn.Module) -> torch.Tensor:
        from tasks.models.awd_lstm import activation_regularization

        logits, raw, dropped = outputs
        loss = self.config.loss
        return (nn.functional.cross_entropy(logits, targets)
                + activation_regularization(raw, dropped, loss.activation_alpha, loss.temporal_activation_beta)
                + regularization(model, loss))

    def evaluation_sums(self, outputs, targets: torch.Tensor, model: nn.Module) -> torch.Tensor:
        """[cross-entropy sum] over the batch's tokens: the evaluated loss has no AR/TAR, as the reference."""
        logits = outputs[0].float()
        return nn.functional.cross_entropy(logits, targets, reduction="sum").reshape(1)

    def train_metric_sums(self, outputs, targets: torch.Tensor) -> torch.Tensor:
        """The batch's perplexity times its tokens: exp of a cross-entropy recomputed over the whole
        vocabulary (without AR/TAR), as MLBench's per-batch metric did rather than reuse the loss."""
        cross_entropy = nn.functional.cross_entropy(outputs[0].float(), targets)
        return (cross_entropy.exp() * targets.numel()).reshape(1)

    def derived_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        return {**metrics, "perplexity": perplexity(metrics["loss"])}


def perplexity(mean_nll: float) -> float:
    """exp of a mean negative log-likelihood, capped where exp would overflow (past ~709)."""
    return math.exp(min(mean_nll, 700.0))


def _translation(config: RunConfig) -> WorkloadRuntime:
    from tasks.runtime.translation import Translation  # decoding and BLEU: imported only by translation runs

    return Translation(config)


RUNTIMES: dict[str, Callable[[RunConfig], WorkloadRuntime]] = {
    "image-classification": ImageClassification,
    "binary-classification": BinaryClassification,
    "language-model": LanguageModel,
    "translation": _translation,
}


def build_workload(config: RunConfig) -> Any:
    """The runtime of the config's workload (one of the classes above, or tasks.runtime.translation's)."""
    return RUNTIMES[config.workload](config)
