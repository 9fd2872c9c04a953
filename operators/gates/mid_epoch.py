"""The results gate's check of the evaluations inside epochs (a config with `mid_epoch_eval_interval`,
e.g. tasks 4a and 4b at 30 %): each epoch evaluated after exactly the steps the rule plans
(tasks.runtime.evaluation_points), with finite figures; an epoch the goal ended is the last one, ended
at its last evaluation, whose figure reached the target; and a completed run's ranks took the steps
the epochs add up to (so the step count the evaluations record is the one the run had)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from operators.gates.frames import number
from operators.gates.gx import Part, where
from tasks.runtime.evaluation_points import mid_epoch_steps
from tasks.runtime.history import EpochRecord
from tasks.runtime.results import TrainingResult

if TYPE_CHECKING:
    from tasks.spec import RunConfig


def parts(result: TrainingResult, config: RunConfig, metric_range: dict[str, float]) -> list[Part]:
    """The plan per epoch and the figures per evaluation, for the run's resolved config (its
    `mid_epoch_eval_interval` set); `metric_range` bounds the target metric (as the history's: e.g.
    min_value 0 and max_value 1 for an accuracy)."""
    steps_in_epoch = _steps_in_epoch(result)
    return [("mid-epoch plan", *_plan_part(result, config, steps_in_epoch)),
            ("mid-epoch steps", *_steps_part(result, steps_in_epoch)),
            ("mid-epoch evaluations", *_evaluations_part(result, metric_range))]


def _steps_in_epoch(result: TrainingResult) -> int | None:
    """An epoch's step count, as the evaluations recorded it; without any, the ranks' steps over the
    epochs (every epoch then ran to its end: only an evaluation can end one early)."""
    recorded = {evaluation.steps_in_epoch
                for entry in result.history for evaluation in entry.mid_epoch_evaluations or []}
    if recorded:
        return recorded.pop() if len(recorded) == 1 else None  # None: steps that vary fail the plan check
    if result.ranks and result.epochs_run:
        return result.ranks[0].steps // result.epochs_run
    return None


def _planned(entry: EpochRecord, interval: float | None, steps_in_epoch: int | None) -> str:
    if steps_in_epoch is None:
        return "unknown: evaluations disagree on the epoch's step count"
    steps = mid_epoch_steps(interval, steps_in_epoch)
    if entry.stopped_at_step is not None:
        steps = [step for step in steps if step <= entry.stopped_at_step]
    return ",".join(map(str, steps))


def _stop_consistent(result: TrainingResult, config: RunConfig, entry: EpochRecord) -> bool:
    """No stop, or a stop at the epoch's last evaluation, in the last epoch, at a figure that reached the target."""
    if entry.stopped_at_step is None:
        return True
    evaluations = entry.mid_epoch_evaluations or []
    figure = number(evaluations[-1].validation_metric) if evaluations else None
    return (figure is not None and evaluations[-1].step == entry.stopped_at_step
            and entry is result.history[-1] and config.reached(figure))


def _plan_part(result: TrainingResult, config: RunConfig, steps_in_epoch: int | None) -> tuple[Any, list[Any]]:
    import great_expectations.expectations as gxe
    import pandas as pd

    rows = [{"epoch": entry.epoch, "planned_steps": _planned(entry, config.mid_epoch_eval_interval, steps_in_epoch),
             "evaluated_steps": ",".join(str(e.step) for e in entry.mid_epoch_evaluations or []),
             "recorded": entry.mid_epoch_evaluations is not None,
             "stop_consistent": _stop_consistent(result, config, entry)}
            for entry in result.history]
    columns = ["epoch", "planned_steps", "evaluated_steps", "recorded", "stop_consistent"]
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.astype({"epoch": "int64", "planned_steps": object, "evaluated_steps": object, "recorded": "bool",
                          "stop_consistent": "bool"})
    frame.index = pd.Index([f"epoch {e}" for e in frame["epoch"]], dtype=object)
    return frame, [
        gxe.ExpectColumnValuesToBeInSet(column="recorded", value_set=[True]),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="evaluated_steps", column_B="planned_steps"),
        gxe.ExpectColumnValuesToBeInSet(column="stop_consistent", value_set=[True]),
    ]


def _steps_part(result: TrainingResult, steps_in_epoch: int | None) -> tuple[Any, list[Any]]:
    """The steps each rank took against those the epochs add up to: every epoch's steps, or the step
    the goal ended it at (a failed run's last epoch may have ended anywhere: not compared)."""
    import great_expectations.expectations as gxe
    import pandas as pd

    epochs_steps = (None if steps_in_epoch is None
                    else sum(entry.stopped_at_step or steps_in_epoch for entry in result.history))
    frame = pd.DataFrame([{"rank": rank.rank, "completed": result.completed, "steps": rank.steps,
                           "epochs_steps": epochs_steps} for rank in result.ranks],
                         columns=["rank", "completed", "steps", "epochs_steps"])
    frame = frame.astype({"completed": "bool", "steps": "float64", "epochs_steps": "float64"})
    frame.index = pd.Index([f"rank {r}" for r in frame["rank"]], dtype=object)
    return frame, [gxe.ExpectColumnPairValuesToBeEqual(column_A="steps", column_B="epochs_steps",
                                                       **where("completed", True))]


def _evaluations_part(result: TrainingResult, metric_range: dict[str, float]) -> tuple[Any, list[Any]]:
    import great_expectations.expectations as gxe
    import pandas as pd

    columns = ("validation_metric", "validation_loss", "cumulative_train_time_s")
    rows = [{"epoch": entry.epoch, "step": evaluation.step,
             **{column: number(getattr(evaluation, column)) for column in columns}}
            for entry in result.history for evaluation in entry.mid_epoch_evaluations or []]
    frame = pd.DataFrame(rows, columns=["epoch", "step", *columns])
    frame = frame.astype({"epoch": "int64", "step": "int64", **{c: "float64" for c in columns}})
    frame.index = pd.Index([f"epoch {e} step {s}" for e, s in zip(frame["epoch"], frame["step"], strict=True)],
                           dtype=object)
    expectations = [
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns),
        gxe.ExpectColumnValuesToBeBetween(column="validation_loss", min_value=0),
        gxe.ExpectColumnValuesToBeIncreasing(column="cumulative_train_time_s"),
    ]
    if metric_range:
        expectations.append(gxe.ExpectColumnValuesToBeBetween(column="validation_metric", **metric_range))
    return frame, expectations
