"""Learning-rate schedules, driven by the training loop at step and epoch boundaries.

All schedules share one small protocol so the loop does not care which one runs:
`lr_for_step(epoch, step)` before every optimizer step, `end_epoch(val_loss)` after validation,
and `averaging` (true once the run should average its weights: NT-ASGD).
Their state is a plain dict so checkpoints can restore them exactly.
"""

from __future__ import annotations

import math
from typing import Any

from tasks.spec import RunConfig


class ConstantLR:
    averaging = False

    def __init__(self, lr: float) -> None:
        self.lr = lr

    def lr_for_step(self, epoch: int, step: int) -> float:
        return self.lr

    def end_epoch(self, epoch: int, val_loss: float | None) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr = state["lr"]


class MultiStepLR(ConstantLR):
    """lr * gamma^(number of milestones already passed), by epoch."""

    def __init__(self, lr: float, milestones: tuple[int, ...], gamma: float) -> None:
        super().__init__(lr)
        self.base_lr = lr
        self.milestones = tuple(sorted(milestones))
        self.gamma = gamma

    def lr_for_step(self, epoch: int, step: int) -> float:
        passed = sum(1 for m in self.milestones if epoch >= m)
        self.lr = self.base_lr * self.gamma**passed
        return self.lr


class PlateauWithWarmup(ConstantLR):
    """MLBench's ReduceLROnPlateauWithWarmup, as its task-1a reference code ran it.

    Linear warm-up by epoch: epoch e < W runs at base + (scaled - base) * e / W for the whole
    epoch (the reference stepped the scheduler once per epoch and never per batch). From epoch W
    on, the rate is `scaled_lr`, multiplied by `factor` whenever the validation loss has not
    improved by more than `threshold` (absolute) for more than `patience` epochs, never below
    `min_lr`.
    """

    def __init__(
        self,
        base_lr: float,
        scaled_lr: float,
        warmup_epochs: int,
        factor: float,
        patience: int,
        threshold: float,
        min_lr: float,
    ) -> None:
        super().__init__(scaled_lr if warmup_epochs == 0 else base_lr)
        self.base_lr = base_lr
        self.scaled_lr = scaled_lr
        self.warmup_epochs = warmup_epochs
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.min_lr = min_lr
        self.best_loss = math.inf
        self.bad_epochs = 0
        self.warmup_done = warmup_epochs == 0

    def lr_for_step(self, epoch: int, step: int) -> float:
        if epoch < self.warmup_epochs:
            self.lr = self.base_lr + (self.scaled_lr - self.base_lr) * epoch / self.warmup_epochs
        elif not self.warmup_done:
            self.lr = self.scaled_lr
            self.warmup_done = True
        return self.lr

    def end_epoch(self, epoch: int, val_loss: float | None) -> None:
        if val_loss is None or epoch < self.warmup_epochs:
            return  # plateau tracking starts once warm-up is over
        if val_loss < self.best_loss - self.threshold:
            self.best_loss = val_loss
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.lr = min(self.lr, max(self.lr * self.factor, self.min_lr))  # a cut never raises the rate
            self.bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "best_loss": self.best_loss,
            "bad_epochs": self.bad_epochs,
            "warmup_done": self.warmup_done,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr = state["lr"]
        self.best_loss = state["best_loss"]
        self.bad_epochs = state["bad_epochs"]
        self.warmup_done = state["warmup_done"]


class NonMonotoneAveraging(ConstantLR):
    """Merity et al.'s NT-ASGD trigger, as MLBench's task-3a code ran it.

    SGD at `scaled_lr` until the end of an epoch whose validation loss is worse than the best of
    all earlier epochs except the last `interval` ones; from then on `averaging` is true (the
    trainer averages the weights after every step and evaluates the average) and the rate is
    `averaged_lr`. MLBench's task-3a `main.py` (mlbench-benchmarks, develop) built its ASGD with the
    unscaled base rate, not the √k-scaled one in use; its older `master` kept the rate in use.
    The check precedes recording the epoch's loss, as in the reference.
    """

    def __init__(self, scaled_lr: float, averaged_lr: float, interval: int) -> None:
        super().__init__(scaled_lr)
        self.averaged_lr = averaged_lr
        self.interval = interval
        self.val_losses: list[float] = []
        self.averaging = False

    def end_epoch(self, epoch: int, val_loss: float | None) -> None:
        if val_loss is None:
            return
        earlier = self.val_losses[: -self.interval] if self.interval else self.val_losses
        if not self.averaging and len(self.val_losses) > self.interval and val_loss > min(earlier):
            self.start_averaging()
        self.val_losses.append(val_loss)

    def start_averaging(self) -> None:
        self.averaging = True
        self.lr = self.averaged_lr

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "val_losses": list(self.val_losses), "averaging": self.averaging}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr = state["lr"]
        self.val_losses = list(state["val_losses"])
        self.averaging = state["averaging"]


