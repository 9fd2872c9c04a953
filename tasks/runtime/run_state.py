"""What the trainer (tasks.runtime.trainer) keeps of a run in progress: the accounting a checkpoint
carries (`RunState`), the parts it trains (`TrainingParts`) and what one epoch's pass gives back
(`EpochTraining`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tasks.runtime.history import EpochRecord, MidEpochEvaluation
from tasks.runtime.records import utc_now
from tasks.runtime.schedules import ConstantLR


@dataclass
class RunState:
    """What a checkpoint carries besides weights: enough to continue the run's accounting."""

    epochs_done: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    wall_time_s: float = 0.0  # MLPerf's clock at the last epoch's end: since the first run start
    run_start_unix: float | None = None  # the first segment's run start (epoch seconds); never paused
    lost_time_s: float = 0.0  # wall time no completed step kept: checkpoint to crash, plus the restart
    goal_reached: bool = False
    time_to_accuracy_s: float | None = None
    wall_time_to_accuracy_s: float | None = None
    best_metric: float | None = None
    resumes: int = 0
    started_at: str = field(default_factory=utc_now)

    def to_checkpoint(self) -> dict[str, Any]:
        """Plain values only (the checkpoint loads without unpickling classes)."""
        return {**self.__dict__, "history": [row.to_dict() for row in self.history]}

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> RunState:
        return cls(**{**state, "history": [EpochRecord.from_dict(row) for row in state["history"]]})


@dataclass
class TrainingParts:
    """What `Trainer.build` makes: the model (wrapped for its aggregation), its optimizer and schedule,
    and this rank's batches."""

    base_model: nn.Module
    model: nn.Module
    aggregation: Any  # tasks.runtime.aggregation: FlatAllReduceGradients, DDPAggregation or ModelAveraging
    optimizer: torch.optim.Optimizer
    schedule: ConstantLR
    train_batches: Any  # ShardBatches or TokenSequences (tasks.runtime.loader)
    val_batches: Any
    num_val: int


@dataclass
class EpochTraining:
    """One epoch's training pass: the global means of its loss and training metrics, this rank's train
    time, and the evaluations it ran inside the epoch (None: none planned). When one of them reached the
    goal the pass stopped there, and `stop_metrics` are that evaluation's metrics."""

    loss: float
    metrics: dict[str, float]
    train_time_s: float
    mid_epoch_evaluations: list[MidEpochEvaluation] | None = None
    stop_metrics: dict[str, float] | None = None

    @property
    def stopped_at_step(self) -> int | None:
        """The step of the evaluation that reached the goal and ended the pass; None if none did."""
        if self.stop_metrics is None or not self.mid_epoch_evaluations:
            return None
        return self.mid_epoch_evaluations[-1].step
