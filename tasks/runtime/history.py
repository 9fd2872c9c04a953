"""A training run's history in result.json: one record per epoch, with the evaluations inside it
when the config plans them (`mid_epoch_eval_interval`), and the one view of every evaluation that
plots, MLflow and the gates read. Torch-free.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

from tasks.runtime.records import Record


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


def epochs_trained(history: list[EpochRecord]) -> float:
    """The epochs' worth of steps a history ran: its epochs less what a goal reached inside the last one
    left of it (10.9 for a stop at step 113 of 125 in the eleventh)."""
    return sum(entry.fraction_trained for entry in history)
