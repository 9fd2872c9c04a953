"""The training loop every training task shares: timed steps, global metrics, goal checks,
checkpoints and resume, the results bundle (what differs per workload: tasks.runtime.workload_runtime).

Every decision that ends the run (goal reached, divergence, last epoch) is taken from
all-reduced values, so all ranks take it at the same epoch and stop together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from tasks.data import catalog
from tasks.errors import ExitCode, UserError
from tasks.models import build_model, parameter_count
from tasks.runtime import checkpoint, provenance
from tasks.runtime.aggregation import build_aggregation
from tasks.runtime.averaging import WeightAverage
from tasks.runtime.distributed import RankEnv
from tasks.runtime.evaluation_points import mid_epoch_steps
from tasks.runtime.loader import derived_seed
from tasks.runtime.mllog import RunLog, constants
from tasks.runtime.history import EpochRecord, MidEpochEvaluation, epochs_trained
from tasks.runtime.records import utc_now
from tasks.runtime.results import ModelInfo, TrainingRankReport, TrainingResult, write_result
from tasks.runtime.run_state import EpochTraining, RunState, TrainingParts
from tasks.runtime.optimizers import build_loss_scaler, build_optimizer
from tasks.runtime.schedules import STEP_SCHEDULES, ConstantLR, build_schedule
from tasks.runtime.timing import PHASES, StepTimer
from tasks.runtime.workload_runtime import build_workload
from tasks.spec import RunConfig
from tasks.workloads import check_arrays, get_workload


class Diverged(Exception):
    """Training loss or validation loss became NaN or infinite."""


def configure_determinism(config: RunConfig) -> None:
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    import random

    random.seed(config.seed)
    if config.runtime.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


class Trainer:
    def __init__(
        self,
        config: RunConfig,
        env: RankEnv,
        data_root: Path,
        output: Path,
        log: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.env = env
        self.data_root = data_root
        self.output = output
        self.log = log if env.rank == 0 else (lambda _msg: None)
        self.is_chief = env.rank == 0
        self.device = torch.device(f"cuda:{env.local_rank}" if config.device == "cuda" else "cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.state = RunState()
        self.timer = StepTimer(sync=torch.cuda.synchronize if self.device.type == "cuda" else None)
        self.provenance = provenance.collect(config.device, env.local_rank)
        self.parameters: int | None = None
        self.workload = build_workload(config)
        self.weight_average: WeightAverage | None = None  # averaged SGD (NT-ASGD) once switched on
        self.mllog = RunLog(output / "mllog.log", enabled=self.is_chief)
        self.parts: TrainingParts | None = None  # set by build()
        self.loss_scaler = build_loss_scaler(config, self.device)  # dynamic loss scaling for fp16, else a no-op
        self._segment_start = time.perf_counter()  # reset at the run start, in build()
        self._segment_start_unix = time.time()
        self._wall_at_segment_start = 0.0  # MLPerf's clock when this segment started (0 unless resumed)

    # ----------------------------------------------------------------------------- set-up
    def build(self) -> TrainingParts:
        """Model, aggregation, optimizer, schedule and this rank's batches; needs a process group
        only when world size > 1."""
        config = self.config
        self.mllog.start(constants.INIT_START)
        configure_determinism(config)
        # Opening the memory-mapped arrays reads only their headers (shapes), not the data.
        arrays = catalog.load(config.data.dataset, self.data_root)
        check_arrays(get_workload(config.workload), arrays, config.data.dataset, self.data_root)
        options = self.workload.model_options(arrays, catalog.metadata(config.data.dataset, self.data_root))
        model = build_model(config.model.name, config.num_classes, options)
        self.parameters = parameter_count(model)
        model = model.to(self.device)
        if config.runtime.channels_last:
            model = model.to(memory_format=torch.channels_last)
        aggregation = build_aggregation(config.aggregation, model, self.env.world_size, self.device)
        optimizer = build_optimizer(config, model.parameters())
        self._log_hyperparameters()
        self.mllog.end(constants.INIT_STOP)
        self.mllog.start(constants.RUN_START)
        self._segment_start = time.perf_counter()  # MLPerf's run start: before the first data is touched
        self._segment_start_unix = time.time()
        train_batches, val_batches, num_val = self.workload.data(arrays, self.env.rank, config.world_size)
        self.mllog.event(constants.TRAIN_SAMPLES, train_batches.num_samples * config.world_size)
        self.mllog.event(constants.EVAL_SAMPLES, num_val)
        self.parts = TrainingParts(base_model=model, model=aggregation.wrap(), aggregation=aggregation,
                                   optimizer=optimizer, schedule=self._schedule(train_batches),
                                   train_batches=train_batches, val_batches=val_batches, num_val=num_val)
        return self.parts

    def _schedule(self, train_batches: Any) -> ConstantLR:
        """The run's schedule; one by optimizer step learns how many steps an epoch has (a language
        model's epochs have none fixed: their sequence lengths are drawn)."""
        steps = len(train_batches) if self.config.schedule.kind in STEP_SCHEDULES else None
        return build_schedule(self.config, steps)

    def _log_hyperparameters(self) -> None:
        c = self.config
        self.mllog.event(constants.SUBMISSION_BENCHMARK, c.task)
        self.mllog.event(constants.SEED, c.seed)
        self.mllog.event(constants.GLOBAL_BATCH_SIZE, c.global_batch_size)
        self.mllog.event(constants.OPT_NAME, c.optimizer.name)
        self.mllog.event(constants.OPT_BASE_LR, c.scaled_lr)
        self.mllog.event(constants.OPT_WEIGHT_DECAY, c.optimizer.weight_decay)
        self.mllog.event(constants.OPT_LR_WARMUP_EPOCHS, c.warmup_epochs)
        self.mllog.event("opt_momentum", c.optimizer.momentum)
        if c.optimizer.grad_clip_norm:
            self.mllog.event("opt_gradient_clip_norm", c.optimizer.grad_clip_norm)
        self.mllog.event("world_size", c.world_size)
        self.mllog.event("config_hash", c.config_hash())

    # ----------------------------------------------------------------------------- resume
    def _checkpoint_dir(self) -> Path:
        return self.output / "checkpoints"

    def _agree(self, what: str, error: Exception | None) -> None:
        """Every rank learns whether any rank failed at `what`, and why, so none waits on a peer that
        gave up and rank 0's record names the first failed rank's reason."""
        reasons: list[str | None] = [None] * self.env.world_size
        dist.all_gather_object(reasons, str(error) if error is not None else None)
        if error is not None:
            raise error
        failed = next(((rank, reason) for rank, reason in enumerate(reasons) if reason is not None), None)
        if failed is not None:
            raise UserError(f"rank {failed[0]} failed while {what}: {failed[1]}")

    def _built(self) -> TrainingParts:
        if self.parts is None:
            raise RuntimeError("Trainer.build() has not run")
        return self.parts

    def _resume(self) -> None:
        parts = self._built()
        payload, error, skipped = None, None, []
        try:
            payload, skipped = checkpoint.load_latest(self._checkpoint_dir(), self.env.rank,
                                                      self.config.config_hash(), self.env.world_size)
        except (UserError, OSError, RuntimeError) as exc:
            error = exc if isinstance(exc, UserError) else UserError(f"cannot read checkpoint: {exc}")
        self._agree("loading its checkpoint", error)
        if payload is None:
            return
        for problem in skipped:
            self.log(f"[mlbench] checkpoint {problem}: resuming from the epoch before")
        parts.base_model.load_state_dict(payload["model"])
        parts.optimizer.load_state_dict(payload["optimizer"])
        parts.schedule.load_state_dict(payload["schedule"])
        if payload.get("weight_average") is not None:
            self.weight_average = WeightAverage(parts.base_model)
            self.weight_average.load_state_dict(payload["weight_average"])
        self.timer.load_state_dict(payload["timer"])
        self.loss_scaler.load_state_dict(payload.get("loss_scaler") or {})
        self.state = RunState.from_checkpoint(payload["state"])
        self.state.resumes += 1
        self.log(f"[mlbench] resuming after epoch {self.state.epochs_done} from {self._checkpoint_dir()}")

    def _save_checkpoint(self) -> None:
        parts = self._built()
        directory = self._checkpoint_dir()
        epoch = self.state.epochs_done
        payload = {
            "model": parts.base_model.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "schedule": parts.schedule.state_dict(),
            "weight_average": self.weight_average.state_dict() if self.weight_average else None,
            "timer": self.timer.state_dict(),
            "loss_scaler": self.loss_scaler.state_dict(),
            "state": self.state.to_checkpoint(),
        }
        error = None
        try:
            checkpoint.save_rank(directory, epoch, self.env.rank, payload)
        except OSError as exc:
            error = UserError(f"cannot write checkpoint into {directory}: {exc.strerror or exc}")
        self._agree("saving its checkpoint", error)  # doubles as the barrier before publishing
        if self.is_chief:
            checkpoint.publish(directory, epoch, self.config.config_hash())
        dist.barrier()
        checkpoint.prune(directory, self.env.rank)

    # ----------------------------------------------------------------------------- loop
    def _to_device(self, inputs: Any, labels: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """Moves a batch (tensors, or a workload's batch object with a `to` method) to the device."""
        inputs = inputs.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        if self.config.runtime.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs, labels

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        precision = self.config.runtime.precision
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        with torch.autocast(self.device.type, dtype=dtype, enabled=precision != "fp32"):
            yield

    def train_step(self, inputs: Any, labels: torch.Tensor) -> torch.Tensor:
        """One timed step on a batch the loader has handed over; returns the batch's summed loss, its
        training metrics' sums (the workload's train_metrics), then its sample count.

        The workload may split the batch into passes whose gradients accumulate (a translation step
        larger than a worker processes at once); each pass's loss is weighted as the workload says."""
        parts, timer = self._built(), self.timer
        timer.start_step()
        inputs, labels = self._to_device(inputs, labels)
        timer.mark("data")
        sums = torch.zeros(len(self.workload.train_metrics) + 2, device=self.device)
        for pass_inputs, pass_labels, weight in self.workload.passes(inputs, labels):
            with self._autocast():
                outputs = self.workload.forward(parts.model, pass_inputs)
                timer.mark("forward")
                loss = self.workload.loss(outputs, pass_labels, parts.base_model)
            timer.mark("loss")
            self.loss_scaler.scale(loss * weight if weight != 1.0 else loss).backward()
            timer.mark("backward")
            with torch.no_grad():  # MLBench's step computed these before its batch_end
                count = self.workload.sample_count(pass_labels)
                sums[0] += loss.detach().float() * count
                sums[1:-1] += self.workload.train_metric_sums(outputs, pass_labels)
                sums[-1] += count
            timer.mark("metrics")
        parts.aggregation.after_backward()
        timer.mark("communication")
        self.loss_scaler.unscale_(parts.optimizer)
        if self.config.optimizer.grad_clip_norm:  # on the aggregated gradient, as MLBench's optimizer did
            nn.utils.clip_grad_norm_(parts.base_model.parameters(), self.config.optimizer.grad_clip_norm)
        self.loss_scaler.step(parts.optimizer)  # skipped (and the scale lowered) on an fp16 overflow
        self.loss_scaler.update()
        parts.optimizer.zero_grad(set_to_none=True)
        timer.mark("optimizer")
        parts.aggregation.after_step()  # model averaging communicates after the local step
        timer.mark("communication")
        if self.weight_average is not None:  # the weights every rank holds after the step
            self.weight_average.update()
            timer.mark("optimizer")
        timer.end_step()
        return sums

    def _train_epoch(self, epoch: int) -> EpochTraining:
        """One pass over this rank's shard, evaluating at the planned steps inside it (every rank has
        the same number of steps, so all evaluate together) and stopping at one that reaches the goal."""
        parts, device = self._built(), self.device
        interval = self.config.mid_epoch_eval_interval
        steps_in_epoch = len(parts.train_batches) if interval else 0
        evaluate_after = set(mid_epoch_steps(interval, steps_in_epoch))
        trained = EpochTraining(0.0, {}, 0.0, [] if interval else None)
        parts.model.train()
        names = self.workload.train_metrics
        sums = torch.zeros(len(names) + 2, device=device)  # loss, the metrics, then the sample count
        train_time_before = self.timer.train_time
        current_lr = None
        # Dropout draws from the global generator: seeding it per (seed, rank, epoch) makes a resumed
        # run draw the masks an uninterrupted one would.
        torch.manual_seed(derived_seed(self.config.seed, self.env.rank, epoch))
        self.workload.start_pass()
        for step, (inputs, labels) in enumerate(parts.train_batches.epoch(epoch)):
            lr = parts.schedule.lr_for_step(epoch, step) * self.workload.lr_factor(inputs)
            if lr != current_lr:
                for group in parts.optimizer.param_groups:
                    group["lr"] = lr
                current_lr = lr
            sums += self.train_step(inputs, labels)
            if step + 1 in evaluate_after and self._evaluate_mid_epoch(epoch, step + 1, steps_in_epoch, trained):
                break
        dist.all_reduce(sums)
        means = (sums[:-1] / sums[-1]).tolist()
        trained.loss, trained.metrics = means[0], dict(zip(names, means[1:], strict=True))
        trained.train_time_s = self.timer.train_time - train_time_before
        return trained

    def _evaluate_mid_epoch(self, epoch: int, step: int, steps_in_epoch: int, trained: EpochTraining) -> bool:
        """Evaluates after `step` of the epoch and records it in `trained`; True if that reached the goal."""
        metrics, metric = self._evaluate_at(epoch, step=step), self.config.target_metric
        assert trained.mid_epoch_evaluations is not None
        trained.mid_epoch_evaluations.append(MidEpochEvaluation(
            step=step, steps_in_epoch=steps_in_epoch, validation_metric=metrics[metric],
            validation_loss=metrics["loss"], cumulative_train_time_s=self.timer.train_time,
            validation_metrics=self._extra_metrics(metrics)))
        self.log(f"[mlbench] epoch {epoch + 1}/{self.config.max_epochs} step {step}/{steps_in_epoch} "
                 f"{metric} {metrics[metric]:.4f} train_time {self.timer.train_time:.1f}s"
                 + ("  goal reached" if self.state.goal_reached else ""))
        if self.state.goal_reached:
            trained.stop_metrics = metrics
        return self.state.goal_reached

    def _extra_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        return {name: metrics[name] for name in self.workload.extra_validation_metrics}

    def _evaluate(self) -> dict[str, float]:
        """Global validation metrics (of the averaged weights once averaging has begun)."""
        if self.weight_average is None:
            return self._evaluate_model()
        with self.weight_average.swapped_in():
            return self._evaluate_model()

    @torch.no_grad()
    def _evaluate_model(self) -> dict[str, float]:
        """Every rank sums over its shard, the sums are all-reduced."""
        parts = self._built()
        model = parts.base_model
        model.eval()
        names = self.workload.summed_metrics  # sums in this order, then the sample count
        totals = torch.zeros(len(names) + 1, device=self.device)
        self.workload.start_pass()
        for batch in parts.val_batches.epoch(0):
            inputs, labels = self._to_device(*batch)
            with self._autocast():
                outputs = self.workload.forward(model, inputs)
            totals[:-1] += self.workload.evaluation_sums(outputs, labels, model)
            totals[-1] += self.workload.sample_count(labels)
        dist.all_reduce(totals)
        model.train()
        count = totals[-1].item()
        means = {name: value / count for name, value in zip(names, totals[:-1].tolist(), strict=True)}
        return self.workload.derived_metrics(means)

    def run(self) -> TrainingResult:
        """Train until the goal or max epochs; returns the result (complete on rank 0)."""
        self.build()
        self._resume()
        config, state = self.config, self.state
        self._start_wall_clock()
        self.log(
            f"[mlbench] {config.task} preset={config.preset} algorithm={config.algorithm} "
            f"world_size={config.world_size} backend={config.backend} device={config.device} "
            f"target {config.target_metric} {'>=' if config.target_mode == 'max' else '<='} {config.target_value}"
        )
        status, reason = "completed", None
        try:
            while not state.goal_reached and state.epochs_done < config.max_epochs:
                self._run_epoch(state.epochs_done)
        except Diverged as exc:
            status, reason = "failed", f"diverged: {exc}"
            self.log(f"[mlbench] run failed: {reason}")
        state.wall_time_s = self._wall_now()
        self.mllog.end(constants.RUN_STOP, status="success" if state.goal_reached else "aborted")
        self.mllog.close()
        ranks: list[Any] = [None] * self.env.world_size
        dist.all_gather_object(ranks, self.rank_summary())  # every rank's own figures, to rank 0
        result = self.result(status, reason, ranks)
        if self.is_chief:
            write_result(self.output, result)
        return result

    def run_rank(self) -> int:
        """The run as one rank's process sees it (tasks.kinds.RankRunner): its exit code."""
        result = self.run()
        return ExitCode.OK if result.completed else ExitCode.RUN_FAILED

    def failure_record(self, reason: str) -> TrainingResult:
        """What this rank knew when the run failed: the epochs done and its own timings."""
        return self.result("failed", reason, [self.rank_summary()])

    def _start_wall_clock(self) -> None:
        """MLPerf's clock may not be paused: a resumed run's clock runs from the first segment's run
        start, so the time from the last checkpoint to the crash and the restart stay inside it; that
        gap is also added up as `lost_time_s`."""
        state = self.state
        if state.run_start_unix is None:  # a fresh run, or a checkpoint written before this clock
            state.run_start_unix = self._segment_start_unix - state.wall_time_s
        self._wall_at_segment_start = max(self._segment_start_unix - state.run_start_unix, state.wall_time_s)
        state.lost_time_s += self._wall_at_segment_start - state.wall_time_s

    def _wall_now(self) -> float:
        """MLPerf's clock: seconds since the first segment's run start (this segment's part timed
        with the monotonic clock)."""
        return self._wall_at_segment_start + time.perf_counter() - self._segment_start

    def _run_epoch(self, epoch: int) -> None:
        config, state = self.config, self.state
        epoch_start = time.perf_counter()
        self.mllog.start(constants.EPOCH_START, epoch_num=epoch + 1)
        # An epoch that diverges is not recorded, so neither is what its evaluations inside it set.
        before = (state.best_metric, state.goal_reached, state.time_to_accuracy_s, state.wall_time_to_accuracy_s)
        try:
            trained = self._train_epoch(epoch)
            if not math.isfinite(trained.loss):
                raise Diverged(f"training loss is {trained.loss} at epoch {epoch + 1}")
        except Diverged:
            state.best_metric, state.goal_reached, state.time_to_accuracy_s, state.wall_time_to_accuracy_s = before
            raise
        self.mllog.end(constants.EPOCH_STOP, epoch_num=epoch + 1)
        metrics = trained.stop_metrics
        if metrics is None and ((epoch + 1) % config.eval_every_epochs == 0 or epoch + 1 == config.max_epochs):
            metrics = self._evaluate_at(epoch)
        schedule = self._built().schedule
        lr = schedule.lr
        schedule.end_epoch(epoch, metrics["loss"] if metrics else None)
        if schedule.averaging and self.weight_average is None:
            self.weight_average = WeightAverage(self._built().base_model)
            self.log(f"[mlbench] validation loss stopped improving: averaged SGD at lr {schedule.lr:g} "
                     f"from epoch {epoch + 2}")
        state.epochs_done = epoch + 1
        state.history.append(EpochRecord(
            epoch=epoch + 1,
            lr=lr,
            train_loss=trained.loss,
            train_metrics=trained.metrics,
            validation_metric=metrics[config.target_metric] if metrics else None,
            validation_loss=metrics["loss"] if metrics else None,
            validation_top5=metrics.get("top5") if metrics else None,
            validation_metrics=self._extra_metrics(metrics) if metrics else {},
            epoch_time_s=time.perf_counter() - epoch_start,
            train_time_s=trained.train_time_s,
            cumulative_train_time_s=self.timer.train_time,
            mid_epoch_evaluations=trained.mid_epoch_evaluations,
            stopped_at_step=trained.stopped_at_step,
        ))
        self._print_epoch(state.history[-1])
        state.wall_time_s = self._wall_now()
        if state.epochs_done % config.runtime.checkpoint_every_epochs == 0 or state.goal_reached:
            self._save_checkpoint()

    def _evaluate_at(self, epoch: int, step: int | None = None) -> dict[str, float]:
        """Validation after an epoch (or after `step` inside it); records the best metric and whether the
        goal was reached."""
        config, state = self.config, self.state
        where = {"epoch_num": epoch + 1} if step is None else {"epoch_num": epoch + 1, "epoch_step": step}
        self.mllog.start(constants.EVAL_START, **where)
        metrics = self._evaluate()
        self.mllog.end(constants.EVAL_STOP, **where)
        if self.is_chief:
            self.workload.write_samples(self.output, epoch + 1, step)
        if not math.isfinite(metrics["loss"]):
            at = f"epoch {epoch + 1}" + (f" step {step}" if step is not None else "")
            raise Diverged(f"validation loss is {metrics['loss']} at {at}")
        value = metrics[config.target_metric]
        self.mllog.event(constants.EVAL_ACCURACY, value, **where)
        better = max if config.target_mode == "max" else min
        state.best_metric = value if state.best_metric is None else better(state.best_metric, value)
        if config.reached(value):
            state.goal_reached = True
            state.time_to_accuracy_s = self.timer.train_time
            state.wall_time_to_accuracy_s = self._wall_now()
        return metrics

    def _print_epoch(self, row: EpochRecord) -> None:
        metric = row.validation_metric
        metric_text = f"{self.config.target_metric} {metric:.4f}" if metric is not None else "no eval"
        self.log(
            f"[mlbench] epoch {row.epoch}/{self.config.max_epochs} train_loss {row.train_loss:.4f} "
            f"{metric_text} lr {row.lr:.4g} epoch {row.epoch_time_s:.1f}s "
            f"train_time {row.cumulative_train_time_s:.1f}s"
            + ("  goal reached" if self.state.goal_reached and row is self.state.history[-1] else "")
        )

    def rank_summary(self) -> TrainingRankReport:
        return TrainingRankReport(
            rank=self.env.rank,
            hostname=self.provenance.hostname,
            device_name=self.provenance.device_name,
            train_time_s=self.timer.train_time,
            compute_s=self.timer.compute,
            communication_s=self.timer.communication,
            steps=self.timer.steps,
            phases_s=dict(self.timer.totals),
        )

    def result(self, status: str, reason: str | None, ranks: list[TrainingRankReport]) -> TrainingResult:
        """The result as far as this rank knows it (no collectives: usable after a failure)."""
        state, timer = self.state, self.timer
        last_metric = next(
            (row.validation_metric for row in reversed(state.history) if row.validation_metric is not None), None)
        shard = self.parts.train_batches.num_samples if self.parts is not None else 0
        samples = shard * self.config.world_size * epochs_trained(state.history)
        return dataclasses.replace(
            TrainingResult.for_config(self.config),
            status=status,
            reason=reason,
            goal_reached=state.goal_reached,
            time_to_accuracy_s=state.time_to_accuracy_s,
            wall_time_to_accuracy_s=state.wall_time_to_accuracy_s,
            train_time_s=timer.train_time,
            wall_time_s=state.wall_time_s,
            compute_s=timer.compute,
            communication_s=timer.communication,
            phases_s={p: timer.totals[p] for p in PHASES},
            epochs_run=state.epochs_done,
            steps=timer.steps,
            final_validation_metric=last_metric,
            best_validation_metric=state.best_metric,
            throughput_samples_per_s=samples / timer.train_time if timer.train_time > 0 else None,
            history=[row.finite() for row in state.history],
            model=ModelInfo(self.config.model.name, self.parameters),
            provenance=self.provenance,
            ranks=ranks,
            resumes=state.resumes,
            lost_time_s=state.lost_time_s,
            started_at=state.started_at,
            finished_at=utc_now(),
        )