class ExponentialWarmupStepDecay(ConstantLR):
    """MLPerf GNMT's schedule, as MLBench task 4a ran it, by optimizer step t of T in all:
    lr * start_factor^(1 - t / warmup) during the warm-up (exponential growth from start_factor * lr),
    then lr, halved (times `factor`) at decay_start * T and every decay_interval * T after, at most
    max_decays times."""

    def __init__(self, lr: float, *, steps_per_epoch: int, max_epochs: int, warmup_steps: int,
                 start_factor: float, decay_start: float, decay_interval: float, factor: float,
                 max_decays: int) -> None:
        super().__init__(lr)
        self.base_lr = lr
        self.steps_per_epoch = steps_per_epoch
        total = steps_per_epoch * max_epochs
        self.warmup_steps = warmup_steps
        self.start_factor = start_factor
        self.decay_start = int(decay_start * total)
        self.decay_interval = max(1, int(decay_interval * total))
        self.factor = factor
        self.max_decays = max_decays

    def lr_for_step(self, epoch: int, step: int) -> float:
        t = epoch * self.steps_per_epoch + step
        if t < self.warmup_steps:
            self.lr = self.base_lr * self.start_factor ** (1 - t / self.warmup_steps)
        elif t < self.decay_start:
            self.lr = self.base_lr
        else:
            decays = min(self.max_decays, 1 + (t - self.decay_start) // self.decay_interval)
            self.lr = self.base_lr * self.factor**decays
        return self.lr


class InverseSquareRoot(ConstantLR):
    """MLBench task 4b's schedule by optimizer step t (counted from 1): linear warm-up from 0 to lr
    over warmup_steps, then lr * sqrt(warmup_steps / t)."""

    def __init__(self, lr: float, *, steps_per_epoch: int, warmup_steps: int) -> None:
        super().__init__(lr)
        self.base_lr = lr
        self.steps_per_epoch = steps_per_epoch
        self.warmup_steps = max(1, warmup_steps)

    def lr_for_step(self, epoch: int, step: int) -> float:
        t = epoch * self.steps_per_epoch + step + 1
        if t <= self.warmup_steps:
            self.lr = self.base_lr * t / self.warmup_steps
        else:
            self.lr = self.base_lr * math.sqrt(self.warmup_steps / t)
        return self.lr


STEP_SCHEDULES = ("exponential-warmup-step-decay", "inverse-sqrt")  # by optimizer step: need steps per epoch


def build_schedule(config: RunConfig, steps_per_epoch: int | None = None) -> ConstantLR:
    """The schedule of a run whose epochs have `steps_per_epoch` optimizer steps on every rank (the
    schedules by step, STEP_SCHEDULES, need it)."""
    schedule = config.schedule
    if schedule.kind in STEP_SCHEDULES and not steps_per_epoch:
        raise ValueError(f"schedule {schedule.kind} needs the number of steps per epoch")
    steps_per_epoch = steps_per_epoch or 1
    if schedule.kind == "exponential-warmup-step-decay":
        return ExponentialWarmupStepDecay(
            config.scaled_lr, steps_per_epoch=steps_per_epoch, max_epochs=config.max_epochs,
            warmup_steps=int(schedule.warmup_steps or 0), start_factor=float(schedule.warmup_start_factor or 1.0),
            decay_start=float(schedule.decay_start_fraction or 1.0),
            decay_interval=float(schedule.decay_interval_fraction or 1.0),
            factor=schedule.factor, max_decays=int(schedule.max_decays or 0))
    if schedule.kind == "inverse-sqrt":
        return InverseSquareRoot(config.scaled_lr, steps_per_epoch=steps_per_epoch,
                                 warmup_steps=int(schedule.warmup_steps or 0))
    if schedule.kind == "constant":
        return ConstantLR(config.scaled_lr)
    if schedule.kind == "multistep":
        return MultiStepLR(config.scaled_lr, schedule.milestones, schedule.gamma)
    if schedule.kind == "plateau-with-warmup":
        return PlateauWithWarmup(
            base_lr=config.optimizer.lr,
            scaled_lr=config.scaled_lr,
            warmup_epochs=config.warmup_epochs,
            factor=schedule.factor,
            patience=schedule.patience,
            threshold=schedule.threshold,
            min_lr=schedule.min_lr,
        )
    if schedule.kind == "nt-asgd":
        return NonMonotoneAveraging(config.scaled_lr, config.optimizer.lr, schedule.nonmonotone_interval)
    raise ValueError(f"unknown schedule kind {schedule.kind!r}")
